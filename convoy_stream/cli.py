"""`convoy-stream` command line: dev, worker, bridge, kafka.

The app module reads its settings from the environment when imported, so
each command sets the environment first and imports the app after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path


def _run_worker(*, bridges: bool = True, web: bool = True) -> None:
    os.environ.setdefault("CONVOY_STREAM_BRIDGES", "1" if bridges else "0")
    import uvloop
    from faust.worker import Worker

    from . import pipeline  # noqa: F401  (registers the agent)
    from .app import app, create_topics, settings

    layout = asyncio.run(create_topics())

    # A token the operator chose is never written to the log; a generated one is shown so a
    # first `make run` can be used at once (it is also in <data dir>/admin-token, mode 0600).
    given = bool(os.environ.get("CONVOY_STREAM_ADMIN_TOKEN"))
    admin_shown = "(from CONVOY_STREAM_ADMIN_TOKEN)" if given else settings.admin_token
    print(
        f"convoy-stream worker\n"
        f"  API:        {settings.base_url}/api/v1\n"
        f"  ingest:     {settings.base_url}/ingest/<mask_id>\n"
        f"  Kafka:      {settings.kafka_bootstrap} ({settings.kafka.describe()})\n"
        f"  topics:     replication factor {layout.replication_factor}, "
        f"min.insync.replicas {layout.min_insync_replicas}\n"
        f"  admin token {admin_shown}   (Authorization: Bearer <token> for POST /api/v1/projects)\n"
        f"  data dir:   {settings.data_dir.resolve()}",
        flush=True,
    )
    # uvloop: cheaper socket reads and writes for HTTP and Kafka alike (Faust's own option).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG (so it can spin on every log
    # record) whenever the level is WARN or above: every aiokafka debug call then builds a
    # LogRecord, about a tenth of the pipeline's CPU. No spinner, no DEBUG root.
    worker.spinner = None
    tune_gc()
    worker.execute_from_commandline()


def tune_gc() -> None:
    """Fewer full garbage collections: they were the HTTP latency tail.

    With CPython's default thresholds the worker ran about three full collections a
    second under load (the pipeline's buffers keep many objects alive), each 30-50 ms
    with the event loop stopped, and freed nothing. Objects alive after import are
    frozen out of every collection; the thresholds make full collections rare.
    """
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 20, 50)  # defaults: 700, 10, 10


def cmd_dev(args: argparse.Namespace) -> None:
    """Embedded Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) plus one worker."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        _run_worker()
        return
    from .embedded_kafka import EmbeddedKafka

    data_dir = Path(os.environ.get("CONVOY_STREAM_DATA_DIR", ".data"))
    port = int(os.environ.get("CONVOY_STREAM_KAFKA_PORT", "9092"))
    kafka = EmbeddedKafka(port=port, data_dir=data_dir / "kafka")
    print(f"starting embedded Apache Kafka on 127.0.0.1:{port} (first run downloads it with mvn)...", flush=True)
    kafka.start()
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
    try:
        _run_worker()
    finally:
        kafka.stop()


def cmd_worker(args: argparse.Namespace) -> None:
    """One more worker of the same app against KAFKA_BOOTSTRAP_SERVERS (scale-out)."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        sys.exit("convoy-stream worker: set KAFKA_BOOTSTRAP_SERVERS (e.g. 127.0.0.1:9092)")
    _run_worker(bridges=not args.no_bridges)


def cmd_bridge(args: argparse.Namespace) -> None:
    """Bridges only: consume broker sources into Kafka, in a process of their own."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        sys.exit("convoy-stream bridge: set KAFKA_BOOTSTRAP_SERVERS")
    import uvloop

    from .bridge_runner import run_standalone

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # the worker's loop, see _run_worker
    asyncio.run(run_standalone())


def cmd_kafka(args: argparse.Namespace) -> None:
    """Run the embedded Kafka alone in the foreground: one node (for `make worker`
    experiments), or with --nodes N a local KRaft cluster, optionally with SCRAM users."""
    data_root = Path(os.environ.get("CONVOY_STREAM_DATA_DIR", ".data"))
    port = args.port or int(os.environ.get("CONVOY_STREAM_KAFKA_PORT", "9092"))
    if args.nodes == 1 and not args.scram_user:
        from .embedded_kafka import main as kafka_main

        sys.exit(kafka_main(["--port", str(port), "--data-dir", str(data_root / "kafka")]))
    from .cluster_cli import run_cluster

    sys.exit(run_cluster(args.nodes, data_root / f"kafka-cluster-{args.nodes}", port,
                         args.scram_user))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="convoy-stream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help=cmd_dev.__doc__).set_defaults(func=cmd_dev)
    worker = sub.add_parser("worker", help=cmd_worker.__doc__)
    worker.add_argument("--no-bridges", action="store_true", help="do not run broker bridges in this worker")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("bridge", help=cmd_bridge.__doc__).set_defaults(func=cmd_bridge)
    kafka = sub.add_parser("kafka", help=cmd_kafka.__doc__)
    kafka.add_argument("--nodes", type=int, default=1, help="nodes of a local KRaft cluster (default 1)")
    kafka.add_argument("--port", type=int, default=None,
                       help="client port of node 1; node i listens on port+i-1 "
                            "(default CONVOY_STREAM_KAFKA_PORT or 9092)")
    kafka.add_argument("--scram-user", action="append", default=[], metavar="USER:PASSWORD",
                       help="require SCRAM-SHA-256/512 from clients; repeatable")
    kafka.set_defaults(func=cmd_kafka)
    args = parser.parse_args(argv)
    from .embedded_kafka import KafkaStartError
    from .kafka_connection import SettingError
    from .kafka_preflight import ClusterUnusable
    from .topic_layout import TopicMismatch

    try:
        args.func(args)
    except (SettingError, ClusterUnusable, TopicMismatch, KafkaStartError) as exc:
        # A setting or cluster the worker cannot run with: one line that says what to do.
        sys.exit(f"convoy-stream: {exc}")


if __name__ == "__main__":
    main()
