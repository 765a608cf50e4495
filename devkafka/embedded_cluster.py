"""A local multi-node Apache Kafka cluster (KRaft) from the embedded broker's jars.

For development and the failover tests: ``convoy-stream kafka --nodes 3`` runs one in the
foreground, and tests use ``EmbeddedKafkaCluster`` to kill and restart single nodes while
workers run against it::

    with EmbeddedKafkaCluster(3, Path(".data/kafka-cluster"),
                              scram_users={"admin": "secret"}) as cluster:
        print(cluster.bootstrap)             # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        leader = max(..., key=list(cluster.leaders("app-ingest").values()).count)
        cluster.kill(leader)                 # SIGKILL, like a lost machine
        cluster.restart(leader)              # same ports, same data

Every node is broker and controller (three JVMs, not six, on a small machine); the
controller quorum is the static voter list of all nodes, so it survives any one node. Clients
connect on each node's client listener: PLAINTEXT, or SASL_PLAINTEXT with SCRAM-SHA-256/512
when users are given (their credentials are written at storage format time, as
``kafka-storage format --add-scram`` does). The brokers replicate over a separate PLAINTEXT
listener on loopback (``internal_bootstrap``), which the probes (and tests that read topics
without credentials) use too. Topics default to the cluster's replication
(``default.replication.factor`` = min(3, nodes), ``min.insync.replicas`` = min(2, nodes)) and
are never auto-created, as on hosted clusters.
"""

from __future__ import annotations

import contextlib
import random
import signal
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from .embedded_kafka import (
    HOST,
    SCRAM_MECHANISMS,
    EmbeddedKafka,
    KafkaStartError,
    PartitionState,
    _port_in_use,
    read_metadata,
)

__all__ = ["EmbeddedKafkaCluster", "stable_port"]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def stable_port(taken: set[int]) -> int:
    """A free port below the kernel's ephemeral range, and not in ``taken``.

    A node's ports must stay free while it is down: its peers and clients keep connecting to
    them, and a connect to a free port *inside* the ephemeral range can be given that very
    port as its own source port (a TCP self-connect), which then holds the port and the node
    cannot start again. Below the range, the kernel never hands it out as a source port."""
    high = min(_ephemeral_low(), 65536) - 1
    low = max(1024, min(20000, high - 4000))
    for _ in range(1000):
        port = random.randint(low, high)
        if port not in taken and not _port_in_use(port):
            taken.add(port)
            return port
    raise KafkaStartError(f"no free port between {low} and {high}")


class EmbeddedKafkaCluster:
    """``nodes`` Kafka nodes (ids 1..n) as child processes, each in ``data_dir/node-<id>``.

    Ports: client ports are ``base_port + i - 1`` when ``base_port`` is given; every other
    port is a free one below the ephemeral range (``stable_port``). All are fixed for the
    object's life, so a killed node restarts where clients and the quorum expect it.
    """

    def __init__(
        self,
        nodes: int,
        data_dir: Path,
        *,
        scram_users: Mapping[str, str] | None = None,
        base_port: int | None = None,
        heap: str = "256m",
        version: str | None = None,
        extra_properties: Mapping[str, str] | None = None,
        fast_start: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.data_dir = Path(data_dir).resolve()
        self.scram_users = dict(scram_users or {})
        taken: set[int] = set()
        if base_port:
            taken.update(range(base_port, base_port + nodes))
        controller_ports = {i: stable_port(taken) for i in range(1, nodes + 1)}
        voters = ",".join(f"{i}@{HOST}:{p}" for i, p in controller_ports.items())
        replication = min(3, nodes)
        props = {
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(max(1, min(2, nodes))),
            "offsets.topic.replication.factor": str(replication),
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(max(1, min(2, nodes))),
            "auto.create.topics.enable": "false",
            **(extra_properties or {}),
        }
        self.nodes: dict[int, EmbeddedKafka] = {
            i: EmbeddedKafka(
                base_port + i - 1 if base_port else stable_port(taken),
                self.data_dir / f"node-{i}",
                controller_port=controller_ports[i],
                heap=heap,
                version=version,
                node_id=i,
                quorum_voters=voters,
                internal_port=stable_port(taken),
                scram_users=self.scram_users,
                extra_properties=props,
                fast_start=fast_start,
            )
            for i in range(1, nodes + 1)
        }
        self.version = self.nodes[1].version

    # -- addresses ------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``KAFKA_BOOTSTRAP_SERVERS`` for clients: every node's client listener."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    @property
    def internal_bootstrap(self) -> str:
        """The brokers' own PLAINTEXT listeners (no credentials needed; loopback only)."""
        return ",".join(f"{HOST}:{n.internal_port}" for n in self.nodes.values())

    @property
    def security_protocol(self) -> str:
        return "SASL_PLAINTEXT" if self.scram_users else "PLAINTEXT"

    def client_env(self, user: str | None = None, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The environment a convoy-stream worker needs to use this cluster (as ``user``, the
        first SCRAM user by default)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "KAFKA_SECURITY_PROTOCOL": self.security_protocol}
        if self.scram_users:
            if mechanism not in SCRAM_MECHANISMS:
                raise ValueError(f"mechanism must be one of {SCRAM_MECHANISMS}")
            name = user or next(iter(self.scram_users))
            env.update(KAFKA_SASL_MECHANISM=mechanism, KAFKA_SASL_USERNAME=name,
                       KAFKA_SASL_PASSWORD=self.scram_users[name])
        return env

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> EmbeddedKafkaCluster:
        """Launch every node, then wait until each is up and the cluster lists all of them
        as live brokers (topics with replication ``nodes`` can then be created). On failure
        every node is stopped and KafkaStartError carries the failing node's log tail."""
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes.values():
                node.launch()
            for node in self.nodes.values():
                node.wait_ready(deadline)
            self.wait_brokers(set(self.nodes), deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def wait_brokers(self, expected: set[int], timeout: float = 60) -> None:
        """Wait until the live brokers the cluster reports are exactly ``expected``."""
        deadline = time.monotonic() + timeout
        seen: tuple[int, ...] = ()
        while True:
            with contextlib.suppress(KafkaStartError, OSError, struct.error):
                seen = self._metadata().brokers
                if set(seen) == expected:
                    return
            if time.monotonic() > deadline:
                raise KafkaStartError(f"cluster lists brokers {sorted(seen)}, expected "
                                      f"{sorted(expected)} (logs in {self.data_dir}/node-*)")
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Stop every running node: SIGTERM to all at once (each shuts down while the
        quorum is still there), SIGKILL to any left after ``timeout``. Idempotent."""
        running = [n for n in self.nodes.values() if n.running]
        for node in running:
            node._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in running:
            node.stop(timeout=max(1.0, deadline - time.monotonic()))

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, like a machine that vanished."""
        self.nodes[node_id].kill()

    def restart(self, node_id: int, timeout: float = 120) -> None:
        """Start node ``node_id`` again (stopping it first if it runs), on its old ports and
        data, and wait until the cluster lists it as a live broker again."""
        node = self.nodes[node_id]
        node.stop()
        node.start(timeout)
        self.wait_brokers({i for i, n in self.nodes.items() if n.running}, timeout)

    # -- metadata -------------------------------------------------------------------------

    def _metadata(self, topics: list[str] | None = None):  # type: ignore[no-untyped-def]
        """Metadata from the first running node that answers."""
        last: Exception | None = None
        for node in self.nodes.values():
            if not node.running:
                continue
            try:
                return read_metadata(HOST, node.probe_port, topics)
            except (OSError, struct.error) as exc:
                last = exc
        raise KafkaStartError(f"no node of the cluster answers ({last})")

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Each partition's leader, replicas and in-sync replicas (empty: no such topic)."""
        return self._metadata([topic]).topics.get(topic, {})

    def leaders(self, topic: str) -> dict[int, int]:
        """``{partition: leader node id}`` (-1 while a partition has no leader)."""
        return {p: s.leader for p, s in self.partitions(topic).items()}

    def controller(self) -> int:
        """The node id of the active controller, as the brokers know it."""
        return self._metadata().controller

    def wait_in_sync(self, topics: list[str], timeout: float = 60) -> None:
        """Wait until every partition of ``topics`` has a leader and all its replicas in
        sync (after a node returns: nothing is under-replicated any more)."""
        deadline = time.monotonic() + timeout
        behind: dict[str, list[int]] = {}
        while True:
            with contextlib.suppress(KafkaStartError, OSError, struct.error):
                meta = self._metadata(topics)
                behind = {t: [p for p, s in meta.topics.get(t, {}).items()
                              if s.leader < 0 or set(s.isr) != set(s.replicas)]
                          for t in topics}
                if all(t in meta.topics for t in topics) and not any(behind.values()):
                    return
            if time.monotonic() > deadline:
                raise KafkaStartError(f"partitions not in sync after {timeout:.0f}s: {behind}")
            time.sleep(0.2)

    def __enter__(self) -> EmbeddedKafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = [i for i, n in self.nodes.items() if n.running]
        return f"<EmbeddedKafkaCluster {self.version} {self.bootstrap} running={up}>"
