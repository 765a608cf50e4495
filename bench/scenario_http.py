"""rest and webhook: accepted requests/s and latency at 64 concurrent keep-alive clients (wrk).

The product is one `convoy-stream worker` (API + pipeline agent in one process, as users run
it), fresh for every run: a new app id (topics, consumer group) with the config template, a
short warm-up, then the measured wrk run; the worker is stopped before the baseline runs.
Its pipeline keeps consuming what the load accepted during the run; how far behind it was at
the end is recorded. Baseline: `baseline_server.py`, same body and headers, same wrk load,
same broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson

from context import PARTITIONS, Context, Row
from fixtures import HMAC_HEADER, event_body, sign, webhook_body
from harness import (BENCH, PROCS, PY, CpuMeter, TopicProbe, Worker, alternating, create_topic, descendants, free_port, log,
                     wait_log_lines)

CONNECTIONS = 64


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: installing Debian's package (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def run_wrk(url: str, body: bytes, headers: dict[str, str], seconds: int, workdir: Path) -> dict[str, Any]:
    body_file, headers_file = workdir / "wrk-body", workdir / "wrk-headers"
    body_file.write_bytes(body)
    headers_file.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_HEADERS_FILE": str(headers_file)}
    cmd = [ensure_wrk(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "-s", str(BENCH / "post.lua"), url]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    out = json.loads(line.split(" ", 1)[1])
    seconds_run = out["duration_us"] / 1e6
    good = out["requests"] - out["status_errors"]
    out["accepted_per_s"] = good / seconds_run
    out["errors"] = {k: out[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts") if out[k]}
    out["p50_ms"] = out["p50_us"] / 1000
    out["p99_ms"] = out["p99_us"] / 1000
    return out


class Baseline:
    """The bare aiohttp + aiokafka server, on its own topic of the same broker; with
    `processes` > 1 that many copies share the port (SO_REUSEPORT), like the API role."""

    def __init__(self, ctx: Context, processes: int = 1) -> None:
        self.ctx = ctx
        self.processes = processes
        self.port = free_port()
        self.topic = ctx.app("baseline")
        self.proc: Any = None
        self.log_path = ctx.workdir / f"baseline-{processes}p-{self.port}.log"  # fresh: its "ready" lines count

    def __enter__(self) -> "Baseline":
        asyncio.run(create_topic(self.ctx.bootstrap, self.topic, PARTITIONS))
        self.proc = PROCS.spawn([PY, str(BENCH / "baseline_server.py"), "--port", str(self.port), "--bootstrap",
                                 self.ctx.bootstrap, "--topic", self.topic, "--processes", str(self.processes)],
                                log_path=self.log_path)
        try:
            if wait_log_lines(self.log_path, "baseline ready", self.processes, 30) < self.processes:
                raise RuntimeError(f"baseline server ({self.processes} processes) did not start: "
                                   f"{self.log_path.read_text(errors='replace')[-1500:]}")
            if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code != 200:
                raise RuntimeError("baseline server does not answer /health")
        except BaseException:
            PROCS.stop(self.proc)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        PROCS.stop(self.proc)

    @property
    def pids(self) -> dict[str, int | None]:
        """CpuMeter names: `baseline` (the first process) and `baseline2`.. (its forks)."""
        forks = descendants(self.proc.pid) if self.proc is not None else []
        return {"baseline": self.proc.pid, **{f"baseline{i + 2}": pid for i, pid in enumerate(forks)}}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _pipeline_lag(ctx: Context, app_id: str) -> int | None:
    async def go() -> int | None:
        async with TopicProbe(ctx.bootstrap) as probe:
            return await probe.lag(app_id, f"{app_id}-ingest")

    return asyncio.run(go())


def _scenario(ctx: Context, name: str, path: str, body: bytes, headers: dict[str, str], expect: int,
              api: bool = False) -> list[Row]:
    seconds = 5 if ctx.quick else 8
    warm = 2 if ctx.quick else 3
    product: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []

    def measure_product(i: int) -> None:
        # A fresh app and worker per run: no run inherits another's pipeline backlog, and no
        # worker is alive (its pipeline still busy) while the baseline is measured.
        worker = ctx.start_worker(ctx.app(f"{name}{i}"))
        front = None
        try:
            if api:  # one API process (`convoy-stream api --processes 1`) beside the worker takes the load
                front = Worker(ctx.bootstrap, worker.data_dir / "api", worker.app_id, ctx.admin_token,
                               command=("api", "--processes", "1")).start()
                front.wait_healthy()
            url = (front or worker).url + path
            check = httpx.post(url, content=body, headers=headers, timeout=10)
            if check.status_code != expect:
                raise RuntimeError(f"{name}: a single request got HTTP {check.status_code}: {check.text[:300]}")
            run_wrk(url, body, headers, warm, ctx.workdir)
            cpu = CpuMeter({"worker": worker.pid, "kafka": ctx.kafka_pid, **({"api": front.pid} if front else {})})
            spy = _profile((front or worker).pid, seconds, f"{name}-{i}") if os.environ.get("HTTP_PROFILE") else None
            result = run_wrk(url, body, headers, seconds, ctx.workdir)
            result["cpu_percent"] = cpu.read()
            if spy is not None:
                spy.wait(60)
            result["pipeline_lag_at_end"] = _pipeline_lag(ctx, worker.app_id)
        finally:
            if front is not None:
                front.stop()
            ctx.drop_worker(worker)
        product.append(result)
        log(f"{name} run {i + 1}: product {result['accepted_per_s']:,.0f}/s p50 {result['p50_ms']:.1f}ms "
            f"p99 {result['p99_ms']:.1f}ms cpu {result['cpu_percent']} errors {result['errors'] or 0} "
            f"(pipeline {result['pipeline_lag_at_end']} records behind at the end)")

    with Baseline(ctx) as baseline:
        base_url = baseline.url(path)
        run_wrk(base_url, body, headers, warm, ctx.workdir)

        def measure_baseline(i: int) -> None:
            cpu = CpuMeter({**baseline.pids, "kafka": ctx.kafka_pid})
            result = run_wrk(base_url, body, headers, seconds, ctx.workdir)
            result["cpu_percent"] = cpu.read()
            base.append(result)
            log(f"{name} run {i + 1}: baseline {result['accepted_per_s']:,.0f}/s p50 {result['p50_ms']:.1f}ms "
                f"p99 {result['p99_ms']:.1f}ms cpu {result['cpu_percent']}")

        alternating(ctx.runs, measure_product, measure_baseline)

    rate = [r["accepted_per_s"] for r in product]
    brate = [r["accepted_per_s"] for r in base]
    pairs = [{"product": p, "baseline": b} for p, b in zip(product, base)]
    if api:
        return [
            Row(name, f"accepted/s, {CONNECTIONS} conns", "req/s", rate, brate, "bare aiohttp+aiokafka",
                [a / b if b else None for a, b in zip(rate, brate)], target=">= 0.6x", ratio_min=0.6,
                details=pairs, cpu=[r["cpu_percent"] for r in product], baseline_cpu=[r["cpu_percent"] for r in base],
                note=("one API process takes the load; a worker beside it runs the pipeline on the same 2 cores; "
                      f"the pipeline was {_median_lag(product)} records behind at the end of a run")),
            Row(name, "latency p99", "ms", [r["p99_ms"] for r in product], [r["p99_ms"] for r in base],
                "bare aiohttp+aiokafka", target="<= 50 ms", target_max=50, higher_is_better=False),
        ]
    return [
        Row(name, f"accepted/s, {CONNECTIONS} conns", "req/s", rate, brate, "bare aiohttp+aiokafka",
            [a / b if b else None for a, b in zip(rate, brate)], target=">= 4000/s and >= 0.7x",
            target_min=4000, ratio_min=0.7, details=pairs, cpu=[r["cpu_percent"] for r in product],
            baseline_cpu=[r["cpu_percent"] for r in base],
            note=("one worker process: HTTP and its pipeline agent share it, as users run it; the pipeline was "
                  f"{_median_lag(product)} records behind at the end of a run")),
        Row(name, "latency p50", "ms", [r["p50_ms"] for r in product], [r["p50_ms"] for r in base],
            "bare aiohttp+aiokafka", higher_is_better=False),
        Row(name, "latency p99", "ms", [r["p99_ms"] for r in product], [r["p99_ms"] for r in base],
            "bare aiohttp+aiokafka", target="<= 50 ms", target_max=50, higher_is_better=False),
    ]


def _profile(pid: int | None, seconds: int, tag: str) -> Any:
    """HTTP_PROFILE=<path prefix>: py-spy samples the worker during the measured run (without
    pausing it, so the run stays comparable) into `<prefix>-<scenario>-<run>.folded`; summarise
    with `bench/profile_summary.py`. Profiled runs are for finding costs, not for the table."""
    exe = Path(PY).parent / "py-spy"
    out = f"{os.environ['HTTP_PROFILE']}-{tag}.folded"
    log(f"py-spy sampling the worker (pid {pid}) into {out}")
    return PROCS.spawn([str(exe), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
                        "--nonblocking", "--format", "raw", "--output", out], log_path=Path(out + ".log"))


def _median_lag(runs: list[dict[str, Any]]) -> str:
    lags = sorted(r["pipeline_lag_at_end"] for r in runs if r.get("pipeline_lag_at_end") is not None)
    return f"{lags[len(lags) // 2]:,}" if lags else "?"


def run_rest(ctx: Context) -> list[Row]:
    template = ctx.get_template()
    out = template.outgoing
    body = orjson.dumps(event_body(out.endpoint_ids[0], 1))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {out.api_key}"}
    return _scenario(ctx, "rest", f"/api/v1/projects/{out.project_id}/events", body, headers, 201)


def run_webhook(ctx: Context) -> list[Row]:
    template = ctx.get_template()
    inc = template.incoming
    body = webhook_body(1)
    headers = {"Content-Type": "application/json", HMAC_HEADER: sign(inc.secret, body)}
    return _scenario(ctx, "webhook", f"/ingest/{inc.mask_id}", body, headers, 200)


def run_api_rest(ctx: Context) -> list[Row]:
    """`rest` through one API process (`convoy-stream api --processes 1`) beside one worker."""
    template = ctx.get_template()
    out = template.outgoing
    body = orjson.dumps(event_body(out.endpoint_ids[0], 1))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {out.api_key}"}
    return _scenario(ctx, "api-rest", f"/api/v1/projects/{out.project_id}/events", body, headers, 201, api=True)


def run_api_webhook(ctx: Context) -> list[Row]:
    """`webhook` (HMAC source) through one API process beside one worker."""
    inc = ctx.get_template().incoming
    body = webhook_body(1)
    headers = {"Content-Type": "application/json", HMAC_HEADER: sign(inc.secret, body)}
    return _scenario(ctx, "api-webhook", f"/ingest/{inc.mask_id}", body, headers, 200, api=True)
