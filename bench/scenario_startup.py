"""startup: how long until /health answers 200.

- `convoy-stream dev` (what `make run` runs after its install step) with the jar cache warm
  and a fresh data directory: embedded Kafka boot + storage format + worker + group join.
- a worker restarted on a running broker: a worker that ingested a small backlog into its
  rocksdb tables is stopped (SIGTERM) and started again with the same data directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from context import Context, Row
from harness import PROCS, PY, ROOT, TopicProbe, Worker, delete_topics, free_port, log, remove_tree

RESTART_BACKLOG = 10_000


def restart_backlog(ctx: Context) -> int:
    return RESTART_BACKLOG // 2 if ctx.quick else RESTART_BACKLOG


def _dev_start(ctx: Context, i: int) -> dict[str, Any]:
    data_dir = ctx.workdir / f"dev{i}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"CONVOY_STREAM_PORT": str(port), "CONVOY_STREAM_KAFKA_PORT": str(free_port()),
                "CONVOY_STREAM_DATA_DIR": str(data_dir), "CONVOY_STREAM_ADMIN_TOKEN": ctx.admin_token,
                "CONVOY_STREAM_APP_ID": ctx.app(f"dev{i}")})
    script = Path(PY).parent / "convoy-stream"
    cmd = [str(script), "dev"] if script.exists() else [PY, "-m", "convoy_stream.cli", "dev"]
    start = time.monotonic()
    proc = PROCS.spawn(cmd, env=env, log_path=ctx.workdir / f"dev{i}.log", cwd=ROOT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"convoy-stream dev exited {proc.returncode}: "
                                   f"{(ctx.workdir / f'dev{i}.log').read_text(errors='replace')[-2000:]}")
            if time.monotonic() - start > 120:
                raise RuntimeError("convoy-stream dev: no /health 200 within 120 s")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return {"seconds": time.monotonic() - start}
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    finally:
        PROCS.stop(proc, timeout=30)
        remove_tree(data_dir)


def _worker_restart(ctx: Context, i: int) -> dict[str, Any]:
    import asyncio

    backlog = ctx.backlog(restart_backlog(ctx))
    app_id = ctx.app(f"restart{i}")
    ctx.prepare_app(app_id, backlog)
    data_dir = ctx.workdir / app_id
    worker = Worker(ctx.bootstrap, data_dir, app_id, ctx.admin_token).start()
    out: dict[str, Any] = {}
    try:
        out["first_start_seconds"] = worker.wait_healthy()

        async def wait_done() -> int:
            async with TopicProbe(ctx.bootstrap) as probe:
                deadline = time.monotonic() + 120
                total = 0
                while time.monotonic() < deadline:
                    total = await probe.total(f"{app_id}-deliveries")
                    if total >= backlog.expected_deliveries or await probe.lag(app_id, f"{app_id}-ingest") == 0:
                        break
                    await asyncio.sleep(0.5)
                return total

        out["deliveries_before_restart"] = asyncio.run(wait_done())
        worker.stop()
        restarted = Worker(ctx.bootstrap, data_dir, app_id, ctx.admin_token, port=worker.port)
        worker = restarted.start()
        out["restart_seconds"] = worker.wait_healthy()
    finally:
        worker.stop()
        remove_tree(data_dir)
        asyncio.run(delete_topics(ctx.bootstrap, app_id + "-"))
    return out


def run_startup(ctx: Context) -> list[Row]:
    devs: list[dict[str, Any]] = []
    restarts: list[dict[str, Any]] = []
    for i in range(ctx.runs):
        devs.append(_dev_start(ctx, i))
        log(f"startup run {i + 1}: convoy-stream dev -> /health 200 in {devs[-1]['seconds']:.1f}s")
        restarts.append(_worker_restart(ctx, i))
        log(f"startup run {i + 1}: worker first start {restarts[-1]['first_start_seconds']:.1f}s, "
            f"restart with tables {restarts[-1]['restart_seconds']:.1f}s")
    return [
        Row("startup", "dev (make run) -> /health 200", "s", [d["seconds"] for d in devs], target="<= 15 s",
            target_max=15, higher_is_better=False, note="warm jar cache, fresh data dir (Kafka format + boot)",
            details=devs),
        Row("startup", "worker restart -> /health 200", "s", [r["restart_seconds"] for r in restarts],
            target="<= 10 s", target_max=10, higher_is_better=False,
            note=f"after ingesting {restart_backlog(ctx) // 1000}k events into rocksdb tables; SIGTERM then start",
            details=restarts),
        Row("startup", "fresh worker -> /health 200", "s", [r["first_start_seconds"] for r in restarts],
            higher_is_better=False, note="new app on a running broker"),
    ]
