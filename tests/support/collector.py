"""The ``handle``/``dead_letter`` pair the bridge tests run with: our own small collector.

It records what the bridge hands over and behaves according to the message body, so one
published message can exercise one outcome:

- body starting with ``invalid:``  -> ``InvalidMessage("invalid test payload")`` (dead-letter)
- body starting with ``flaky:``    -> a transient error on the first ``flaky_failures`` tries
- body starting with ``hang:``     -> never returns (until cancelled) while ``hang`` is set
- anything else                     -> ingested
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridges import BrokerMessage, InvalidMessage, one_at_a_time

INVALID_REASON = "invalid test payload"


class TransientTestError(RuntimeError):
    """Stands in for "Kafka unreachable"."""


@dataclass
class Collector:
    flaky_failures: int = 2
    hang: bool = True
    delay: float = 0.0  # seconds each successful handle takes (a stream in progress)
    paused: bool = False  # while set, successful handles wait (the stream stays unfinished)
    handled: list[tuple[Mapping[str, Any], BrokerMessage]] = field(default_factory=list)
    dead: list[tuple[Mapping[str, Any], BrokerMessage, str]] = field(default_factory=list)
    attempts: Counter[bytes] = field(default_factory=Counter)
    in_handle: set[bytes] = field(default_factory=set)

    async def handle(self, source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[BaseException | None]:
        """The bridges' batch handler: each message on its own, as `handle_one` says."""
        return await one_at_a_time(self.handle_one)(source, messages)

    async def handle_one(self, source: Mapping[str, Any], message: BrokerMessage) -> None:
        self.attempts[message.body] += 1
        if message.body.startswith(b"invalid:"):
            raise InvalidMessage(INVALID_REASON)
        if message.body.startswith(b"flaky:") and self.attempts[message.body] <= self.flaky_failures:
            raise TransientTestError("kafka unreachable (test)")
        if self.hang and message.body.startswith(b"hang:"):
            self.in_handle.add(message.body)
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        while self.paused:
            await asyncio.sleep(0.01)
        self.handled.append((source, message))

    async def dead_letter(self, source: Mapping[str, Any], message: BrokerMessage, reason: str) -> None:
        self.dead.append((source, message, reason))

    # ------------------------------------------------------------------ queries

    def bodies(self) -> list[bytes]:
        return [m.body for _, m in self.handled]

    def message(self, body: bytes) -> BrokerMessage:
        matches = [m for _, m in self.handled if m.body == body]
        assert matches, f"{body!r} was not handled; handled: {self.bodies()}"
        return matches[0]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        """Poll ``predicate`` until true; fail with the collector's state after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or predicate}: handled="
                    f"{self.bodies()} dead={[m.body for _, m, _ in self.dead]} attempts={dict(self.attempts)}"
                )
            await asyncio.sleep(0.05)

    async def wait_handled(self, *bodies: bytes, timeout: float = 15.0) -> None:
        await self.wait_for(
            lambda: all(b in self.bodies() for b in bodies), timeout, f"handled {bodies}"
        )


class running:
    """``async with running(source, collector) as stats:`` runs one bridge consumer
    (``run_consumer`` with the real broker module) for the duration of the block."""

    def __init__(self, source: Mapping[str, Any], collector: Collector, *, batch_size: int = 10, **kwargs: Any) -> None:
        from bridges import WorkerStats, consumer_for

        self.source = source
        self.collector = collector
        self.batch_size = batch_size
        self.consumer = consumer_for(source, batch_size=batch_size, **kwargs)
        self.stop = asyncio.Event()
        self.stats = WorkerStats()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "running":
        from bridges import run_consumer

        self.task = asyncio.create_task(
            run_consumer(
                self.source,
                self.consumer,
                self.collector.handle,
                self.collector.dead_letter,
                batch_size=self.batch_size,
                stop=self.stop,
                stats=self.stats,
            )
        )
        return self

    async def wait_connected(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.stats.connected:
            assert self.task is not None
            if self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer not connected after {timeout} s: {self.stats.last_error}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """Stop abruptly (cancel), as a crashed worker would: nothing in flight is acked."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.stop.set()
        await asyncio.wait([self.task], timeout=10)
        if not self.task.done():
            await self.kill()
        if not self.task.cancelled() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]
