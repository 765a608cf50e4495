"""An embedded single-node Apache Kafka broker (KRaft mode) for `make run` and the tests.

Why it exists: convoy-stream must run on a fresh machine with only Java 17 and Maven, and
its integration tests must hit a real Kafka, not a look-alike that behaves differently where
it matters (committed offsets, compaction, rebalances). So we fetch the broker jars once from
Maven Central with the machine's ``mvn`` (pom in ``devkafka/pom.xml``) and run
``kafka.Kafka`` as a child process.

Usage::

    with EmbeddedKafka(port=9092, data_dir=Path(".data/kafka")) as kafka:
        print(kafka.bootstrap)          # "127.0.0.1:9092"

or by hand: ``python -m devkafka.embedded_kafka --port 9092 --data-dir .data/kafka``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = [
    "CLUSTER_ID",
    "KAFKA_POM",
    "KAFKA_VERSION_ENV",
    "EmbeddedKafka",
    "KafkaStartError",
    "PartitionState",
    "default_cache_dir",
    "free_port",
    "kafka_ready",
    "kafka_version",
    "main",
    "read_metadata",
]

#: The pom whose dependencies are the broker's classpath (package data of devkafka).
KAFKA_POM: Path = Path(__file__).resolve().parent / "pom.xml"

#: Fixed KRaft cluster id (base64url of b"convoy-stream-01"): a data dir formatted once is
#: reusable by every later start, and nothing has to remember a random id.
CLUSTER_ID = "Y29udm95LXN0cmVhbS0wMQ"

NODE_ID = 1
HOST = "127.0.0.1"

#: Selects the broker version (e.g. 3.9.2 or 4.1.1); unset means the pom's <kafka.version>.
KAFKA_VERSION_ENV = "CONVOY_STREAM_KAFKA_VERSION"
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

#: The SASL mechanisms a cluster with SCRAM users accepts on its client listener.
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

_MARKER = ".complete"          # written last by ensure_jars(): holds the pom's sha256
_LOG_ROTATE_BYTES = 50 * 1024 * 1024


class KafkaStartError(RuntimeError):
    """The broker (or its jar fetch / storage format) failed; the message has the log tail."""


# --------------------------------------------------------------------------------------------
# small helpers


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The broker version to run: ``$CONVOY_STREAM_KAFKA_VERSION`` when set, else the pom's
    ``<kafka.version>`` (the default lives only there). Only KRaft lines that run on Java 17
    and take SCRAM users at format time are accepted: 3.9.x and 4.x."""
    wanted = os.environ.get(KAFKA_VERSION_ENV, "").strip()
    if wanted:
        m = _VERSION_RE.match(wanted)
        if not m or (int(m[1]), int(m[2])) < (3, 9) or int(m[1]) > 4:
            raise KafkaStartError(f"{KAFKA_VERSION_ENV}={wanted!r}: expected an Apache Kafka "
                                  "release 3.9.x or 4.x, e.g. 4.1.1 or 3.9.2")
        return wanted
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaStartError(f"{pom} has no <kafka.version> property")
    return node.text.strip()


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def _jars_digest(version: str) -> str:
    """What the jar directory is a function of: the pom and the version asked for."""
    return hashlib.sha256(KAFKA_POM.read_bytes() + b"\0" + version.encode()).hexdigest()


def default_cache_dir(version: str | None = None) -> Path:
    """``$XDG_CACHE_HOME/convoy-stream/kafka-<version>-<digest>`` (or ``~/.cache/...``): shared
    by every checkout and test session on the machine, so the ~50 MB of jars are fetched once.
    The digest of the pom is in the name, so a checkout with another pom never rewrites a jar
    directory that a broker of another checkout is running from."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    version = version or kafka_version()
    return Path(base) / "convoy-stream" / f"kafka-{version}-{_jars_digest(version)[:10]}"


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int, host: str = HOST) -> bool:
    """True when someone listens on ``port``. SO_REUSEADDR as Java sets it, so sockets in
    TIME_WAIT from a previous broker on the same port do not count as "in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata reports it (leader -1: none right now)."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class _Metadata:
    brokers: tuple[int, ...]
    controller: int
    topics: dict[str, dict[int, PartitionState]]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def int16(self) -> int:
        return self.take(">h")[0]

    def int32(self) -> int:
        return self.take(">i")[0]

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        text = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return text

    def int32_array(self) -> tuple[int, ...]:
        n = self.int32()
        return self.take(f">{max(n, 0)}i") if n > 0 else ()


def read_metadata(host: str, port: int, topics: list[str] | None = None,
                  timeout: float = 2.0) -> _Metadata:
    """A Metadata v4 request on a PLAINTEXT listener: live brokers, the active controller and
    each named topic's partitions (leader, replicas, in-sync replicas).

    A plain socket, not aiokafka, so start() needs no event loop. v4 is the oldest version
    Kafka 4 still serves (it removed v0-v3) and Kafka 3.9 serves it too."""
    client_id = b"convoy-stream-probe"
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id
    names = [t.encode() for t in topics or []]
    body += struct.pack(">i", len(names)) + b"".join(struct.pack(">h", len(n)) + n for n in names)
    body += b"\x00"                     # allow_auto_topic_creation: false
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        r = _Reader(_recv_exact(sock, size))
    if r.int32() != 7:
        raise ConnectionError("unexpected correlation id in Metadata answer")
    r.int32()                                             # throttle_time_ms
    brokers = []
    for _ in range(r.int32()):
        brokers.append(r.int32())
        r.string(), r.int32(), r.string()                 # host, port, rack
    r.string()                                            # cluster id
    controller = r.int32()
    found: dict[str, dict[int, PartitionState]] = {}
    for _ in range(r.int32()):
        error, name = r.int16(), r.string()
        r.take(">b")                                      # is_internal
        parts: dict[int, PartitionState] = {}
        for _ in range(r.int32()):
            _, index, leader = r.take(">hii")
            replicas, isr = r.int32_array(), r.int32_array()
            parts[index] = PartitionState(leader, replicas, isr)
        if error == 0 and name is not None:
            found[name] = parts
    return _Metadata(tuple(sorted(brokers)), controller, found)


def _metadata_broker_count(host: str, port: int, timeout: float) -> int:
    """How many live brokers a Metadata request on ``host:port`` lists. The KRaft broker
    opens its client listener only once it is unfenced, and a non-empty broker list means it
    will serve produce/fetch and create topics."""
    return len(read_metadata(host, port, timeout=timeout).brokers)


def kafka_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when any ``host:port`` in ``bootstrap`` answers a Kafka Metadata request with at
    least one broker. Used by the readiness wait and by tests given an external cluster."""
    for entry in bootstrap.split(","):
        entry = entry.strip()
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        host, _, port = entry.rpartition(":")
        try:
            if _metadata_broker_count(host.strip("[]") or HOST, int(port), timeout) > 0:
                return True
        except (OSError, ValueError, struct.error):
            continue
    return False


def _java() -> str:
    """``$JAVA_HOME/bin/java`` when set (what Kafka's own scripts do), else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaStartError("java not found: install Java 17+ or set JAVA_HOME "
                              "(or point KAFKA_BOOTSTRAP_SERVERS at an existing Kafka)")
    return found


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _pdeathsig_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL --`: Linux SIGKILLs the JVM when its parent dies, so a killed
    `make run` or pytest never leaves a 512 MB broker behind.

    setpriv sets it and execs the JVM, so the child is spawned without a `preexec_fn`:
    Python then uses vfork/posix_spawn, which runs no `pthread_atfork` handlers. A
    `preexec_fn` forks, and in a process that has loaded gRPC (the Pub/Sub client) gRPC's
    fork handler can abort the child before it execs (exit -6, "epoll_wait error: Bad file
    descriptor" in the broker log).
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock, so two processes (two pytest sessions, `make run` + tests) never
    run mvn into the same directory at once; the second waits and then finds the jars."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------


class EmbeddedKafka:
    """One Apache Kafka node (KRaft) as a child process of this Python process.

    Alone (the default) it is broker and controller of a one-node cluster on ``port``. As a
    node of ``EmbeddedKafkaCluster`` it also gets a ``node_id``, the quorum's voters, an
    ``internal_port`` (PLAINTEXT, between the brokers and for probes) and optionally SCRAM
    users, who then must authenticate on ``port`` (SASL_PLAINTEXT).

    Data lives in ``data_dir`` and survives stop()/start() (and kill()/start()), which is what
    the broker-outage and crash tests need. The JVM runs in its own process group, so stop()
    and kill() can always take it down completely.
    """

    def __init__(
        self,
        port: int,
        data_dir: Path,
        cache_dir: Path | None = None,
        controller_port: int | None = None,
        *,
        heap: str = "512m",
        extra_properties: Mapping[str, str] | None = None,
        version: str | None = None,
        node_id: int = NODE_ID,
        quorum_voters: str | None = None,
        internal_port: int | None = None,
        scram_users: Mapping[str, str] | None = None,
        fast_start: bool = False,
    ) -> None:
        self.port = int(port)
        self.data_dir = Path(data_dir).resolve()
        self.version = version or kafka_version()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.version)
        self._controller_port_cfg = controller_port
        self.controller_port: int | None = controller_port
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.node_id = node_id
        self.quorum_voters = quorum_voters
        self.internal_port = internal_port
        self.scram_users = dict(scram_users or {})
        #: C1 JIT only: starts (and restarts) faster on a busy machine, lower peak throughput
        self.fast_start = fast_start
        if self.scram_users and internal_port is None:
            raise ValueError("SCRAM users need an internal_port (the brokers' own listener)")
        for name, password in self.scram_users.items():
            if not name or not password or any(c in name + password for c in ',]["=\n'):
                raise KafkaStartError(f"SCRAM user {name!r}: name and password must be "
                                      "non-empty, without , ] [ \" = or newlines")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None
        self._atexit_registered = False

    # -- paths / properties -------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``bootstrap_servers`` for clients: ``"127.0.0.1:<port>"``."""
        return f"{HOST}:{self.port}"

    @property
    def probe_port(self) -> int:
        """A PLAINTEXT listener of this node (the internal one when there is one)."""
        return self.internal_port or self.port

    @property
    def jars_dir(self) -> Path:
        return self.cache_dir / "libs"

    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr (log4j at WARN plus start/stop lines)."""
        return self.data_dir / "kafka.log"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        """Where Kafka keeps partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs (also its process-group id)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- jars -----------------------------------------------------------------------------

    def _jars_complete(self, digest: str) -> bool:
        marker = self.cache_dir / _MARKER
        try:
            ok = marker.read_text().strip() == digest
        except OSError:
            return False
        return ok and (self.jars_dir / f"kafka_2.13-{self.version}.jar").is_file()

    def ensure_jars(self) -> Path:
        """Fetch the broker jars into the cache once and return the jar directory.

        Skips mvn when the marker says the fetch finished for this exact pom and version;
        otherwise (no marker, half-finished download) it wipes the directory and fetches again.
        """
        digest = _jars_digest(self.version)
        if self._jars_complete(digest):
            return self.jars_dir
        lock = self.cache_dir.parent / f"{self.cache_dir.name}.lock"
        with _file_lock(lock):
            if self._jars_complete(digest):          # another process just finished it
                return self.jars_dir
            mvn = shutil.which("mvn")
            if not mvn:
                raise KafkaStartError("mvn not found on PATH: install Maven 3.8+ to fetch the "
                                      "Kafka jars (or set KAFKA_BOOTSTRAP_SERVERS)")
            with contextlib.suppress(FileNotFoundError):
                (self.cache_dir / _MARKER).unlink()
            shutil.rmtree(self.jars_dir, ignore_errors=True)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            # mvn runs on a copy of the pom, so an installed (read-only) package is fine
            pom = self.cache_dir / "pom.xml"
            shutil.copyfile(KAFKA_POM, pom)
            cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
                   f"-Dkafka.version={self.version}",
                   *(["-Dkafka3"] if _major(self.version) == 3 else []),
                   "dependency:copy-dependencies", f"-DoutputDirectory={self.jars_dir}"]
            res = subprocess.run(cmd, cwd=self.cache_dir, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out = res.stdout.decode("utf-8", "replace")
            if res.returncode != 0 or not (self.jars_dir / f"kafka_2.13-{self.version}.jar").is_file():
                raise KafkaStartError(
                    f"fetching Kafka {self.version} jars with mvn failed "
                    f"(exit {res.returncode}): {' '.join(cmd)}\n{out[-4000:]}")
            tmp = self.cache_dir / f"{_MARKER}.tmp"
            tmp.write_text(digest + "\n")
            tmp.replace(self.cache_dir / _MARKER)
        return self.jars_dir

    # -- config ---------------------------------------------------------------------------

    def _listener_properties(self) -> dict[str, str]:
        """One node alone: PLAINTEXT clients and brokers on ``port``. A cluster node: clients
        on CLIENT (``port``; SASL_PLAINTEXT with SCRAM when it has users), brokers and probes
        on INTERNAL (``internal_port``, PLAINTEXT, loopback only)."""
        assert self.controller_port is not None
        voters = self.quorum_voters or f"{self.node_id}@{HOST}:{self.controller_port}"
        controller = f"CONTROLLER://{HOST}:{self.controller_port}"
        common = {"controller.quorum.voters": voters, "controller.listener.names": "CONTROLLER"}
        if self.internal_port is None:
            return {
                **common,
                "listeners": f"PLAINTEXT://{HOST}:{self.port},{controller}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        client = "SASL_PLAINTEXT" if self.scram_users else "PLAINTEXT"
        props = {
            **common,
            "listeners": f"CLIENT://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port},"
                         f"{controller}",
            "advertised.listeners": f"CLIENT://{HOST}:{self.port},"
                                    f"INTERNAL://{HOST}:{self.internal_port}",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map":
                f"CLIENT:{client},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
        if self.scram_users:
            props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
            for mech in SCRAM_MECHANISMS:
                props[f"listener.name.client.{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        return props

    def _properties(self) -> dict[str, str]:
        """Broker settings for one node and fast tests. Why the non-defaults:
        replication factors / min ISR 1 (one node; a cluster overrides them); few internal
        partitions and no initial rebalance delay (quick group joins);
        group.min.session.timeout.ms low because tests and `make run` use Faust with
        broker_session_timeout=2 s, which the default (6 s) would reject; a short broker
        session so a start after kill() waits ~3 s, not ~10 s, and a cluster fences a killed
        node (and elects new leaders) within ~3 s; a smaller cleaner buffer so compaction fits
        a small heap."""
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **self._listener_properties(),
            "log.dirs": str(self.log_dirs),
            "num.partitions": "8",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "250",
            # after a crash (kill()) the controller keeps the dead broker's registration until
            # its session expires, and the restarted broker waits for that: 9 s by default
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "log.cleaner.enable": "true",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(min(32, _mb(self.heap) // 8) * 1024 * 1024),
            "log.retention.hours": "168",
            "log.retention.check.interval.ms": "300000",
            "log.segment.bytes": str(128 * 1024 * 1024),
            "num.recovery.threads.per.data.dir": "2",
            "num.network.threads": "3",
            "num.io.threads": "4",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = "# written by devkafka.embedded_kafka on every start\n" + "".join(
            f"{k}={v}\n" for k, v in self._properties().items())
        self.properties_path.write_text(text)
        # quiet: WARN and up, plus the one line that says the server started / shut down
        if _major(self.version) >= 4:              # Kafka 4 logs through log4j 2
            (self.data_dir / "log4j2.properties").write_text(
                "status = warn\n"
                "appender.stdout.type = Console\n"
                "appender.stdout.name = STDOUT\n"
                "appender.stdout.layout.type = PatternLayout\n"
                "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
                "rootLogger.level = WARN\n"
                "rootLogger.appenderRef.stdout.ref = STDOUT\n"
                "logger.raft.name = kafka.server.KafkaRaftServer\n"
                "logger.raft.level = INFO\n"
            )
            return
        (self.data_dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            "log4j.logger.kafka.Kafka$=INFO\n"
        )

    def _jvm_args(self, heap: str, short_lived: bool = False) -> list[str]:
        """JVM flags. Kafka's defaults (G1, short pauses) with a modest heap; no perf-data
        file; CDS stays on (default). The one-shot storage tool gets C1 only, which starts
        faster; the broker keeps C2 because load tests measure its throughput."""
        if _major(self.version) >= 4:
            logging = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        else:
            logging = f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}"
        args = [
            f"-Xms{min(128, _mb(heap))}m", f"-Xmx{heap}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData", "-Xshare:auto", "-Djava.awt.headless=true",
            logging, f"-Dkafka.logs.dir={self.data_dir}",
        ]
        if short_lived:
            args.append("-XX:TieredStopAtLevel=1")
        return [_java(), *args, "-cp", f"{self.jars_dir}/*"]

    def _format_storage(self) -> None:
        """Format the KRaft storage once (fixed cluster id), with the SCRAM users' credentials
        in the first metadata records. Skipped when meta.properties exists, so restarts keep
        their data (and their users)."""
        users_file = self.data_dir / "scram-users"     # names only, never passwords
        if (self.log_dirs / "meta.properties").exists():
            try:
                formatted = set(users_file.read_text().split())
            except OSError:
                formatted = set()
            if set(self.scram_users) != formatted:
                raise KafkaStartError(
                    f"{self.data_dir} was formatted with SCRAM users {sorted(formatted) or 'none'}, "
                    f"asked for {sorted(self.scram_users) or 'none'}: users are set when the storage "
                    "is first formatted; delete the data dir to start over with other users")
            return
        scram: list[str] = []
        for name, password in self.scram_users.items():
            for mech in SCRAM_MECHANISMS:
                scram += ["--add-scram", f"{mech}=[name={name},password={password}]"]
        cmd = [*self._jvm_args("256m", short_lived=True), "kafka.tools.StorageTool", "format",
               "-t", CLUSTER_ID, "-c", str(self.properties_path), "--ignore-formatted", *scram]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=120)
        if res.returncode != 0:
            out = res.stdout.decode("utf-8", "replace")
            for name, password in self.scram_users.items():
                out = out.replace(password, "***")
            raise KafkaStartError(f"formatting KRaft storage in {self.log_dirs} failed "
                                  f"(exit {res.returncode}):\n{out[-4000:]}")
        users_file.write_text("".join(f"{name}\n" for name in self.scram_users))

    # -- lifecycle ------------------------------------------------------------------------

    def _check_stale(self) -> None:
        """Refuse to start beside a broker from an earlier run on the same data dir (it would
        hold the log-dir lock and the port); say which pid it is."""
        pid_file = self.data_dir / "kafka.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.properties_path).encode() in cmdline:
            raise KafkaStartError(f"a Kafka broker from an earlier run (pid {pid}) still uses "
                                  f"{self.data_dir}; stop it first (kill {pid})")

    def start(self, timeout: float = 60) -> None:
        """Fetch jars if needed, format storage if new, launch the broker and wait until it
        answers a Kafka Metadata request. Raises KafkaStartError with the log tail if the
        JVM exits or is not ready within ``timeout`` seconds (and then leaves nothing running).
        """
        if self.running:
            return
        deadline = time.monotonic() + timeout
        self.launch()
        self.wait_ready(deadline)

    def launch(self) -> None:
        """Everything start() does except waiting: a cluster launches all its nodes first,
        since no node is ready before a majority of the controllers is up."""
        if self.running:
            return
        self.ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._check_stale()
        for what, port in (("port", self.port), ("internal port", self.internal_port)):
            if port is not None and _port_in_use(port):
                raise KafkaStartError(f"cannot start Kafka: {what} {port} on {HOST} is in use")
        self.controller_port = self._controller_port_cfg or free_port()
        if _port_in_use(self.controller_port):
            raise KafkaStartError(f"cannot start Kafka: controller port {self.controller_port} "
                                  f"on {HOST} is in use")
        self._write_config()
        self._format_storage()

        if self.log_path.exists() and self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"\n==== convoy-stream: starting Kafka {self.version} on "
                             f"{self.bootstrap} at {time.strftime('%F %T')} ====\n".encode())
        self._log_file.flush()
        # PDEATHSIG is tied to the forking *thread*: only use it from the main thread, or the
        # broker would die when a short-lived worker thread that started it exits.
        in_main = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            [*(_pdeathsig_prefix() if in_main else []), *self._jvm_args(self.heap, short_lived=self.fast_start),
             "kafka.Kafka", str(self.properties_path)],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            cwd=self.data_dir, start_new_session=True,
        )
        (self.data_dir / "kafka.pid").write_text(f"{self._proc.pid}\n")
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def wait_ready(self, deadline: float) -> None:
        """Wait (until ``time.monotonic()`` reaches ``deadline``) for the launched node to
        answer a Metadata request that lists it among the live brokers; stop it and raise
        KafkaStartError with its log tail if it exits or the deadline passes."""
        assert self._proc is not None, "launch() first"
        while True:
            code = self._proc.poll()
            if code is not None:
                self._cleanup()
                raise KafkaStartError(f"Kafka exited with code {code} while starting; "
                                      f"tail of {self.log_path}:\n{_tail(self.log_path)}")
            try:
                if self.node_id in read_metadata(HOST, self.probe_port, timeout=2.0).brokers:
                    return
            except (OSError, struct.error, UnicodeDecodeError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaStartError(f"Kafka not ready on {self.bootstrap} in time; "
                                      f"tail of {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(0.1)

    def _signal(self, sig: int) -> None:
        """Signal the broker's whole process group (only while its pid is still unreaped, so
        the id cannot have been reused by an unrelated process)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    def _cleanup(self) -> None:
        if self._log_file is not None:
            code = self._proc.returncode if self._proc is not None else None
            with contextlib.suppress(OSError, ValueError):
                self._log_file.write(f"==== convoy-stream: Kafka exited with code {code} at "
                                     f"{time.strftime('%F %T')} ====\n".encode())
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(OSError):
            (self.data_dir / "kafka.pid").unlink()
        self._proc = None

    def stop(self, timeout: float = 20) -> None:
        """Graceful stop (SIGTERM: Kafka flushes and writes a clean-shutdown marker, so the
        next start skips log recovery), SIGKILL after ``timeout``. Idempotent; always leaves
        no JVM behind."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    proc.wait()
        finally:
            if proc.poll() is None:      # e.g. KeyboardInterrupt during wait()
                self._signal(signal.SIGKILL)
                proc.wait()
            self._cleanup()

    def kill(self) -> None:
        """SIGKILL the broker at once, like a crash (for crash/outage tests). Data already
        acknowledged is in the page cache and comes back on the next start()."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._signal(signal.SIGKILL)
        finally:
            proc.wait()
            self._cleanup()

    def restart(self, timeout: float = 60) -> None:
        """stop() then start() on the same port and data dir: the data survives."""
        self.stop()
        self.start(timeout)

    def wait(self) -> int:
        """Block until the broker exits on its own; return its exit code."""
        if self._proc is None:
            raise RuntimeError("broker not started")
        return self._proc.wait()

    def __enter__(self) -> EmbeddedKafka:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedKafka {self.version} {self.bootstrap} {state} data_dir={self.data_dir}>"


def _mb(size: str) -> int:
    """'512m' -> 512, '1g' -> 1024 (for -Xms, which must not exceed -Xmx)."""
    s = size.strip().lower()
    mult = {"k": 1 / 1024, "m": 1, "g": 1024}.get(s[-1:], None)
    return int(float(s[:-1]) * mult) if mult is not None else int(s) // (1024 * 1024)


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until Ctrl-C / SIGTERM (handy by hand)."""
    parser = argparse.ArgumentParser(prog="python -m devkafka.embedded_kafka",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("CONVOY_STREAM_KAFKA_PORT", "9092")))
    default_data = Path(os.environ.get("CONVOY_STREAM_DATA_DIR", ".data")) / "kafka"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--fetch-only", action="store_true",
                        help="only fetch the jars into the cache and print their directory")
    args = parser.parse_args(argv)

    kafka = EmbeddedKafka(args.port, args.data_dir, args.cache_dir, args.controller_port,
                          heap=args.heap)
    if args.fetch_only:
        print(kafka.ensure_jars())
        return 0

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    # a shell's background job inherits SIGINT ignored; Ctrl-C / kill -INT must still stop us
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        kafka.start(args.timeout)
        print(f"Kafka {kafka.version} ready at {kafka.bootstrap} in {time.monotonic() - t0:.1f}s "
              f"(pid {kafka.pid}, data {kafka.data_dir}, log {kafka.log_path}); Ctrl-C stops it",
              flush=True)
        code = kafka.wait()
        print(f"Kafka exited with code {code}; tail of {kafka.log_path}:\n"
              f"{_tail(kafka.log_path)}", file=sys.stderr)
        return code or 1
    except KafkaStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Kafka...", flush=True)
        return 0
    finally:
        kafka.stop()


if __name__ == "__main__":
    sys.exit(main())
