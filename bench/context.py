"""The state one benchmark invocation shares between scenarios, and the result rows."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures import Backlog, Template, build_backlog, make_incoming, make_outgoing
from harness import PROCS, Worker, copy_topic, create_topic, delete_topics, log, produce_raw, remove_tree

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
    #: CPU use per run of the product side and of the baseline ({process: % of one core})
    cpu: list[dict[str, float] | None] | None = None
    baseline_cpu: list[dict[str, float] | None] | None = None


@dataclass
class Context:
    kafka: Any
    workdir: Path
    runs: int
    quick: bool
    nonce: str
    admin_token: str = field(default_factory=lambda: "bench-admin-" + secrets.token_hex(8))
    template: Template | None = None
    _backlogs: dict[int, Backlog] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # results one scenario leaves for another
    #: events stored by the lookups scenario (None: 1,000,000, or 100,000 with --quick)
    lookup_events: int | None = None

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap)

    @property
    def kafka_pid(self) -> int | None:
        """The broker's pid (of a cluster: node 1's; `kafka_pids` has every node)."""
        if hasattr(self.kafka, "nodes"):
            return self.kafka.nodes[1].pid
        return self.kafka.pid

    @property
    def kafka_pids(self) -> dict[str, int | None]:
        """CpuMeter names for the broker: ``kafka``, or ``kafka1``.. for a cluster's nodes."""
        if hasattr(self.kafka, "nodes"):
            return {f"kafka{i}": node.pid for i, node in self.kafka.nodes.items()}
        return {"kafka": self.kafka.pid}

    def app(self, tag: str) -> str:
        return f"bench{self.nonce}-{tag}"

    def get_template(self) -> Template:
        """Projects, endpoints and the HMAC source, created once through the real API of a
        short-lived worker. Every scenario's app gets a copy of its config topic."""
        if self.template is None:
            worker = Worker(self.bootstrap, self.workdir / "template-worker", self.app("main"), self.admin_token)
            worker.start()
            try:
                took = worker.wait_healthy()
                log(f"template worker {worker.app_id} healthy in {took:.1f}s; creating projects through the API")
                outgoing = make_outgoing(worker.url, self.admin_token)
                incoming = make_incoming(worker.url, self.admin_token)
            finally:
                worker.stop()
            self.template = Template(worker.app_id, outgoing, incoming)
        return self.template

    def start_worker(self, app_id: str, backlog: Backlog | None = None) -> Worker:
        """A fresh app (config copied, optional backlog) and one healthy worker for it."""
        self.prepare_app(app_id, backlog)
        worker = Worker(self.bootstrap, self.workdir / app_id, app_id, self.admin_token).start()
        try:
            worker.wait_healthy()
        except BaseException:
            self.drop_worker(worker)
            raise
        return worker

    def drop_worker(self, worker: Worker) -> None:
        """Stop the worker, remove its data dir and its app's topics."""
        worker.stop()
        remove_tree(worker.data_dir)
        asyncio.run(delete_topics(self.bootstrap, worker.app_id + "-"))

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



__all__ = ["Context", "Row", "PARTITIONS", "PROCS"]
