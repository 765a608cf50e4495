"""An ingest record's offset becomes committable only once the agent has written it.

Faust releases a message's reference on paths where nothing was processed: the
stream skips (and acks) messages it pulls during a rebalance, and `take_events`
acks a batch whose processing raised. Its consumer commits an offset when the last
reference goes. These tests drive Faust's own `Message` reference counting through
`AgentAckedTopic` with a consumer that records what would be committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types.tuples import ConsumerMessage

import pytest

from convoy_stream.agent_acks import AgentAckedTopic, InOrderReleases, release


class Consumer:
    """Faust's consumer as a message sees it: told which offsets may be committed."""

    def __init__(self) -> None:
        self.committable: list[int] = []

    def ack(self, message: Any) -> bool:
        message.acked = True
        self.committable.append(message.offset)
        return True


def received(offset: int) -> tuple[Any, Consumer]:
    """A message as Faust's conductor hands it to the one channel of the topic, decoded."""
    app = faust.App("agent-acks-test", autodiscover=False)
    consumer = Consumer()
    app.consumer = consumer  # type: ignore[misc]
    topic = AgentAckedTopic(app, topics=["ingest"], key_type=str, value_type=None,
                            key_serializer="json", value_serializer="json")
    message = ConsumerMessage("ingest", 0, offset, 0.0, 0, [], b'"k"', b'{"a": 1}', None)
    message.incref(1)  # the conductor: one reference per subscribed channel
    event = asyncio.run(topic.decode(message, propagate=True))
    assert event.value == {"a": 1}
    return event, consumer


def test_a_message_faust_skips_or_acks_on_its_own_is_never_committable() -> None:
    event, consumer = received(45)
    event.ack()  # the stream skipping it during a rebalance, or take_events' finally after an error
    assert consumer.committable == []
    assert not event.message.acked


def test_a_written_message_is_committable_once_faust_has_acked_it_too() -> None:
    event, consumer = received(46)
    release([event])  # the agent: Kafka confirmed the batch
    assert consumer.committable == []  # take_events still holds it
    event.ack()  # take_events acks the batch after the body returns
    assert consumer.committable == [46]


class Event:
    """An event as `release` sees it."""

    def __init__(self, name: str, released: list[str]) -> None:
        self.name, self.released = name, released

    def ack(self) -> bool:
        self.released.append(self.name)
        return True


def test_batches_are_released_oldest_first_even_when_a_later_one_is_confirmed_first() -> None:
    async def scenario() -> list[str]:
        released: list[str] = []
        first_sent, second_sent = asyncio.Event(), asyncio.Event()

        async def confirmed(sent: asyncio.Event) -> None:
            await sent.wait()

        releases = InOrderReleases(limit=4)
        await releases.add(confirmed(first_sent), [Event("a1", released), Event("a2", released)])
        await releases.add(confirmed(second_sent), [Event("b1", released)])
        second_sent.set()
        await asyncio.sleep(0.01)
        assert released == []  # the second batch waits for the first
        first_sent.set()
        await releases.close()
        return released

    assert asyncio.run(scenario()) == ["a1", "a2", "b1"]


def test_a_failed_write_holds_its_batch_and_every_later_one_and_stops_the_agent() -> None:
    async def scenario() -> list[str]:
        released: list[str] = []

        async def ok() -> None:
            pass

        async def kafka_down() -> None:
            raise ConnectionError("broker unreachable")

        releases = InOrderReleases(limit=4)
        await releases.add(ok(), [Event("a", released)])
        await releases.add(kafka_down(), [Event("b", released)])
        await releases.add(ok(), [Event("c", released)])
        await asyncio.sleep(0.01)
        with pytest.raises(ConnectionError):
            await releases.add(ok(), [Event("d", released)])
        await releases.close()
        return released

    assert asyncio.run(scenario()) == ["a"]


def test_at_most_limit_batches_wait_for_kafka() -> None:
    async def scenario() -> None:
        never = asyncio.Event()

        async def unconfirmed() -> None:
            await never.wait()

        releases = InOrderReleases(limit=2)
        for _ in range(3):  # one being awaited, two queued
            await asyncio.wait_for(releases.add(unconfirmed(), []), 1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(releases.add(unconfirmed(), []), 0.1)
        never.set()
        await releases.close()

    asyncio.run(scenario())
