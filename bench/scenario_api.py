"""make-run, e2e-api, scale-api: the accept path as users start it, and the API role with cores.

- make-run: `convoy-stream dev` as `make run` starts it (one worker, and one API process per
  core sharing the public port), pointed at the bench's broker with KAFKA_BOOTSTRAP_SERVERS
  (so it starts no broker of its own), against the bare single-process server. wrk at 64
  connections as in `rest`; then one more event is sent and the time until its delivery
  record is readable on the delivery topic shows whether the pipeline kept up with what the
  run accepted (capped at `KEEP_UP_CAP`).
- e2e-api: the e2e measurement (scenario_e2e) through the same `convoy-stream dev` shape.
- scale-api: `convoy-stream api --processes 1` and `--processes 2`, each beside one worker,
  against the bare server with 1 and 2 processes (SO_REUSEPORT): the ratio 2/1 of each side.

Every product measurement gets a fresh app (topics, consumer group, config copied from the
template) and fresh processes, stopped and deleted afterwards, as in the other rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from context import Context, Row
from fixtures import event_body
from harness import CpuMeter, Worker, alternating, descendants, log, wait_log_lines
from scenario_e2e import RATE, _missing_note, measure_runs
from scenario_http import CONNECTIONS, Baseline, _pipeline_lag, run_wrk

#: Longest wait for the last event's delivery record after a loaded run (seconds).
KEEP_UP_CAP = 60.0
#: What each API process prints once it listens and has read the config topic (`api_role.serve`).
API_READY = "convoy-stream api ready"
BARE = "bare aiohttp+aiokafka"


def _cores() -> int:
    return os.cpu_count() or 1


def process_names(root: int | None, root_name: str) -> dict[str, int | None]:
    """CpuMeter names for `root` and the processes it started: `api1`.. for API processes
    (`--child`), `api-supervisor` for the one that starts them (it only waits)."""
    names: dict[str, int | None] = {root_name: root}
    n = 0
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"api" not in cmdline:
            continue
        if b"--child" in cmdline:
            n += 1
            names[f"api{n}"] = pid
        else:
            names["api-supervisor"] = pid
    return names


async def last_event_delivery(ctx: Context, url: str, api_key: str, endpoint_id: str, delivery_topic: str,
                              cap: float) -> tuple[float, bool]:
    """Send one event and wait until its delivery record is readable on `delivery_topic`.

    Returns (seconds from the send, delivered); a record not seen within `cap` returns
    (cap, False). The consumer is at the topic's end before the send, so only records written
    after it are read, and it matches the event by a marker in its data.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    marker = f"keepup-{secrets.token_hex(6)}"
    needle = marker.encode()
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, max_poll_records=5000)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(delivery_topic, p) for p in sorted(consumer.partitions_for_topic(delivery_topic) or [])]
        if not tps:
            raise RuntimeError(f"{delivery_topic} has no partitions")
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        body = orjson.dumps(event_body(endpoint_id, 0, bench_run=marker))
        sent = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, content=body, headers={"Authorization": f"Bearer {api_key}",
                                                                     "Content-Type": "application/json"})
        if response.status_code != 201:
            raise RuntimeError(f"the last event got HTTP {response.status_code}: {response.text[:300]}")
        while time.monotonic() - sent < cap:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            if any(needle in message.value for messages in batches.values() for message in messages):
                return now - sent, True
        return cap, False
    finally:
        await consumer.stop()


class Product:
    """A running product shape on a fresh app: the URL clients use and the processes to meter."""

    def __init__(self, ctx: Context, app_id: str, url: str, pids: dict[str, int | None]) -> None:
        self.ctx = ctx
        self.app_id = app_id
        self.base_url = url
        self.pids = pids

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/api/v1/projects/{self.ctx.get_template().outgoing.project_id}/events"

    @property
    def deliveries(self) -> str:
        return f"{self.app_id}-deliveries"

    def deliver_one(self, cap: float) -> tuple[float, bool]:
        out = self.ctx.get_template().outgoing
        return asyncio.run(last_event_delivery(self.ctx, self.events_url, out.api_key, out.endpoint_ids[0],
                                               self.deliveries, cap))


def _wait_api_ready(process: Worker, count: int) -> None:
    seen = wait_log_lines(process.log_path, API_READY, count, 120)
    if seen < count:  # the line is the API role's; without it the run is still valid, just less sure
        log(f"{process.app_id}: {seen} of {count} API processes said '{API_READY}' within 120 s; measuring anyway")


def _pipeline_ready(product: Product) -> None:
    """One event end to end, so the worker holds its partitions before anything is measured."""
    took, delivered = product.deliver_one(120.0)
    if not delivered:
        raise RuntimeError(f"{product.app_id}: no delivery record within 120 s of a first event")
    log(f"{product.app_id}: first event delivered in {took:.1f}s")


@contextmanager
def shipped(ctx: Context, app_id: str) -> Iterator[Product]:
    """`convoy-stream dev` as `make run` starts it (API processes: one per core, bridges on),
    on the bench's broker: KAFKA_BOOTSTRAP_SERVERS is set, so it starts no broker of its own."""
    ctx.prepare_app(app_id, None)
    dev = Worker(ctx.bootstrap, ctx.workdir / app_id, app_id, ctx.admin_token, command=("dev",),
                 env={"CONVOY_STREAM_BRIDGES": "1"})
    dev.start()
    try:
        dev.wait_healthy(120)
        _wait_api_ready(dev, _cores())
        product = Product(ctx, app_id, dev.url, process_names(dev.pid, "worker"))
        _pipeline_ready(product)
        yield product
    finally:
        ctx.drop_worker(dev)


@contextmanager
def api_beside_worker(ctx: Context, app_id: str, processes: int) -> Iterator[Product]:
    """`convoy-stream api --processes N` on a port of its own beside one `convoy-stream worker`."""
    worker = ctx.start_worker(app_id)
    front: Worker | None = None
    try:
        front = Worker(ctx.bootstrap, worker.data_dir / "api", app_id, ctx.admin_token,
                       command=("api", "--processes", str(processes))).start()
        front.wait_healthy(120)
        _wait_api_ready(front, processes)
        pids = {"worker": worker.pid, **process_names(front.pid, "api" if processes == 1 else "api-supervisor")}
        yield Product(ctx, app_id, front.url, pids)
    finally:
        if front is not None:
            front.stop()
        ctx.drop_worker(worker)


def _rest_request(ctx: Context) -> tuple[bytes, dict[str, str]]:
    out = ctx.get_template().outgoing
    return (orjson.dumps(event_body(out.endpoint_ids[0], 1)),
            {"Content-Type": "application/json", "Authorization": f"Bearer {out.api_key}"})


def _seconds(ctx: Context) -> tuple[int, int]:
    """(measured, warm-up) seconds of a wrk run, as in scenario_http."""
    return (5, 2) if ctx.quick else (8, 3)


def _wrk_product(ctx: Context, product: Product, label: str) -> dict[str, Any]:
    body, headers = _rest_request(ctx)
    check = httpx.post(product.events_url, content=body, headers=headers, timeout=10)
    if check.status_code != 201:
        raise RuntimeError(f"{label}: a single request got HTTP {check.status_code}: {check.text[:300]}")
    seconds, warm = _seconds(ctx)
    run_wrk(product.events_url, body, headers, warm, ctx.workdir)
    cpu = CpuMeter({**product.pids, "kafka": ctx.kafka_pid})
    result = run_wrk(product.events_url, body, headers, seconds, ctx.workdir)
    result["cpu_percent"] = cpu.read()
    return result


def _wrk_baseline(ctx: Context, baseline: Baseline, path: str) -> dict[str, Any]:
    body, headers = _rest_request(ctx)
    seconds, _ = _seconds(ctx)
    cpu = CpuMeter({**baseline.pids, "kafka": ctx.kafka_pid})
    result = run_wrk(baseline.url(path), body, headers, seconds, ctx.workdir)
    result["cpu_percent"] = cpu.read()
    return result


def _line(label: str, r: dict[str, Any]) -> str:
    return (f"{label} {r['accepted_per_s']:,.0f}/s p50 {r['p50_ms']:.1f}ms p99 {r['p99_ms']:.1f}ms "
            f"errors {r['errors'] or 0} cpu {r['cpu_percent']}")


def _warm(ctx: Context, baseline: Baseline, path: str) -> None:
    body, headers = _rest_request(ctx)
    run_wrk(baseline.url(path), body, headers, _seconds(ctx)[1], ctx.workdir)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ----------------------------------------------------------------------------- make-run


def run_make_run(ctx: Context) -> list[Row]:
    path = f"/api/v1/projects/{ctx.get_template().outgoing.project_id}/events"
    product: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []

    def measure_product(i: int) -> None:
        with shipped(ctx, ctx.app(f"makerun{i}")) as shape:
            result = _wrk_product(ctx, shape, "make-run")
            # at once after the load: does the last accepted event get its delivery in time?
            took, delivered = shape.deliver_one(KEEP_UP_CAP)
            result["last_event_delivery_s"] = took
            result["last_event_delivered"] = delivered
            result["pipeline_lag_after"] = _pipeline_lag(ctx, shape.app_id)
            result["processes"] = sorted(shape.pids)
        product.append(result)
        log(_line(f"make-run run {i + 1}: product", result) + f"; last event delivered after {took:.2f}s"
            + ("" if delivered else f" (NOT within {KEEP_UP_CAP:.0f}s)")
            + f", pipeline {result['pipeline_lag_after']} records behind then")

    with Baseline(ctx) as baseline:
        _warm(ctx, baseline, path)

        def measure_baseline(i: int) -> None:
            result = _wrk_baseline(ctx, baseline, path)
            base.append(result)
            log(_line(f"make-run run {i + 1}: baseline", result))

        alternating(ctx.runs, measure_product, measure_baseline)

    rate = [r["accepted_per_s"] for r in product]
    brate = [r["accepted_per_s"] for r in base]
    capped = sum(1 for r in product if not r["last_event_delivered"])
    return [
        Row("make-run", f"accepted/s, {CONNECTIONS} conns", "req/s", rate, brate, f"{BARE}, 1 process",
            [_div(a, b) for a, b in zip(rate, brate)], target=">= 4000/s and >= 0.5x", target_min=4000,
            ratio_min=0.5, details=[{"product": p, "baseline": b} for p, b in zip(product, base)],
            cpu=[r["cpu_percent"] for r in product], baseline_cpu=[r["cpu_percent"] for r in base],
            note=(f"`convoy-stream dev` as `make run` starts it on this machine: one worker and {_cores()} API "
                  "processes on one port, on the bench's broker")),
        Row("make-run", "latency p99", "ms", [r["p99_ms"] for r in product], [r["p99_ms"] for r in base],
            f"{BARE}, 1 process", target="<= 50 ms", target_max=50, higher_is_better=False),
        Row("make-run", "last event -> its delivery", "s", [r["last_event_delivery_s"] for r in product],
            target="<= 2 s", target_max=2, higher_is_better=False,
            note=("one event sent right after the load ended; time until its delivery record is readable "
                  "(the pipeline keeping up with what the run accepted)"
                  + (f"; {capped} run(s) hit the {KEEP_UP_CAP:.0f} s cap (counted as {KEEP_UP_CAP:.0f})"
                     if capped else ""))),
    ]


# ----------------------------------------------------------------------------- e2e-api


@contextmanager
def _shipped_e2e(ctx: Context, app_id: str) -> Iterator[tuple[str, dict[str, int | None], str]]:
    with shipped(ctx, app_id) as shape:
        yield shape.events_url, shape.pids, shape.deliveries


def run_e2e_api(ctx: Context) -> list[Row]:
    results = measure_runs(ctx, "e2e-api", lambda app_id: _shipped_e2e(ctx, app_id))
    return [
        Row("e2e-api", f"send->delivery p50 @{RATE}/s", "ms", [r["p50_ms"] for r in results], target="<= 15 ms",
            target_max=15, higher_is_better=False, details=results, cpu=[r["cpu_percent"] for r in results],
            note=(f"through `convoy-stream dev` as `make run` starts it ({_cores()} API processes + one worker)"
                  + (f"; {_missing_note(results)}" if _missing_note(results) else ""))),
        Row("e2e-api", f"send->delivery p99 @{RATE}/s", "ms", [r["p99_ms"] for r in results], target="<= 50 ms",
            target_max=50, higher_is_better=False),
        Row("e2e-api", "HTTP answer p99", "ms", [r["http_p99_ms"] for r in results], higher_is_better=False),
    ]


# ----------------------------------------------------------------------------- scale-api


def run_scale_api(ctx: Context) -> list[Row]:
    path = f"/api/v1/projects/{ctx.get_template().outgoing.project_id}/events"
    counts = (1, 2)
    product: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    base: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}

    def measure_product(i: int, n: int) -> None:
        with api_beside_worker(ctx, ctx.app(f"scaleapi{n}p{i}"), n) as shape:
            result = _wrk_product(ctx, shape, f"scale-api {n}")
        product[n].append(result)
        log(_line(f"scale-api run {i + 1}: {n} API process(es)", result))

    with Baseline(ctx, 1) as one, Baseline(ctx, 2) as two:
        baselines = {1: one, 2: two}
        for b in baselines.values():
            _warm(ctx, b, path)

        def measure_baseline(i: int, n: int) -> None:
            result = _wrk_baseline(ctx, baselines[n], path)
            base[n].append(result)
            log(_line(f"scale-api run {i + 1}: baseline, {n} process(es)", result))

        for i in range(ctx.runs):  # alternate the order so drift of the machine favours neither
            steps = [(measure_product, 1), (measure_product, 2), (measure_baseline, 1), (measure_baseline, 2)]
            for step, n in (steps if i % 2 == 0 else list(reversed(steps))):
                step(i, n)

    rate = {n: [r["accepted_per_s"] for r in product[n]] for n in counts}
    brate = {n: [r["accepted_per_s"] for r in base[n]] for n in counts}
    scale = [_div(b, a) for a, b in zip(rate[1], rate[2])]
    bscale = [_div(b, a) for a, b in zip(brate[1], brate[2])]
    rows = []
    for n in counts:
        rows.append(Row(
            "scale-api", f"accepted/s, {n} API process{'es' if n > 1 else ''}", "req/s", rate[n], brate[n],
            f"{BARE}, {n} process{'es' if n > 1 else ''}", [_div(a, b) for a, b in zip(rate[n], brate[n])],
            target=">= 0.6x" if n == 1 else "", ratio_min=0.6 if n == 1 else None,
            details=[{"product": p, "baseline": b} for p, b in zip(product[n], base[n])],
            cpu=[r["cpu_percent"] for r in product[n]], baseline_cpu=[r["cpu_percent"] for r in base[n]],
            note="`convoy-stream api --processes N` beside one worker; the bare server forks N copies on the "
                 f"port (SO_REUSEPORT); wrk {CONNECTIONS} conns, REST" if n == 1 else ""))
    rows.append(Row(
        "scale-api", "2 processes / 1", "x", scale, bscale, f"{BARE} 2/1", [_div(a, b) for a, b in zip(scale, bscale)],
        target=">= 0.8x of bare's 2/1", ratio_min=0.8,
        note=(f"the role's gain from a second process against the bare server's on the same {_cores()} cores "
              "(wrk, the broker and, for the role, its worker share them)")))
    return rows
