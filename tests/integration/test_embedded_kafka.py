"""The embedded Apache Kafka (KRaft) that `make run` and the test session start: it serves
acks=all produce and fetch, keeps data across stop/start and crashes, and never leaves a JVM
behind. Real broker, real aiokafka clients."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devkafka.embedded_kafka import EmbeddedKafka, KafkaStartError, free_port


pytestmark = pytest.mark.integration


async def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            meta = await producer.send_and_wait(topic, value, key=b"same-partition")
            assert meta.offset >= 0
    finally:
        await producer.stop()


async def read(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count:
            assert time.monotonic() < deadline, f"read {values} from {topic}, wanted {count}"
            batches = await consumer.getmany(timeout_ms=500)
            values += [rec.value for recs in batches.values() for rec in recs]
    finally:
        await consumer.stop()
    return values


def java_processes_using(path: Path) -> list[int]:
    """Pids of live processes whose command line mentions ``path`` (our broker's config)."""
    needle = str(path).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def assert_gone(kafka: EmbeddedKafka, pid: int) -> None:
    assert not kafka.running and kafka.pid is None
    assert not Path(f"/proc/{pid}").exists(), f"broker pid {pid} still exists"
    assert java_processes_using(kafka.properties_path) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", kafka.port), timeout=1).close()


def topic_name() -> str:
    return f"embedded-kafka-test-{uuid.uuid4().hex[:8]}"


async def test_session_broker_round_trip_with_acks_all(kafka_broker) -> None:
    topic = topic_name()
    await produce(kafka_broker.bootstrap, topic, b"one", b"two")
    assert await read(kafka_broker.bootstrap, topic, 2) == [b"one", b"two"]
    if isinstance(kafka_broker, EmbeddedKafka):
        # auto-created topics get num.partitions=8 (the pipeline's default fan-out)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            assert len(await producer.partitions_for(topic)) == 8
        finally:
            await producer.stop()


async def test_stop_start_and_kill_start_keep_data_and_leave_no_process(kafka_factory) -> None:
    kafka = kafka_factory()
    topic = topic_name()
    await produce(kafka.bootstrap, topic, b"before-stop")

    pid = kafka.pid
    assert pid and kafka.running
    kafka.stop()
    assert_gone(kafka, pid)
    kafka.stop()  # idempotent

    kafka.start()
    assert kafka.pid != pid
    assert await read(kafka.bootstrap, topic, 1) == [b"before-stop"]

    await produce(kafka.bootstrap, topic, b"before-kill")
    pid = kafka.pid
    kafka.kill()
    assert_gone(kafka, pid)

    kafka.start()
    assert await read(kafka.bootstrap, topic, 2) == [b"before-stop", b"before-kill"]
    pid = kafka.pid
    kafka.stop()
    assert_gone(kafka, pid)


def test_context_manager_and_port_in_use(tmp_path: Path) -> None:
    with EmbeddedKafka(free_port(), tmp_path / "a") as kafka:
        pid = kafka.pid
        assert kafka.bootstrap == f"127.0.0.1:{kafka.port}"
        # a second broker on a taken port fails at once with a clear message, starts nothing
        other = EmbeddedKafka(kafka.port, tmp_path / "b")
        with pytest.raises(KafkaStartError, match="in use"):
            other.start(timeout=10)
        assert other.pid is None
    assert_gone(kafka, pid)


def test_jars_are_fetched_once(tmp_path: Path) -> None:
    kafka = EmbeddedKafka(free_port(), tmp_path)
    jars = kafka.ensure_jars()
    started = time.monotonic()
    assert kafka.ensure_jars() == jars
    assert time.monotonic() - started < 1, "second ensure_jars() should not run mvn"
    assert (jars / f"kafka_2.13-{kafka.version}.jar").is_file()
    assert (kafka.cache_dir / ".complete").is_file()


def test_module_main_runs_in_foreground_until_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkafka.embedded_kafka", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"ready at \S+ .*\(pid (\d+)", line)
        assert match, f"unexpected output: {line!r}{proc.stdout.read() if proc.poll() is not None else ''}"
        java_pid = int(match.group(1))
        assert Path(f"/proc/{java_pid}").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not Path(f"/proc/{java_pid}").exists()
        assert java_processes_using(tmp_path / "server.properties") == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
