"""The state one benchmark invocation shares between scenarios, and the result rows."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures import Backlog, Template, build_backlog, make_incoming, make_outgoing
from harness import PROCS, Worker, copy_topic, create_topic, log, produce_raw

PARTITIONS = 8


@dataclass
class Row:
    """One line of the table: a metric's runs, its baseline's runs and the target."""

    scenario: str
    metric: str
    unit: str
    runs: list[float | None]
    baseline: list[float | None] | None = None
    baseline_label: str = ""
    ratios: list[float | None] | None = None  # per run pair (product / baseline) when paired
    target: str = ""
    target_min: float | None = None
    target_max: float | None = None
    ratio_min: float | None = None
    higher_is_better: bool = True
    note: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Context:
    kafka: Any
    workdir: Path
    runs: int
    quick: bool
    nonce: str
    admin_token: str = field(default_factory=lambda: "bench-admin-" + secrets.token_hex(8))
    main: Worker | None = None
    template: Template | None = None
    _backlogs: dict[int, Backlog] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # results one scenario leaves for another

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap)

    @property
    def kafka_pid(self) -> int | None:
        return self.kafka.pid

    def app(self, tag: str) -> str:
        return f"bench{self.nonce}-{tag}"

    def main_worker(self) -> Worker:
        """The long-lived worker that serves rest, webhook and e2e, and holds the config template."""
        if self.main is None or not self.main.alive():
            worker = Worker(self.bootstrap, self.workdir / "main-worker", self.app("main"), self.admin_token)
            worker.start()
            took = worker.wait_healthy()
            log(f"main worker {worker.app_id} healthy in {took:.1f}s on {worker.url}")
            self.main = worker
        return self.main

    def get_template(self) -> Template:
        if self.template is None:
            worker = self.main_worker()
            outgoing = make_outgoing(worker.url, self.admin_token)
            incoming = make_incoming(worker.url, self.admin_token)
            self.template = Template(worker.app_id, outgoing, incoming)
        return self.template

    def backlog(self, records: int) -> Backlog:
        if records not in self._backlogs:
            template = self.get_template()
            log(f"building a backlog of {records:,} ingest records (10% repeated idempotency keys)...")
            backlog = build_backlog(template.outgoing, records, partitions=PARTITIONS)
            log(f"backlog built in {backlog.build_seconds:.1f}s: {backlog.expected_deliveries:,} deliveries expected")
            self._backlogs[records] = backlog
        return self._backlogs[records]

    def prepare_app(self, app_id: str, backlog: Backlog | None) -> float:
        """A fresh app: the template's config copied to `<app>-config`, the backlog in
        `<app>-ingest`. Returns the seconds the backlog took to produce."""
        template = self.get_template()

        async def prepare() -> float:
            await create_topic(self.bootstrap, f"{app_id}-config", 1, compacted=True)
            copied = await copy_topic(self.bootstrap, f"{template.app_id}-config", f"{app_id}-config")
            if copied == 0:
                raise RuntimeError("config template is empty")
            await create_topic(self.bootstrap, f"{app_id}-ingest", PARTITIONS)
            if backlog is None:
                return 0.0
            return await produce_raw(self.bootstrap, f"{app_id}-ingest", backlog.items)

        return asyncio.run(prepare())

    def stop(self) -> None:
        if self.main is not None:
            self.main.stop()


__all__ = ["Context", "Row", "PARTITIONS", "PROCS"]
