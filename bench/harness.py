"""Shared machinery for the benchmark: processes we start (and always stop), the embedded
Kafka, convoy-stream worker processes, Kafka topic helpers, CPU/RSS probes and statistics.

Everything here is used by `bench/run.py` and the scenario modules next to it. Nothing in
this file knows about a particular scenario.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- processes


class Procs:
    """Every child process the benchmark starts, each in its own process group.

    `stop` ends one group by its id (SIGTERM, then SIGKILL after a grace period, and a
    final SIGKILL to the group so no grandchild such as a JVM survives its parent).
    `stop_all` runs at exit, on Ctrl-C and on SIGTERM.
    """

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.cleanups: list[Callable[[], None]] = []

    def spawn(self, args: list[str], *, env: dict[str, str] | None = None, log_path: Path | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "ab")
        try:
            proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if log_path is not None:
                out.close()
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes] | None, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the leader may be gone while a child of its group (a JVM) lives on
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(10)
        if proc in self.running:
            self.running.remove(proc)

    def on_exit(self, cleanup: Callable[[], None]) -> Callable[[], None]:
        self.cleanups.append(cleanup)
        return cleanup

    def forget(self, cleanup: Callable[[], None]) -> None:
        if cleanup in self.cleanups:
            self.cleanups.remove(cleanup)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            try:
                self.stop(proc, timeout=10)
            except Exception as exc:  # keep stopping the others
                log(f"could not stop pid {proc.pid}: {exc}")
        for cleanup in list(reversed(self.cleanups)):
            try:
                cleanup()
            except Exception as exc:
                log(f"cleanup failed: {exc}")
        self.cleanups.clear()


PROCS = Procs()


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP/SIGINT raise KeyboardInterrupt so `finally` blocks and `PROCS.stop_all` run."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    # also when started in the background, where the shell leaves SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a live process (all its threads), in seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_seconds(pid: int | None) -> tuple[float, float] | None:
    """(on-CPU, waiting-for-a-CPU) seconds of a process's main thread (/proc/PID/schedstat).

    The wait is the time the thread was runnable but another process had the core: on a
    shared 2-core machine this tells "starved" from "idle" (waiting on I/O, a broker...).
    """
    if pid is None:
        return None
    try:
        running, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return int(running) / 1e9, int(waiting) / 1e9


def rss_mb(pid: int | None) -> dict[str, float] | None:
    """VmRSS and VmHWM (peak RSS) of a live process, in MB."""
    if pid is None:
        return None
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        return None
    return out


def descendants(pid: int | None) -> list[int]:
    """Every live process below `pid` (children, their children...), breadth first, by pid.

    Used to meter the processes a command starts itself: the API processes of
    `convoy-stream dev` and `convoy-stream api --processes N`, the forks of the baseline.
    """
    if pid is None:
        return []
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = sorted(parents.get(todo.pop(0), []))
        found.extend(children)
        todo.extend(children)
    return found


def wait_log_lines(path: Path, text: str, count: int, timeout: float) -> int:
    """Wait until `text` occurs `count` times in the log at `path` (processes writing one log
    may interleave their lines); returns how many it saw."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        try:
            seen = path.read_text(errors="replace").count(text)
        except FileNotFoundError:
            seen = 0
        if seen >= count or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


class CpuMeter:
    """CPU use of named processes over a window, as % of one core (200 % = both cores)."""

    def __init__(self, pids: dict[str, int | None], children: str = "load-generator") -> None:
        self.children_label = children  # what the benchmark's exited child processes were
        self.pids: dict[str, int] = {}
        for name, pid in pids.items():
            if pid and pid not in self.pids.values():
                self.pids[name] = pid
        self.start_wall = time.monotonic()
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.start_sched = {name: sched_seconds(pid) for name, pid in self.pids.items()}
        self.start_self = time.process_time()
        self.start_children = _children_cpu()
        self.start_total = _machine_busy()

    def read(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.start_wall, 1e-6)
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self.start.get(name)
            if now is not None and then is not None:
                out[name] = round(100 * (now - then) / wall, 1)
        for name, pid in self.pids.items():  # after the totals: "others" sums the plain names only
            s_now, s_then = sched_seconds(pid), self.start_sched.get(name)
            if s_now is not None and s_then is not None and name.startswith(("worker", "baseline", "bare", "api")):
                out[f"{name}.main-thread-starved"] = round(100 * (s_now[1] - s_then[1]) / wall, 1)
        out["bench-process"] = round(100 * (time.process_time() - self.start_self) / wall, 1)
        children = _children_cpu() - self.start_children
        if children > 0:  # load generators that ran and exited inside the window (wrk)
            out[self.children_label] = round(100 * children / wall, 1)
        busy = _machine_busy()
        if busy is not None and self.start_total is not None:
            machine = 100 * (busy[0] - self.start_total[0]) / max(busy[1] - self.start_total[1], 1e-6) * (os.cpu_count() or 1)
            out["machine"] = round(machine, 1)
            # CPU used by processes this benchmark did not start (other users of the machine)
            ours = sum(v for k, v in out.items() if k != "machine" and "." not in k)
            out["others"] = round(max(0.0, machine - ours), 1)
        return out


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _machine_busy() -> tuple[float, float] | None:
    """(busy jiffies, total jiffies) of the whole machine, from /proc/stat."""
    try:
        parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return float(total - idle), float(total)


# ----------------------------------------------------------------------------- statistics


def summary(values: Iterable[float | None]) -> dict[str, Any]:
    good = [float(v) for v in values if v is not None]
    if not good:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(good), "min": min(good), "max": max(good), "n": len(good), "values": good}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * (len(sorted_values) - 1)))))
    return sorted_values[index]


# ----------------------------------------------------------------------------- Kafka


def start_kafka(workdir: Path, nodes: int = 0) -> Any:
    """The benchmark's broker: convoy-stream's own embedded Apache Kafka on a free port, or
    with ``nodes`` a local KRaft cluster of that many nodes (512 MB heap each, as the single
    broker; PLAINTEXT, so the rows measure replication and nothing else)."""
    from devkafka.embedded_cluster import EmbeddedKafkaCluster
    from devkafka.embedded_kafka import EmbeddedKafka

    if nodes:
        kafka: Any = EmbeddedKafkaCluster(nodes, workdir / "kafka-cluster", heap="512m")
    else:
        kafka = EmbeddedKafka(free_port(), workdir / "kafka")
    cleanup = PROCS.on_exit(kafka.stop)
    try:
        kafka.start(timeout=180)
    except BaseException:
        kafka.stop()
        PROCS.forget(cleanup)
        raise
    return kafka


async def create_topic(bootstrap: str, name: str, partitions: int, *, compacted: bool = False) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # the replication the workers are configured with (bench/run.py --cluster sets it)
        replication = int(os.environ.get("CONVOY_STREAM_REPLICATION_FACTOR", "1"))
        configs = {"cleanup.policy": "compact"} if compacted else {}
        if replication > 1:
            configs["min.insync.replicas"] = os.environ.get("CONVOY_STREAM_MIN_INSYNC_REPLICAS",
                                                            str(replication - 1))
        await admin.create_topics([NewTopic(name, partitions, replication, topic_configs=configs or None)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    # metadata propagation: wait until every partition is visible and has a leader, so the
    # first produce does not meet NotLeaderForPartition
    for _ in range(100):
        if len(await partitions_of(bootstrap, name, with_leader=True)) == partitions:
            return
        await asyncio.sleep(0.1)


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (frees the broker's disk)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    except Exception as exc:
        log(f"could not delete topics {prefix}*: {exc}")
        return []
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str, *, with_leader: bool = False) -> list[int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = sorted(consumer.partitions_for_topic(topic) or [])
        if with_leader:
            cluster = consumer._client.cluster
            parts = [p for p in parts if (cluster.leader_for_partition(TopicPartition(topic, p)) or -1) >= 0]
        return parts
    finally:
        await consumer.stop()


class TopicProbe:
    """A long-lived consumer that reads end offsets, group lag and record timestamps cheaply."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer: Any = None
        self.admin: Any = None

    async def __aenter__(self) -> "TopicProbe":
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await self.consumer.start()
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def tps(self, topic: str) -> list[Any]:
        from aiokafka import TopicPartition

        parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    async def end_offsets(self, topic: str) -> dict[Any, int]:
        tps = await self.tps(topic)
        if not tps:
            return {}
        return dict(await self.consumer.end_offsets(tps))

    async def total(self, topic: str) -> int:
        return sum((await self.end_offsets(topic)).values())

    async def lag(self, group: str, topic: str) -> int | None:
        """Records of `topic` not yet committed by consumer group `group` (None: no commits)."""
        ends = await self.end_offsets(topic)
        try:
            committed = await self.admin.list_consumer_group_offsets(group)
        except Exception:
            return None
        if not any(tp.topic == topic for tp in committed):
            return None
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag

    async def first_last_timestamps(self, topic: str) -> tuple[float, float] | None:
        """Kafka timestamps (s) of the earliest and latest record over all partitions."""
        from aiokafka import AIOKafkaConsumer

        ends = {tp: end for tp, end in (await self.end_offsets(topic)).items() if end > 0}
        if not ends:
            return None
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                  max_poll_records=1)
        await reader.start()
        try:
            first, last = [], []
            for tp, end in ends.items():
                reader.assign([tp])
                reader.seek(tp, 0)
                first.append((await reader.getone()).timestamp)
                reader.seek(tp, end - 1)
                last.append((await reader.getone()).timestamp)
            return min(first) / 1000.0, max(last) / 1000.0
        finally:
            await reader.stop()


async def wait_drained(probe: TopicProbe, group: str, topic: str, timeout: float) -> tuple[float, int | None]:
    """Wait until consumer group `group` committed everything in `topic`; (seconds, lag left)."""
    start = time.monotonic()
    lag: int | None = None
    while time.monotonic() - start < timeout:
        lag = await probe.lag(group, topic)
        if lag == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start, lag


async def copy_topic(bootstrap: str, source: str, target: str) -> int:
    """Copy every record of a one-partition topic (the config topic) into `target`."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    copied = 0
    try:
        tp = TopicPartition(source, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while (await consumer.position(tp)) < end:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    await producer.send(target, value=message.value, key=message.key, partition=0)
                    copied += 1
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    return copied


async def produce_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes, int | None]]) -> float:
    """Produce pre-serialised (key, value, partition) records fast, acks=all; returns seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    start = time.monotonic()
    try:
        chunk = 5000
        for i in range(0, len(items), chunk):
            futures = [await producer.send(topic, value=v, key=k, partition=p) for k, v, p in items[i:i + chunk]]
            await asyncio.gather(*futures)
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - start


# ----------------------------------------------------------------------------- workers


@dataclass
class Worker:
    """One `convoy-stream worker` process, as a user runs it (bridges off unless asked)."""

    bootstrap: str
    data_dir: Path
    app_id: str
    admin_token: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    #: The `convoy-stream` command: `("api", "--processes", "1")` runs the API role instead.
    command: tuple[str, ...] = ("worker",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "worker.log"

    def start(self) -> "Worker":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CONVOY_STREAM_PORT": str(self.port),
            "CONVOY_STREAM_DATA_DIR": str(self.data_dir),
            "CONVOY_STREAM_APP_ID": self.app_id,
            "CONVOY_STREAM_ADMIN_TOKEN": self.admin_token,
            "CONVOY_STREAM_BRIDGES": "0",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self.started_at = time.monotonic()
        self.process = PROCS.spawn([PY, "-m", "convoy_stream.cli", *self.command], env=env, log_path=self.log_path,
                                   cwd=ROOT)
        return self

    def healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 90) -> float:
        """Seconds from `start` to the first /health 200 (polled every 50 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.app_id} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise RuntimeError(f"worker {self.app_id} not healthy after {timeout}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        PROCS.stop(self.process, timeout=30)


def new_nonce() -> str:
    return secrets.token_hex(3)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def alternating(runs: int, first: Callable[[int], None], second: Callable[[int], None]) -> None:
    """Run `first(i)` and `second(i)` for each run, swapping their order every other run so a
    slow drift of the machine favours neither side."""
    for i in range(runs):
        for measure in ((first, second) if i % 2 == 0 else (second, first)):
            measure(i)
