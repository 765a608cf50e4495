"""Run real convoy-stream worker processes for integration tests.

A worker here is exactly what `convoy-stream worker` runs for a user: its own
process, its own HTTP port and data dir, joined to the app's consumer group
through Kafka. Tests talk to it over HTTP and read the delivery topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from devkafka.embedded_kafka import free_port
from convoy_stream.kafka_connection import KafkaConnection, client_options


@dataclass
class Worker:
    bootstrap: str
    data_dir: Path
    app_id: str
    admin_token: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    #: The app's cluster with TLS/SASL settings; `bootstrap` alone means plaintext.
    kafka: KafkaConnection | None = None
    process: subprocess.Popen[bytes] | None = None
    #: The `convoy-stream` command and its options (`("api", "--processes", "2")` for the API role).
    command: tuple[str, ...] = ("worker",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
            "CONVOY_STREAM_LOG_LEVEL": "info",
            # Brokers, SQS and endpoints of the tests run on this machine (`netpolicy.py`).
            "CONVOY_STREAM_ALLOW_PRIVATE_NETWORKS": "true",
            **(self.kafka.to_env() if self.kafka else {}),
            **self.env,
        }
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "convoy_stream.cli", *self.command], env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def wait_healthy(self, timeout: float = 60) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log_tail()}", pytrace=False)
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"worker not healthy after {timeout}s:\n{self.log_tail()}", pytrace=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s; last value: {last!r}")


def read_topic(bootstrap: str | KafkaConnection, topic: str, *, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20) -> list[dict[str, Any]]:
    """Every JSON record of `topic` from the beginning, once `until(records)` holds.

    `bootstrap` is a plaintext bootstrap string or the app's connection settings (TLS, SASL).
    """

    async def consume() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(topic, **client_options(bootstrap), auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        records: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=300)
                for messages in batches.values():
                    for message in messages:
                        document = orjson.loads(message.value)
                        document["__key"] = orjson.loads(message.key) if message.key else None
                        records.append(document)
                if until(records):
                    return records
            return records
        finally:
            await consumer.stop()

    records = asyncio.run(consume())
    if not until(records):
        pytest.fail(f"{topic}: condition not met within {timeout}s; {len(records)} records read", pytrace=False)
    return records


def read_to_end(bootstrap: str | KafkaConnection, topic: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Every JSON record of `topic` up to its end offsets as they are when called.

    For "X was never written" checks: a record that was written before the call is read,
    however busy the machine (no fixed poll window), and the read ends as soon as the
    consumer's position reaches every partition's end.
    """
    from aiokafka import TopicPartition

    async def consume() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - a topic created a moment ago
                partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
            assert partitions, f"topic {topic} does not exist"
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            records: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            async def behind() -> bool:
                for tp, end in ends.items():
                    if await consumer.position(tp) < end:
                        return True
                return False

            while await behind():
                assert time.monotonic() < deadline, f"{topic}: end offsets {ends} not reached within {timeout}s"
                for tp, messages in (await consumer.getmany(*partitions, timeout_ms=500)).items():
                    for message in messages:
                        if message.offset < ends[tp]:
                            document = orjson.loads(message.value)
                            document["__key"] = orjson.loads(message.key) if message.key else None
                            records.append(document)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(consume())


def all_committed(bootstrap: str | KafkaConnection, app_id: str, topic: str, timeout: float = 30, partitions: int = 8) -> None:
    """Wait until the worker group has committed every record of `<app_id>-<topic>`.

    The agents commit only what they wrote (`agent_commits.py`): a record left uncommitted
    would be processed again at every restart.
    """
    name = f"{app_id}-{topic}"
    deadline = time.monotonic() + timeout
    left = asyncio.run(_uncommitted(bootstrap, app_id, topic, partitions))
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = asyncio.run(_uncommitted(bootstrap, app_id, topic, partitions))
    assert not left, f"records of {name} never committed, per partition: {left}"


async def _uncommitted(bootstrap: str | KafkaConnection, app_id: str, topic: str, partitions: int) -> dict[int, int]:
    """Records of `<app_id>-<topic>` past the group's committed offset, per partition that has any."""
    from aiokafka import TopicPartition

    committed = await committed_offsets(bootstrap, app_id, topic)
    consumer = AIOKafkaConsumer(**client_options(bootstrap))
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(f"{app_id}-{topic}", p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: end - committed.get(tp.partition, 0) for tp, end in ends.items()
            if end > committed.get(tp.partition, 0)}


def committed_while_progressing(bootstrap: str | KafkaConnection, app_id: str, topic: str, *, stall: float = 60,
                                partitions: int = 8) -> None:
    """Wait until the worker group has committed every record of `<app_id>-<topic>`, for as
    long as it keeps committing: fail only when nothing more was committed for `stall`
    seconds (a stuck worker), not because a busy machine drains a large backlog slowly."""
    name = f"{app_id}-{topic}"

    async def lag() -> int:
        return sum((await _uncommitted(bootstrap, app_id, topic, partitions)).values())

    left = asyncio.run(lag())
    progress_at = time.monotonic()
    while left:
        assert time.monotonic() - progress_at < stall, f"{name}: {left} records uncommitted, none committed for {stall}s"
        time.sleep(1)
        now = asyncio.run(lag())
        if now < left:
            progress_at = time.monotonic()
        left = now


async def committed_offsets(bootstrap: str | KafkaConnection, group: str, topic: str) -> dict[int, int]:
    """The consumer group `group`'s committed offset per partition of `<group>-<topic>`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == f"{group}-{topic}"}
