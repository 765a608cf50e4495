"""pipeline and scale: ingest topic -> delivery records with a pre-filled backlog.

One run: a fresh app id (its own topics and consumer group), the config template copied to
its config topic, the backlog written to its ingest topic, then worker process(es) started.
The rate is the backlog size divided by the span between the first and the last delivery
record's Kafka timestamp (so worker boot is not counted, the whole backlog is); the wall time
from process start to the last delivery is kept in the JSON too.

Baseline: `bare_faust.py` iterating the same (already filled) ingest topic in its own
consumer group, timed from its first to its last record.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from context import PARTITIONS, Context, Row
from harness import (BENCH, PROCS, PY, RESULTS, CpuMeter, TopicProbe, Worker, delete_topics, log, produce_raw, remove_tree,
                     rss_mb)
from profile_summary import summarize_folded, write_flamegraph_svg

STALL_SECONDS = 45


def backlog_size(ctx: Context) -> int:
    return 30_000 if ctx.quick else 200_000


def pipeline_cap(ctx: Context) -> float:
    """Longest a measured run may take after its first delivery; the rate is then taken over
    what was delivered so far (keeps `make bench` near 15 minutes while the pipeline is slow)."""
    return 25.0 if ctx.quick else 45.0


def _run_workers(ctx: Context, app_id: str, workers: int, expected: int, records: int,
                 profile: dict[str, Any] | None = None, fill: Callable[[], float] | None = None) -> dict[str, Any]:
    """Start `workers` processes for `app_id` and wait for `expected` delivery records.

    With `fill`, the backlog is produced only once every worker is healthy (holds its
    partitions): several workers started on a backlog first rebalance while one of them
    already consumes, and that pause, a start-up cost, would count against throughput.
    """
    started = [Worker(ctx.bootstrap, ctx.workdir / f"{app_id}-w{i}", app_id, ctx.admin_token).start()
               for i in range(workers)]
    spawn = time.monotonic()
    try:
        if fill is not None:
            for w in started:
                w.wait_healthy()
            time.sleep(2.0)  # let the group settle after the last join
            log(f"{app_id}: {workers} workers holding their partitions; backlog produced in {fill():.1f}s")
        outcome = asyncio.run(_wait_deliveries(ctx, app_id, started, expected, spawn, profile))
        outcome["rss_mb"] = [rss_mb(w.pid) for w in started]
    finally:
        for w in started:
            w.stop()
        for w in started:
            remove_tree(w.data_dir)
    if profile is None:
        outcome.update(asyncio.run(_span(ctx, app_id)))
        span, delivered = outcome.get("span"), outcome.get("deliveries") or 0
        consumed = delivered >= expected or outcome.get("ingest_lag_at_end") == 0
        done = records if consumed else delivered * records / expected
        outcome["records_processed"] = round(done)
        outcome["rate"] = done / span if span else None
    return outcome


async def _span(ctx: Context, app_id: str) -> dict[str, Any]:
    topic = f"{app_id}-deliveries"
    out: dict[str, Any] = {}
    async with TopicProbe(ctx.bootstrap) as probe:
        out["deliveries"] = await probe.total(topic)
        span = await probe.first_last_timestamps(topic)
        if span is not None:
            out["first_ts"], out["last_ts"] = span
            out["span"] = span[1] - span[0]
        out["ingest_lag_at_end"] = await probe.lag(app_id, f"{app_id}-ingest")
    return out


async def _wait_deliveries(ctx: Context, app_id: str, workers: list[Worker], expected: int, spawn: float,
                           profile: dict[str, Any] | None) -> dict[str, Any]:
    topic = f"{app_id}-deliveries"
    out: dict[str, Any] = {"app_id": app_id, "workers": len(workers), "expected_deliveries": expected}
    cpu: CpuMeter | None = None
    spy = None
    cap = pipeline_cap(ctx)
    first_seen = last_lag_check = 0.0
    async with TopicProbe(ctx.bootstrap) as probe:
        last_total, last_change = -1, time.monotonic()
        while True:
            for w in workers:
                if not w.alive():
                    raise RuntimeError(f"worker {app_id} died:\n{w.log_tail()}")
            total = await probe.total(topic)
            now = time.monotonic()
            if total != last_total:
                last_total, last_change = total, now
            if total > 0 and cpu is None:
                cpu = CpuMeter({**{f"worker{i}": w.pid for i, w in enumerate(workers)}, **ctx.kafka_pids})
                first_seen = now
                out["first_delivery_after_spawn"] = now - spawn
                if profile is not None:
                    spy = _start_py_spy(workers[0].pid, profile)
            if profile is not None:
                if spy is None and cpu is not None:
                    break  # py-spy could not start
                if spy is not None and spy.poll() is not None:
                    out["profile_exit"] = spy.returncode
                    out["delivered_at_profile_end"] = total
                    break  # profile runs stop once the profile is taken
            elif total >= expected:
                break
            elif total > 0 and now - last_change > 2.0 and now - last_lag_check > 1.0:
                # Deliveries stopped short of the expected count: done if the whole backlog was
                # consumed (the product stored some events without a delivery).
                last_lag_check = now
                if await probe.lag(app_id, f"{app_id}-ingest") == 0:
                    out["missing_deliveries"] = expected - total
                    log(f"{app_id}: backlog consumed, but {expected - total} of {expected} expected deliveries "
                        "never came (events stored without a delivery; see the worker's event status)")
                    break
            if profile is None and first_seen and now - first_seen > cap and total < expected:
                out["capped"] = f"stopped {cap:.0f}s after the first delivery with {total} of {expected} deliveries"
                break
            if total > 0 and now - last_change > STALL_SECONDS:
                out["stalled"] = f"stuck at {total} of {expected} deliveries for {STALL_SECONDS}s"
                log(f"{app_id}: {out['stalled']}")
                break
            if now - spawn > 900:
                out["stalled"] = "no result after 15 minutes"
                break
            await asyncio.sleep(0.25)
        out["wall_from_spawn"] = time.monotonic() - spawn
        out["cpu_percent"] = cpu.read() if cpu else {}
    if spy is not None and spy.poll() is None:
        spy.wait(60)
    return out


def _start_py_spy(pid: int | None, profile: dict[str, Any]) -> Any:
    exe = Path(PY).parent / "py-spy"
    if not exe.exists() or pid is None:
        profile["error"] = "py-spy not installed (pip install py-spy)"
        return None
    args = [str(exe), "record", "--pid", str(pid), "--duration", str(profile["seconds"]), "--rate", "100",
            "--threads", "--format", "raw", "--output", str(profile["folded"])]
    # Blocking mode (py-spy pauses the worker for each sample): exact stacks; this run is not measured.
    log(f"py-spy recording the worker (pid {pid}) for {profile['seconds']}s")
    return PROCS.spawn(args, log_path=profile["log"])


def _bare_run(ctx: Context, topic: str, tag: str, records: int) -> dict[str, Any]:
    app_id = ctx.app(tag)
    data_dir = ctx.workdir / app_id
    data_dir.mkdir(parents=True, exist_ok=True)
    result = data_dir / "result.json"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap, "BARE_APP_ID": app_id, "BARE_TOPIC": topic,
           "BARE_EXPECTED": str(records), "BARE_RESULT": str(result), "BARE_DATA_DIR": str(data_dir / "faust"),
           "BARE_PARTITIONS": str(PARTITIONS)}
    proc = PROCS.spawn([PY, str(BENCH / "bare_faust.py")], env=env, log_path=data_dir / "bare.log", cwd=data_dir)
    spawn = time.monotonic()
    cpu = CpuMeter({"bare-faust": proc.pid, **ctx.kafka_pids})
    try:
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"bare faust exited {proc.returncode}: {(data_dir / 'bare.log').read_text()[-2000:]}")
            if time.monotonic() - spawn > 900:
                raise RuntimeError("bare faust did not finish in 15 minutes")
            time.sleep(0.2)
        out = json.loads(result.read_text())
        out["cpu_percent"] = cpu.read()
        out["wall_from_spawn"] = time.monotonic() - spawn
        out["rss_mb"] = rss_mb(proc.pid)
    finally:
        PROCS.stop(proc)
        remove_tree(data_dir)
        asyncio.run(delete_topics(ctx.bootstrap, app_id + "-"))
    span = out["last"] - out["first"]
    out["span"] = span
    out["rate"] = records / span if span > 0 else None
    out["bare_cpu_percent"] = round(100 * out["cpu_seconds"] / span, 1) if span > 0 else None
    if out["bare_cpu_percent"] is not None:  # its own CPU over first..last record, not its whole life
        out["cpu_percent"]["bare-faust"] = out["bare_cpu_percent"]
    return out


def _pipeline_run(ctx: Context, tag: str, workers: int, with_bare: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    records = backlog_size(ctx)
    backlog = ctx.backlog(records)
    app_id = ctx.app(tag)
    if workers == 1:
        produce = ctx.prepare_app(app_id, backlog)
        log(f"{app_id}: {records:,} records pre-filled in {produce:.1f}s; starting 1 worker")
        fill = None
    else:
        produce = ctx.prepare_app(app_id, None)
        log(f"{app_id}: starting {workers} workers; the backlog follows once they hold their partitions")
        fill = lambda: asyncio.run(produce_raw(ctx.bootstrap, f"{app_id}-ingest", backlog.items))  # noqa: E731
    try:
        run = _run_workers(ctx, app_id, workers, backlog.expected_deliveries, records, fill=fill)
        run["prefill_seconds"] = produce
        log(f"{app_id}: {run.get('deliveries'):,} deliveries, {_fmt(run.get('rate'))} records/s "
            f"(span {_fmt(run.get('span'))}s, cpu {run.get('cpu_percent')}){' CAPPED' if run.get('capped') else ''}")
        bare = None
        if with_bare:
            bare = _bare_run(ctx, f"{app_id}-ingest", f"{tag}-bare", records)
            log(f"{app_id}: bare Faust {_fmt(bare.get('rate'))} records/s (cpu {bare.get('cpu_percent')})")
    finally:
        asyncio.run(delete_topics(ctx.bootstrap, app_id + "-"))
    return run, bare


def _fmt(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def run_pipeline(ctx: Context) -> list[Row]:
    runs: list[dict[str, Any]] = []
    bares: list[dict[str, Any] | None] = []
    for i in range(ctx.runs):
        run, bare = _pipeline_run(ctx, f"pl{i}", 1, with_bare=True)
        runs.append(run)
        bares.append(bare)
    ctx.shared["pipeline_1w"] = runs
    profile_info = profile_pipeline(ctx)
    rates = [r.get("rate") for r in runs]
    base = [b.get("rate") if b else None for b in bares]
    ratios = [a / b if a and b else None for a, b in zip(rates, base)]
    records = backlog_size(ctx)
    rows = [
        Row("pipeline", f"records/s, {records // 1000}k backlog", "rec/s", rates, base, "bare Faust agent", ratios,
            target=">= 4000/s and >= 0.8x", target_min=4000, ratio_min=0.8,
            note=_rate_note(ctx, runs),
            details=[{"run": r, "bare": b} for r, b in zip(runs, bares)],
            cpu=[r.get("cpu_percent") for r in runs], baseline_cpu=[b.get("cpu_percent") if b else None for b in bares]),
        Row("pipeline", "worker RSS after run", "MB", [(r.get("rss_mb") or [{}])[0].get("VmRSS") if r.get("rss_mb") and r["rss_mb"][0] else None for r in runs],
            target="<= 500 MB", target_max=500, higher_is_better=False,
            note=f"VmRSS of the worker when the run ended, after {_processed(runs)} records (rocksdb tables)"),
    ]
    if profile_info:
        rows[0].details.append({"profile": profile_info})
    return rows


def profile_pipeline(ctx: Context) -> dict[str, Any] | None:
    """An extra, unmeasured pipeline run with py-spy attached to the worker."""
    seconds = 8 if ctx.quick else 20
    records = backlog_size(ctx)
    backlog = ctx.backlog(records)
    app_id = ctx.app("profile")
    RESULTS.mkdir(parents=True, exist_ok=True)
    folded = RESULTS / "pipeline-profile.folded"
    profile = {"seconds": seconds, "folded": folded, "log": ctx.workdir / "py-spy.log"}
    try:
        ctx.prepare_app(app_id, backlog)
        run = _run_workers(ctx, app_id, 1, backlog.expected_deliveries, records, profile=profile)
    except Exception as exc:
        log(f"profile run failed: {exc}")
        return {"error": str(exc)}
    finally:
        asyncio.run(delete_topics(ctx.bootstrap, app_id + "-"))
    if profile.get("error") or not folded.exists():
        log(f"no profile: {profile.get('error') or 'py-spy wrote nothing'} (see {profile['log']})")
        return {"error": profile.get("error") or "py-spy wrote nothing"}
    text = summarize_folded(folded.read_text(), seconds=seconds, title=f"py-spy, {seconds}s of the pipeline worker "
                            f"({run.get('delivered_at_profile_end') or run.get('deliveries')} deliveries by the end)")
    (RESULTS / "pipeline-profile.txt").write_text(text)
    try:
        write_flamegraph_svg(folded.read_text(), RESULTS / "pipeline-profile.svg", title="convoy-stream pipeline worker")
    except Exception as exc:  # the text summary is the deliverable; the picture is a bonus
        log(f"flame graph not written: {exc}")
    log(f"profile written to {RESULTS / 'pipeline-profile.txt'}")
    return {"seconds": seconds, "txt": str(RESULTS / "pipeline-profile.txt"), "cpu_percent": run.get("cpu_percent")}


def _processed(runs: list[dict[str, Any]]) -> str:
    done = sorted(r.get("records_processed") or 0 for r in runs)
    return f"{done[len(done) // 2]:,}" if done else "?"


def _rate_note(ctx: Context, runs: list[dict[str, Any]]) -> str:
    note = "records / (last - first delivery record timestamp)"
    missing = [r.get("missing_deliveries") for r in runs if r.get("missing_deliveries")]
    if missing:
        note += (f"; MISSING DELIVERIES: {missing} expected deliveries never came although the whole backlog "
                 "was consumed (events stored without a delivery)")
    capped = sum(1 for r in runs if r.get("capped"))
    if capped:
        note += (f"; {capped} of {len(runs)} runs hit the {pipeline_cap(ctx):.0f}s cap before the backlog was done "
                 "(rate over the records delivered by then)")
    return note


def run_scale(ctx: Context) -> list[Row]:
    one = ctx.shared.get("pipeline_1w")
    if not one:
        one = [_pipeline_run(ctx, f"sc1w{i}", 1, with_bare=False)[0] for i in range(ctx.runs)]
    two = [_pipeline_run(ctx, f"sc2w{i}", 2, with_bare=False)[0] for i in range(ctx.runs)]
    r1 = [r.get("rate") for r in one]
    r2 = [r.get("rate") for r in two]
    ratios = [b / a if a and b else None for a, b in zip(r1, r2)]
    return [
        Row("scale", "1 worker, 8 partitions", "rec/s", r1, note=_rate_note(ctx, one), details=[{"run": r} for r in one]),
        Row("scale", "2 workers, 8 partitions", "rec/s", r2, r1, "1 worker", ratios,
            target=">= 1.6x one worker", ratio_min=1.6, note=_rate_note(ctx, two), details=[{"run": r} for r in two],
            cpu=[r.get("cpu_percent") for r in two]),
    ]
