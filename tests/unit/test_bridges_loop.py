"""The shared bridge loop and manager logic, driven by an in-memory queue.

The in-memory consumer is not a broker mock standing in for an integration test (those run
against the real brokers in tests/integration/test_bridges_*.py); it lets these tests observe
the order of handle/dead_letter/ack/reject calls, which no real broker exposes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bridges import BridgeManager, BrokerMessage, InvalidMessage, WorkerStats, one_at_a_time, run_consumer
from bridges.base import Backoff, header_text, lower_headers, redact, source_secrets
from bridges.manager import config_hash, is_wanted, worker_count


class MemoryConsumer:
    broker = "memory"

    def __init__(self, messages: list[bytes], *, fail_connects: int = 0, fail_receive_once: bool = False) -> None:
        self.pending = [BrokerMessage(body=b, headers={}, message_id=str(i)) for i, b in enumerate(messages)]
        self.events: list[tuple[str, Any]] = []
        self.fail_connects = fail_connects
        self.fail_receive_once = fail_receive_once
        self.connects = 0
        self.closes = 0

    async def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.fail_connects:
            raise ConnectionError("broker down (password=hunter2)")

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        if self.fail_receive_once:
            self.fail_receive_once = False
            raise ConnectionError("connection dropped")
        batch, self.pending = self.pending[:max_messages], self.pending[max_messages:]
        if not batch:
            await asyncio.sleep(0.01)
        return batch

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        self.events.append(("ack", [m.body for m in messages]))

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        self.events.append(("reject", [m.body for m in messages]))
        self.pending = list(messages) + self.pending

    async def close(self) -> None:
        self.closes += 1


SOURCE = {"uid": "src-1", "pub_sub": {"type": "memory", "memory": {"password": "hunter2"}}}


async def run_until(consumer: MemoryConsumer, handle: Any, dead_letter: Any, done: Any, **kwargs: Any) -> WorkerStats:
    stop = asyncio.Event()
    stats = WorkerStats()
    task = asyncio.create_task(
        run_consumer(SOURCE, consumer, handle, dead_letter, stop=stop, stats=stats, batch_size=10, **kwargs)
    )
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, consumer.events
        assert not task.done(), task
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    return stats


async def test_ack_only_after_handle_and_dead_letter_returned() -> None:
    consumer = MemoryConsumer([b"ok", b"bad", b"slow"])
    log: list[str] = []

    async def handle(source: Mapping[str, Any], message: BrokerMessage) -> None:
        if message.body == b"bad":
            raise InvalidMessage("not json")
        if message.body == b"slow":
            await asyncio.sleep(0.2)
        log.append(f"handled {message.body.decode()}")

    async def dead_letter(source: Mapping[str, Any], message: BrokerMessage, reason: str) -> None:
        await asyncio.sleep(0.1)
        log.append(f"dead {message.body.decode()} {reason}")

    stats = await run_until(consumer, one_at_a_time(handle), dead_letter, lambda: consumer.events)
    assert consumer.events == [("ack", [b"ok", b"bad", b"slow"])]
    assert sorted(log) == ["dead bad not json", "handled ok", "handled slow"]
    assert (stats.acked, stats.dead_lettered, stats.rejected) == (3, 1, 0)


async def test_transient_failure_rejects_backs_off_and_retries() -> None:
    consumer = MemoryConsumer([b"ok", b"flaky"])
    tries: list[float] = []

    async def handle(source: Mapping[str, Any], message: BrokerMessage) -> None:
        if message.body == b"flaky":
            tries.append(time.monotonic())
            if len(tries) < 3:
                raise RuntimeError("kafka down")

    async def dead_letter(*args: Any) -> None:
        raise AssertionError("transient failures are not dead-lettered")

    stats = await run_until(consumer, one_at_a_time(handle), dead_letter, lambda: len(consumer.events) == 4)
    assert consumer.events == [
        ("ack", [b"ok"]),
        ("reject", [b"flaky"]),
        ("reject", [b"flaky"]),
        ("ack", [b"flaky"]),
    ]
    assert tries[1] - tries[0] >= 0.5 and tries[2] - tries[1] >= 1.0  # exponential backoff
    assert stats.rejected == 2 and "kafka down" in (stats.last_error or "")


async def test_failed_dead_letter_is_transient() -> None:
    consumer = MemoryConsumer([b"bad"])
    calls = 0

    async def handle(source: Mapping[str, Any], message: BrokerMessage) -> None:
        raise InvalidMessage("bad")

    async def dead_letter(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("dead-letter topic unreachable")

    await run_until(consumer, one_at_a_time(handle), dead_letter, lambda: len(consumer.events) == 2)
    assert consumer.events == [("reject", [b"bad"]), ("ack", [b"bad"])]


async def test_a_batch_handler_gets_the_whole_receive_and_settles_each_message() -> None:
    consumer = MemoryConsumer([b"ok", b"bad", b"flaky", b"ok2"])
    batches: list[list[bytes]] = []
    dead: list[bytes] = []

    async def handle(source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[BaseException | None]:
        batches.append([m.body for m in messages])
        first = len(batches) == 1
        return [InvalidMessage("bad") if m.body == b"bad" else RuntimeError("down") if m.body == b"flaky" and first
                else None for m in messages]

    async def dead_letter(source: Mapping[str, Any], message: BrokerMessage, reason: str) -> None:
        dead.append(message.body)

    await run_until(consumer, handle, dead_letter, lambda: len(consumer.events) == 3)
    assert batches[0] == [b"ok", b"bad", b"flaky", b"ok2"]  # one call for the whole receive
    assert consumer.events == [("ack", [b"ok", b"bad", b"ok2"]), ("reject", [b"flaky"]), ("ack", [b"flaky"])]
    assert dead == [b"bad"]


async def test_a_handler_that_raises_or_miscounts_fails_the_batch_transiently() -> None:
    consumer = MemoryConsumer([b"a", b"b"])
    calls = 0

    async def handle(source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[BaseException | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("kafka down")
        if calls == 2:
            return [None]  # one outcome for two messages: nothing may be acked on its word
        return [None] * len(messages)

    stats = await run_until(consumer, handle, None, lambda: len(consumer.events) == 3)
    assert consumer.events == [("reject", [b"a", b"b"]), ("reject", [b"a", b"b"]), ("ack", [b"a", b"b"])]
    assert "1 outcomes for 2 messages" in (stats.last_error or "")


async def test_connect_and_receive_failures_reconnect_and_redact() -> None:
    consumer = MemoryConsumer([b"ok"], fail_connects=2, fail_receive_once=True)
    seen: list[BaseException] = []

    async def handle(source: Mapping[str, Any], message: BrokerMessage) -> None:
        return None

    stats = await run_until(consumer, one_at_a_time(handle), None, lambda: consumer.events, on_error=seen.append)
    assert consumer.connects == 4  # two refused, one dropped, one good
    assert consumer.closes >= 3
    assert len(seen) == 3
    assert stats.errors == 3
    assert "hunter2" not in (stats.last_error or "") and "connection dropped" in (stats.last_error or "")


def test_header_text_never_raises() -> None:
    assert header_text("x") == "x"
    assert header_text(b"caf\xc3\xa9") == "café"
    assert header_text(b"\xff\x00") == "/wA="
    assert header_text(True) == "true"
    assert header_text(42) == "42"
    assert header_text(None) == ""
    assert header_text({"b": 1, "a": [b"x"]}) == '{"a":["x"],"b":1}'
    assert lower_headers([("X-Trace", "1"), (b"Bin", b"\x01")]) == {"x-trace": "1", "bin": "\x01"}


def test_redact_removes_secrets_and_url_userinfo() -> None:
    source = {"pub_sub": {"sqs": {"secret_key": "topsecret", "access_key_id": "AKID123"},
                          "kafka": {"auth": {"password": "pw-123"}}}}
    secrets = source_secrets(source)
    text = "denied for AKID123 with topsecret at amqp://bob:pw-123@host:5672/ and pw-123"
    cleaned = redact(text, secrets)
    assert "topsecret" not in cleaned and "AKID123" not in cleaned and "pw-123" not in cleaned
    assert "bob" not in cleaned and "amqp://***@host:5672/" in cleaned


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.5 <= delays[0] <= 0.625
    assert 1.0 <= delays[1] <= 1.25
    assert all(d <= 30.0 for d in delays) and delays[-1] >= 30.0 * 0.99
    backoff.reset()
    assert backoff.next_delay() <= 0.625


def test_manager_helpers() -> None:
    assert worker_count({"pub_sub": {"workers": 3}}) == 3
    assert worker_count({"pub_sub": {"workers": 0}}) == 1
    assert worker_count({"pub_sub": {}}) == 1
    assert is_wanted({"type": "pub_sub", "pub_sub": {"type": "sqs"}})
    assert not is_wanted({"type": "pub_sub", "is_disabled": True, "pub_sub": {"type": "sqs"}})
    assert not is_wanted({"type": "pub_sub", "deleted_at": "2024-01-01", "pub_sub": {"type": "sqs"}})
    assert not is_wanted({"type": "http"})
    a = {"pub_sub": {"type": "amqp", "amqp": {"port": "5672"}}}
    b = {"pub_sub": {"type": "amqp", "amqp": {"port": "5673"}}}
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash({"name": "other", **a})


async def test_manager_reconcile_with_memory_consumers() -> None:
    made: list[MemoryConsumer] = []

    def factory(source: Mapping[str, Any], **kwargs: Any) -> MemoryConsumer:
        consumer = MemoryConsumer([b"m"] if not made else [])
        made.append(consumer)
        return consumer

    seen_names: list[str] = []

    async def handle(source: Mapping[str, Any], message: BrokerMessage) -> None:
        seen_names.append(source["name"])

    manager = BridgeManager(one_at_a_time(handle), None, consumer_factory=factory)  # type: ignore[arg-type]
    src = {"uid": "s", "name": "one", "type": "pub_sub", "pub_sub": {"type": "sqs", "workers": 2}}
    try:
        await manager.reconcile([src])
        assert len(made) == 2 and manager.status()["s"]["running"] == 2
        await manager.reconcile([dict(src, name="two")])  # not a pub_sub change: no restart
        assert len(made) == 2
        await manager.reconcile([dict(src, pub_sub={"type": "sqs", "workers": 1})])
        assert len(made) == 3 and manager.status()["s"]["running"] == 1
        await manager.reconcile([])
        assert manager.status() == {}
        assert all(c.closes >= 1 for c in made)
    finally:
        await manager.stop()
    assert seen_names and set(seen_names) <= {"one", "two"}


def test_invalid_message_keeps_reason() -> None:
    exc = InvalidMessage("missing event_type")
    assert exc.reason == "missing event_type" and str(exc) == "missing event_type"
    with pytest.raises(InvalidMessage):
        raise exc
