"""`convoy-stream kafka --nodes N [--scram-user user:password]`: a local KRaft cluster in the
foreground until Ctrl-C or SIGTERM, which stop every node."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from .embedded_cluster import EmbeddedKafkaCluster
from .embedded_kafka import KafkaStartError


def parse_users(specs: list[str]) -> dict[str, str]:
    """``["admin:secret", ...]`` -> ``{"admin": "secret"}``; a spec without a colon exits
    with one line."""
    users: dict[str, str] = {}
    for spec in specs:
        name, sep, password = spec.partition(":")
        if not sep or not name or not password:
            sys.exit(f"--scram-user {name or spec!r}: expected USER:PASSWORD")
        users[name] = password
    return users


def run_cluster(nodes: int, data_dir: Path, base_port: int, scram_specs: list[str]) -> int:
    """Start the cluster, print how to connect (never the passwords), wait for a signal."""
    if nodes < 1:
        sys.exit("--nodes must be at least 1")
    users = parse_users(scram_specs)

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cluster = EmbeddedKafkaCluster(nodes, data_dir, scram_users=users, base_port=base_port)
    except (KafkaStartError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    t0 = time.monotonic()
    print(f"starting a {nodes}-node Kafka {cluster.version} cluster in {cluster.data_dir} "
          "(first run downloads Kafka with mvn)...", flush=True)
    try:
        cluster.start()
        env = cluster.client_env()
        if users:
            env["KAFKA_SASL_PASSWORD"] = "<the password given with --scram-user>"
        lines = "\n".join(f"  {k}={v}" for k, v in env.items())
        print(f"Kafka {cluster.version}: {nodes} nodes ready in {time.monotonic() - t0:.1f}s "
              f"(replication {min(3, nodes)}, min.insync.replicas {max(1, min(2, nodes))}; "
              f"users: {', '.join(users) or 'none, PLAINTEXT'}); Ctrl-C stops all nodes\n"
              f"{lines}\n"
              f"  node logs: {cluster.data_dir}/node-*/kafka.log", flush=True)
        while True:
            dead = [i for i, n in cluster.nodes.items() if not n.running]
            if dead:
                print(f"node {dead[0]} exited; see {cluster.nodes[dead[0]].log_path}",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KafkaStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Kafka...", flush=True)
        return 0
    finally:
        cluster.stop()
