"""The ingest feed (`ingest_feed.py`): fetched ingest records reach the pipeline in batches.

It replaces a Faust stream, so it must keep what a stream guaranteed around a rebalance:
nothing taken while Faust holds the flow, nothing from an older consumer generation,
nothing left buffered for a partition that moved, and a revoke that waits for the batch in
hand. A lost or doubled record here would be a lost acknowledged event or a late one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from faust.transport import conductor as faust_conductor
from mode.utils.queues import FlowControlEvent

from convoy_stream import ingest_feed
from convoy_stream.agent_commits import AgentCommits
from convoy_stream.ingest_feed import FED, IngestFeed


@dataclass
class Message:
    offset: int
    generation_id: int = 1
    topic: str = "app-ingest"

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, 0)


class App:
    """What the feed reads of Faust's app."""

    def __init__(self) -> None:
        self.flow_control = FlowControlEvent(initially_suspended=False)
        self.consumer_generation_id = 1
        self.rebalancing = False
        self.consumer = Consumer()


class Consumer:
    """Faust's consumer as the feed asks it: a partition's end offset from the last fetch."""

    def __init__(self) -> None:
        self.ends: dict[tuple[str, int], int] = {}

    def highwater(self, tp: tuple[str, int]) -> int:
        return self.ends[tp]  # aiokafka raises, too, for a partition it has not fetched


def feed(app: App, **kwargs: Any) -> IngestFeed:
    return IngestFeed(app, "app-ingest", **{"max_batch": 3, "within": 1.0, **kwargs})


def offsets(batch: list[Message]) -> list[int]:
    return [m.offset for m in batch]


def test_batches_hold_at_most_max_batch_and_do_not_wait_at_the_end_of_the_partition() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        app = App()
        app.consumer.ends[("app-ingest", 0)] = 4  # offsets 0-3: all of it is fetched
        f = feed(app, within=30.0)
        for offset in range(4):
            assert await f.on_message(Message(offset)) is FED
        full = await f.take()
        rest = await asyncio.wait_for(f.take(), 5)  # one record: taken alone, not after `within`
        return offsets(full), offsets(rest)

    assert asyncio.run(scenario()) == ([0, 1, 2], [3])


def test_a_lone_record_is_taken_as_soon_as_it_arrives() -> None:
    async def scenario() -> list[int]:
        f = feed(App(), within=30.0)
        taking = asyncio.ensure_future(f.take())
        await asyncio.sleep(0.01)
        assert not taking.done()  # nothing buffered: nothing taken
        await f.on_message(Message(7))
        return offsets(await asyncio.wait_for(taking, 5))  # not after `within`

    assert asyncio.run(scenario()) == [7]


def test_with_a_backlog_behind_it_a_batch_waits_briefly_to_fill() -> None:
    async def scenario() -> tuple[list[int], float, list[int]]:
        app = App()
        app.consumer.ends[("app-ingest", 0)] = 1_000  # Kafka holds far more than was fetched
        f = feed(app, within=1.0)
        await f.on_message(Message(0))
        taking = asyncio.ensure_future(f.take())
        await asyncio.sleep(0.02)
        assert not taking.done()  # waits for the rest of the fetch
        await f.on_message(Message(1))
        await f.on_message(Message(2))
        full = offsets(await asyncio.wait_for(taking, 0.5))  # filled: taken before `within`
        await f.on_message(Message(3))
        started = time.monotonic()
        alone = offsets(await f.take())  # never fills: taken after `within`
        return full, time.monotonic() - started, alone

    full, waited, alone = asyncio.run(scenario())
    assert full == [0, 1, 2] and alone == [3]
    assert 0.95 <= waited < 10


def test_messages_of_an_older_consumer_generation_are_not_handed_on() -> None:
    async def scenario() -> list[int]:
        app = App()
        f = feed(app)
        await f.on_message(Message(1, generation_id=1))
        await f.on_message(Message(2, generation_id=1))
        app.consumer_generation_id = 2  # a rebalance: those two are read again from the commit
        await f.on_message(Message(1, generation_id=2))
        return offsets(await f.take())

    assert asyncio.run(scenario()) == [1]


def test_nothing_is_appended_while_faust_holds_the_flow() -> None:
    async def scenario() -> tuple[bool, list[int]]:
        app = App()
        f = feed(app)
        app.flow_control.suspend()
        handing = asyncio.ensure_future(f.on_message(Message(7)))
        await asyncio.sleep(0.01)
        held = not handing.done() and not f._buffer
        app.flow_control.resume()
        await asyncio.wait_for(handing, 1)
        return held, offsets(await f.take())

    held, taken = asyncio.run(scenario())
    assert held and taken == [7]


def test_emptied_with_faust_s_stream_buffers_which_frees_a_waiting_drain_loop() -> None:
    async def scenario() -> tuple[bool, list[int]]:
        app = App()
        f = feed(app, high_water=2)
        app.flow_control.manage_queue(f)  # as `run` does
        await f.on_message(Message(1))
        handing = asyncio.ensure_future(f.on_message(Message(2)))  # at high water: the drain loop waits
        await asyncio.sleep(0.01)
        waited = not handing.done()
        app.flow_control.clear()  # revoke: what is buffered belongs to the old assignment
        await asyncio.wait_for(handing, 1)
        await f.on_message(Message(3))
        return waited, offsets(await f.take())

    waited, taken = asyncio.run(scenario())
    assert waited and taken == [3]


def test_a_failed_batch_is_retried_and_a_revoke_waits_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_feed, "RETRY_DELAYS", (0.05,))
    handled: list[list[int]] = []

    async def scenario() -> tuple[bool, bool]:
        f = feed(App())
        release = asyncio.Event()

        async def handle(batch: list[Message]) -> None:
            handled.append(offsets(batch))
            if len(handled) == 1:
                raise RuntimeError("kafka unavailable")
            await release.wait()

        running = asyncio.ensure_future(f.run(handle))
        for offset in range(3):
            await f.on_message(Message(offset))
        await asyncio.sleep(0.2)
        idle = asyncio.ensure_future(f.wait_idle())
        await asyncio.sleep(0.01)
        waited = not idle.done()  # the retried batch is still in hand
        release.set()
        await asyncio.wait_for(idle, 1)
        running.cancel()
        return waited, idle.done()

    waited, done = asyncio.run(scenario())
    assert handled == [[0, 1, 2], [0, 1, 2]]
    assert waited and done


def test_a_rebalance_ends_the_retry_of_a_batch_that_is_no_longer_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_feed, "RETRY_DELAYS", (0.01,))
    attempts: list[list[int]] = []

    async def scenario() -> None:
        app = App()
        f = feed(app)

        async def handle(batch: list[Message]) -> None:
            attempts.append(offsets(batch))
            app.consumer_generation_id = 2  # the partition moved while Kafka was down
            raise RuntimeError("kafka unavailable")

        running = asyncio.ensure_future(f.run(handle))
        for offset in range(3):
            await f.on_message(Message(offset))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(f.wait_idle(), 1)
        running.cancel()

    asyncio.run(scenario())
    assert attempts == [[0, 1, 2]]


def test_the_conductor_hands_ingest_messages_to_the_feed_and_others_to_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    class Handler:
        def __init__(self) -> None:
            self.got: list[Message] = []

        async def on_message(self, message: Message) -> str:
            self.got.append(message)
            return "faust"

    async def scenario() -> tuple[Any, Any, list[int], list[Message]]:
        app = App()
        app.ingest_feed = f = feed(app)  # type: ignore[attr-defined]
        app.agent_commits = commits  # type: ignore[attr-defined]
        faust = Handler()
        monkeypatch.setattr(faust_conductor.Conductor, "_compile_message_handler", lambda self: faust.on_message)
        conductor = ingest_feed.FeedConductor.__new__(ingest_feed.FeedConductor)  # no Service machinery
        conductor.app = app
        on_message = conductor._compile_message_handler()
        fed = await on_message(Message(5))
        other = await on_message(Message(6, topic="app-dead-letters"))
        return fed, other, offsets(list(f._buffer)), faust.got

    commits = AgentCommits(["app-ingest", "app-dead-letters"])
    fed, other, buffered, to_faust = asyncio.run(scenario())
    assert fed is FED and other == "faust"
    assert buffered == [5] and [m.offset for m in to_faust] == [6]
    # both were handed on: a hole at either offset would now be read again
    assert commits._handed == {("app-ingest", 0): 5, ("app-dead-letters", 0): 6}
