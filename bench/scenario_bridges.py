"""bridges: messages/s from a pre-filled queue to acknowledged ingest records, per broker.

Each measurement runs `bridge_probe.py` in a process of its own against a fresh, pre-filled
topic/queue/subscription: `bridge` mode is the product's bridge loop with the worker's own
handle (validate, endpoint check, `Publisher.publish` to Kafka with acks=all) before every
ack; `bare` mode is the broker's own client doing receive + ack alone.
Services: Kafka is the benchmark's broker (a separate topic), SQS is a moto server, Pub/Sub
the official emulator, RabbitMQ the machine's server (started, and stopped again, only if it
was not running).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from context import PARTITIONS, Context, Row
from harness import BENCH, PROCS, PY, CpuMeter, create_topic, delete_topics, free_port, log, port_open

PUBSUB_EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/lib/rabbitmq/bin"])

COUNTS = {  # (full, quick): big enough for several seconds of work, small enough for the time budget
    "kafka": (20_000, 5_000),
    "amqp": (10_000, 3_000),
    "google": (5_000, 2_000),
    "sqs": (400, 200),
}
#: Brokers also measured against a bare relay (receive, produce to Kafka, ack): their bare
#: receive + ack is so cheap that the plain ratio says little about the bridge itself.
RELAYED = ("kafka", "google")
LABELS = {"kafka": "kafka (external topic)", "sqs": "sqs (moto server)", "google": "pubsub (emulator)",
          "amqp": "rabbitmq"}


def _probe(cfg: dict[str, Any], env: dict[str, str], timeout: float = 400) -> dict[str, Any]:
    proc = subprocess.run([PY, str(BENCH / "bridge_probe.py"), json.dumps(cfg)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PROBE_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"bridge probe {cfg['mode']} {cfg['broker']} failed ({proc.returncode}): "
                           f"{proc.stderr[-2500:]}")
    return json.loads(line.split(" ", 1)[1])


def _pid_of(needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    return None


class Services:
    """Starts the brokers the bridges need; stops what it started."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.procs: list[Any] = []
        self.rabbit_started = False
        self.env = dict(os.environ)
        self.cfg: dict[str, Any] = {}
        self.pids: dict[str, int | None] = {"kafka": ctx.kafka_pid}
        self.unavailable: dict[str, str] = {}

    def start(self, brokers: list[str]) -> None:
        if "sqs" in brokers:
            self._moto()
        if "google" in brokers:
            self._pubsub()
        if "amqp" in brokers:
            self._rabbit()

    def _wait_port(self, proc: Any, port: int, timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if port_open(port):
                return True
            time.sleep(0.1)
        log(f"{what} did not listen on {port} within {timeout:.0f}s")
        return False

    def _moto(self) -> None:
        port = free_port()
        proc = PROCS.spawn([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                           log_path=self.ctx.workdir / "moto.log")
        self.procs.append(proc)
        if self._wait_port(proc, port, 30, "moto"):
            self.cfg["sqs_endpoint"] = f"http://127.0.0.1:{port}"
            self.pids["sqs"] = proc.pid
        else:
            self.unavailable["sqs"] = "moto server did not start (pip install 'moto[server,sqs]')"

    def _pubsub(self) -> None:
        if not PUBSUB_EMULATOR.exists():
            self.unavailable["google"] = f"Pub/Sub emulator not installed ({PUBSUB_EMULATOR})"
            return
        port = free_port()
        data = self.ctx.workdir / "pubsub"
        data.mkdir(parents=True, exist_ok=True)
        proc = PROCS.spawn([str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"],
                           log_path=data / "emulator.log", cwd=data)
        self.procs.append(proc)
        if self._wait_port(proc, port, 90, "Pub/Sub emulator"):
            self.env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{port}"
            self.cfg["pubsub_project"] = "convoy-stream-bench"
            self.pids["google"] = proc.pid
        else:
            self.unavailable["google"] = "Pub/Sub emulator did not start"

    def _amqp_ok(self) -> bool:
        import logging

        import aio_pika

        for name in ("aio_pika", "aiormq"):  # a refused connection is an answer here, not an error
            logging.getLogger(name).setLevel(logging.CRITICAL)

        async def attempt() -> bool:
            try:
                connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/", timeout=3)
            except Exception:
                return False
            await connection.close()
            return True

        return asyncio.run(attempt())

    def _rabbit(self) -> None:
        self.cfg["amqp"] = {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest"}
        if not self._amqp_ok():
            server = shutil.which("rabbitmq-server", path=SBIN_PATH)
            if not server:
                self.unavailable["amqp"] = "rabbitmq-server not installed (make services)"
                return
            if port_open(5672):
                self.unavailable["amqp"] = "something on 5672 refuses guest/guest"
                return
            log("starting RabbitMQ (rabbitmq-server -detached); it is stopped again at the end")
            subprocess.run([server, "-detached"], cwd="/", capture_output=True, timeout=60)
            self.rabbit_started = True
            PROCS.on_exit(self._stop_rabbit)
            deadline = time.monotonic() + 60
            while not self._amqp_ok():
                if time.monotonic() > deadline:
                    self.unavailable["amqp"] = "RabbitMQ did not accept connections within 60 s"
                    return
                time.sleep(0.5)
        self.pids["amqp"] = _pid_of("beam.smp")

    def _stop_rabbit(self) -> None:
        if self.rabbit_started:
            self.rabbit_started = False
            ctl = shutil.which("rabbitmqctl", path=SBIN_PATH)
            if ctl:
                subprocess.run([ctl, "stop"], capture_output=True, timeout=120)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            PROCS.stop(proc)
        self._stop_rabbit()


def _cpu(result: dict[str, Any]) -> dict[str, float] | None:
    """The probe's own CPU over its measured span, plus the servers' over the probe's life."""
    outside = dict(result.get("cpu_percent_outside") or {})
    outside.pop("probe", None)  # the probe process's whole life, start-up included
    if result.get("cpu_percent") is not None:
        outside["probe"] = result["cpu_percent"]
    return outside or None


def run_bridges(ctx: Context) -> list[Row]:
    template = ctx.get_template()
    # BENCH_BRIDGES=kafka,google measures only those (while working on one bridge).
    brokers = os.environ.get("BENCH_BRIDGES", "kafka,amqp,google,sqs").split(",")
    ingest = ctx.app("bridges-ingest")
    asyncio.run(create_topic(ctx.bootstrap, ingest, PARTITIONS))
    services = Services(ctx)
    rows: list[Row] = []
    try:
        services.start(brokers)
        for broker in brokers:
            label = LABELS[broker]
            if broker in services.unavailable:
                log(f"bridges: {broker} not measured: {services.unavailable[broker]}")
                rows.append(Row("bridges", f"{label} msgs/s", "msg/s", [None], [None], "bare client",
                                note=f"not measured: {services.unavailable[broker]}"))
                continue
            count = COUNTS[broker][1 if ctx.quick else 0]
            bridge_runs: list[dict[str, Any]] = []
            bare_runs: list[dict[str, Any]] = []
            relay_runs: list[dict[str, Any]] = []
            for i in range(ctx.runs):
                order = ["bridge", "bare"] if i % 2 == 0 else ["bare", "bridge"]
                if broker in RELAYED:
                    order.insert(1, "relay")
                for mode in order:
                    name = f"bench{ctx.nonce}-{broker}-{mode}-{i}"
                    cfg = {"broker": broker, "name": name, "count": count, "bootstrap": ctx.bootstrap,
                           "ingest_topic": ingest, "project_id": template.outgoing.project_id,
                           "config_topic": f"{template.app_id}-config",
                           "endpoint_id": template.outgoing.endpoint_ids[0], **services.cfg}
                    try:
                        fill = _probe({**cfg, "mode": "fill"}, services.env)
                        cpu = CpuMeter({"kafka": ctx.kafka_pid, f"{broker}-server": services.pids.get(broker)},
                                       children="probe")
                        result = _probe({**cfg, "mode": mode}, services.env)
                        result["cpu_percent_outside"] = cpu.read()
                        result["fill_seconds"] = fill["seconds"]
                    except Exception as exc:
                        result = {"error": str(exc)[-1500:], "rate": None}
                        log(f"bridges: {broker} {mode} run {i + 1} failed: {exc}")
                    finally:
                        try:
                            _probe({**cfg, "mode": "delete"}, services.env, timeout=60)
                        except Exception:
                            pass
                    {"bridge": bridge_runs, "bare": bare_runs, "relay": relay_runs}[mode].append(result)
                    if result.get("rate"):
                        log(f"bridges: {broker} {mode} run {i + 1}: {result['rate']:,.0f} msgs/s "
                            f"({result['acked']}/{count}; probe cpu {result.get('cpu_percent')}%, "
                            f"{result.get('cpu_percent_outside')})")
            rates = [r.get("rate") for r in bridge_runs]
            base = [r.get("rate") for r in bare_runs]
            note = "moto-bound: moto's SQS server does ~100 requests/s, not a load number" if broker == "sqs" else ""
            if broker == "google":
                note = "the emulator, not Pub/Sub: its pull/ack speed bounds both sides"
            rows.append(Row("bridges", f"{label} msgs/s, {count:,} queued", "msg/s", rates, base,
                            "bare client receive+ack", [a / b if a and b else None for a, b in zip(rates, base)],
                            target=">= 0.8x bare client", ratio_min=0.8, note=note,
                            details=[{"bridge": a, "bare": b} for a, b in zip(bridge_runs, bare_runs)],
                            cpu=[_cpu(r) for r in bridge_runs], baseline_cpu=[_cpu(r) for r in bare_runs]))
            if relay_runs:
                relay = [r.get("rate") for r in relay_runs]
                rows.append(Row("bridges", f"{label}: the same bridge runs", "msg/s", rates, relay,
                                "bare receive + Kafka produce (acks=all) + ack",
                                [a / b if a and b else None for a, b in zip(rates, relay)],
                                note="what the bridge adds to the least any bridge must do (no target)",
                                details=[{"bridge": a, "relay": b} for a, b in zip(bridge_runs, relay_runs)],
                                cpu=[_cpu(r) for r in bridge_runs], baseline_cpu=[_cpu(r) for r in relay_runs]))
    finally:
        services.stop()
        asyncio.run(delete_topics(ctx.bootstrap, ingest))
    return rows
