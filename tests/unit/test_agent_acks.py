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

from convoy_stream.agent_acks import AgentAckedTopic, release


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
    release([event])  # the agent: Batch.write returned
    assert consumer.committable == []  # take_events still holds it
    event.ack()  # take_events acks the batch after the body returns
    assert consumer.committable == [46]
