"""convoy-stream benchmark suite: one entry point, one table (issue 6).

    make bench                                   # every scenario, 3 runs each (~22 min)
    .venv/bin/python bench/run.py --quick        # 1 run, smaller backlogs (~3 min)
    .venv/bin/python bench/run.py --only rest,pipeline --runs 5
    .venv/bin/python bench/run.py --only pipeline,e2e --cluster 3   # replication 1 beside 3

It starts what it needs (an embedded Apache Kafka on a free port, convoy-stream workers, the
baselines, wrk, moto / the Pub/Sub emulator / RabbitMQ for the bridges) and stops all of it
again, also on Ctrl-C. Each row of the table is the median of the runs with min and max and,
where there is one, the ratio to a baseline measured in the same invocation on the same
broker (median of the per-run ratios). The table and every raw number are written to
`bench/results/<timestamp>.json` and `bench/results/latest.json`; the pipeline profile to
`bench/results/pipeline-profile.{txt,svg,folded}`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from context import Context, Row  # noqa: E402
from harness import PROCS, PY, RESULTS, ROOT, install_signal_handlers, log, new_nonce, remove_tree, start_kafka, summary  # noqa: E402

# Run order: bridges last (they need services of their own). Every measured run gets a fresh
# app (its own topics and consumer group) and fresh worker processes, so no run inherits the
# backlog or the state of another.
ORDER = ["rest", "webhook", "api-rest", "api-webhook", "make-run", "scale-api", "e2e", "e2e-api", "pipeline", "scale", "startup", "lookups", "bridges"]


def scenario_runner(name: str) -> Callable[[Context], list[Row]]:
    if name == "rest":
        from scenario_http import run_rest
        return run_rest
    if name == "webhook":
        from scenario_http import run_webhook
        return run_webhook
    if name == "api-rest":
        from scenario_http import run_api_rest
        return run_api_rest
    if name == "api-webhook":
        from scenario_http import run_api_webhook
        return run_api_webhook
    if name == "make-run":
        from scenario_api import run_make_run
        return run_make_run
    if name == "scale-api":
        from scenario_api import run_scale_api
        return run_scale_api
    if name == "e2e":
        from scenario_e2e import run_e2e
        return run_e2e
    if name == "e2e-api":
        from scenario_api import run_e2e_api
        return run_e2e_api
    if name == "pipeline":
        from scenario_pipeline import run_pipeline
        return run_pipeline
    if name == "scale":
        from scenario_pipeline import run_scale
        return run_scale
    if name == "startup":
        from scenario_startup import run_startup
        return run_startup
    if name == "lookups":
        from scenario_lookups import run_lookups
        return run_lookups
    if name == "bridges":
        from scenario_bridges import run_bridges
        return run_bridges
    raise ValueError(name)


def ensure_py_spy() -> None:
    if (Path(PY).parent / "py-spy").exists():
        return
    log("installing py-spy into the venv (pip install py-spy) for the pipeline profile")
    subprocess.run([PY, "-m", "pip", "install", "-q", "py-spy"], check=False)


# ----------------------------------------------------------------------------- table


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "s", "x") or abs(value) < 100:
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{value:,.0f}"


def row_status(row: Row, med: float | None, ratio: float | None) -> str:
    checks = []
    if row.target_min is not None:
        checks.append(med is not None and med >= row.target_min)
    if row.target_max is not None:
        checks.append(med is not None and med <= row.target_max)
    if row.ratio_min is not None:
        checks.append(ratio is not None and ratio >= row.ratio_min)
    if not checks:
        return ""
    return "ok" if all(checks) else "MISS"


def row_document(row: Row) -> dict[str, Any]:
    runs = summary(row.runs)
    base = summary(row.baseline) if row.baseline is not None else None
    ratios = summary(row.ratios) if row.ratios is not None else None
    ratio = ratios["median"] if ratios else None
    return {
        "scenario": row.scenario, "metric": row.metric, "unit": row.unit,
        "median": runs["median"], "min": runs["min"], "max": runs["max"], "runs": runs["values"],
        "baseline": row.baseline_label or None,
        "baseline_median": base["median"] if base else None, "baseline_min": base["min"] if base else None,
        "baseline_max": base["max"] if base else None, "baseline_runs": base["values"] if base else None,
        "ratio": ratio, "ratio_min": ratios["min"] if ratios else None, "ratio_max": ratios["max"] if ratios else None,
        "target": row.target, "status": row_status(row, runs["median"], ratio), "note": row.note,
        "cpu_median": _cpu_median(row.cpu), "baseline_cpu_median": _cpu_median(row.baseline_cpu),
        "details": row.details,
    }


def _cpu_median(runs: list[dict[str, float] | None] | None) -> dict[str, float] | None:
    if not runs:
        return None
    names = {name for run in runs if run for name in run}
    out = {}
    for name in sorted(names):
        values = [run[name] for run in runs if run and name in run]
        out[name] = round(summary(values)["median"], 1)
    return out or None


def render_cpu(docs: list[dict[str, Any]]) -> str:
    """Where the CPU went in the measured runs: the evidence for what limits each row."""
    lines = []
    for d in docs:
        for label, cpu in (("", d.get("cpu_median")), ("baseline: ", d.get("baseline_cpu_median"))):
            if not cpu:
                continue
            ours = {k: v for k, v in cpu.items() if k not in ("machine", "others", "bench-process") or v >= 5}
            text = ", ".join(f"{k} {v:.0f}" for k, v in sorted(ours.items(), key=lambda kv: -kv[1])
                             if k not in ("machine", "others"))
            name = d["metric"].split()[0] if d["scenario"] == "bridges" else d["scenario"]
            if d["scenario"] == "scale-api":  # one row per process count
                name = f"{name} ({d['metric'].split(', ')[-1]})"
            lines.append(f"  {name:<9} {label}{text}; machine {cpu.get('machine', 0):.0f} "
                         f"(others {cpu.get('others', 0):.0f})")
    if not lines:
        return ""
    return ("CPU during the measured runs, median % of one core (200 = both cores; *.main-thread-starved = "
            "runnable but waiting for a core; others = processes the benchmark did not start):\n" + "\n".join(lines))


def render_table(docs: list[dict[str, Any]]) -> str:
    header = ["scenario", "metric", "median", "min", "max", "unit", "baseline median (min-max)", "ratio", "target", ""]
    lines = []
    for d in docs:
        unit = d["unit"]
        if d["baseline_median"] is not None:
            base = (f"{_num(d['baseline_median'], unit)} ({_num(d['baseline_min'], unit)}-"
                    f"{_num(d['baseline_max'], unit)}) {d['baseline']}")
        else:
            base = "-"
        ratio = f"{d['ratio']:.2f}x" if d["ratio"] is not None else "-"
        lines.append([d["scenario"], d["metric"], _num(d["median"], unit), _num(d["min"], unit), _num(d["max"], unit),
                      unit, base, ratio, d["target"] or "-", d["status"]])
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    numeric = {2, 3, 4, 7}

    def fmt(r: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(r) for r in lines]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def environment(args: argparse.Namespace) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return ""

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args),
        "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--", "convoy_stream", "tables", "bridges")),
        "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (default: all of {','.join(ORDER)})")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3, --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="1 run, short loads, small backlogs (~3 minutes)")
    parser.add_argument("--lookup-events", type=int, default=None,
                        help="events stored for the lookups scenario (default 1,000,000; --quick: 100,000)")
    parser.add_argument("--cluster", type=int, default=0, metavar="NODES",
                        help="run on a local KRaft cluster of NODES nodes instead of one broker, each "
                             "scenario twice: topics with replication 1 and with min(3, NODES)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and data of the run (printed path)")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in args.only.split(",") if s.strip()] or list(ORDER)
    unknown = [s for s in selected if s not in ORDER]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {ORDER}")
    selected = [s for s in ORDER if s in selected]
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be >= 1")

    install_signal_handlers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="convoy-bench-"))
    env = environment(args)
    env["runs"] = runs
    started = time.monotonic()
    docs: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    ctx: Context | None = None
    interrupted = False
    try:
        if "pipeline" in selected:
            ensure_py_spy()
        log(f"starting embedded Kafka (work dir {workdir})")
        kafka = start_kafka(workdir, args.cluster)
        log(f"Kafka on {kafka.bootstrap}")
        ctx = Context(kafka=kafka, workdir=workdir, runs=runs, quick=args.quick, nonce=new_nonce(),
                      lookup_events=args.lookup_events)
        # with --cluster: every scenario with replication 1, then with replication 3 (workers
        # and the topics the benchmark creates read CONVOY_STREAM_REPLICATION_FACTOR)
        passes: list[int | None] = [1, min(3, args.cluster)] if args.cluster else [None]
        for name in selected:
            for rf in passes:
                label = name if rf is None else f"{name} rf{rf}"
                if rf is not None:
                    os.environ["CONVOY_STREAM_REPLICATION_FACTOR"] = str(rf)
                    os.environ["CONVOY_STREAM_MIN_INSYNC_REPLICAS"] = str(max(1, rf - 1))
                    ctx.shared.clear()
                log(f"=== {label} ({runs} run{'s' if runs > 1 else ''})")
                t0 = time.monotonic()
                try:
                    for row in scenario_runner(name)(ctx):
                        if rf is not None:
                            row.scenario = f"{row.scenario} rf{rf}"
                        docs.append(row_document(row))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    errors[label] = f"{type(exc).__name__}: {exc}"
                    log(f"{label} failed: {errors[label]}\n{traceback.format_exc()}")
                timings[label] = round(time.monotonic() - t0, 1)
                log(f"=== {label} done in {timings[label]:.0f}s")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything")
    finally:
        PROCS.stop_all()
        if not args.keep_workdir:
            remove_tree(workdir)

    table = render_table(docs)
    elapsed = time.monotonic() - started
    cpu_text = render_cpu(docs)
    notes = [f"{d['scenario']} {d['metric']}: {d['note']}" for d in docs if d["note"]]
    # files first: a closed stdout (| head) must not lose the results
    document = {"environment": env, "elapsed_seconds": round(elapsed, 1), "scenario_seconds": timings,
                "interrupted": interrupted, "errors": errors, "rows": docs, "table": table, "cpu": cpu_text,
                "notes": notes}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{stamp}{'-quick' if args.quick else ''}.json"
    text = json.dumps(document, indent=2, default=str)
    path.write_text(text)
    if not interrupted:
        (RESULTS / "latest.json").write_text(text)
    print()
    print(f"convoy-stream benchmark, {runs} run(s) per row, {os.cpu_count()} CPUs, {elapsed / 60:.1f} min"
          + (" (quick)" if args.quick else "") + (" INTERRUPTED" if interrupted else ""))
    print(table)
    for name, message in errors.items():
        print(f"{name}: FAILED: {message}")
    if cpu_text:
        print(cpu_text)
    if notes:
        print("notes:\n  " + "\n  ".join(notes))
    print(f"results: {path.relative_to(ROOT)}" + ("" if interrupted else " (and bench/results/latest.json)")
          + (f"; work dir kept at {workdir}" if args.keep_workdir else ""), flush=True)
    return 1 if (errors or interrupted) else 0


if __name__ == "__main__":
    sys.exit(main())
