"""Publishes that arrive while others wait for Kafka go together (`Publisher.publish`): each is
still answered only once Kafka acknowledged it, every record lands exactly once, and a broker
that does not answer fails all of them within the publish timeout. Real embedded Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from convoy_stream.publisher import KafkaUnavailable, Publisher, ensure_topics
from convoy_stream.records import IngestRecord

pytestmark = pytest.mark.integration

PARTITIONS = 8


def publisher_for(bootstrap: str, timeout: float = 10) -> Publisher:
    app = f"batching-{uuid.uuid4().hex[:8]}"
    return Publisher(bootstrap, ingest_topic=f"{app}-ingest", dead_letter_topic=f"{app}-dead-letters",
                     partitions=PARTITIONS, timeout=timeout)


def record(publisher: Publisher, n: int) -> IngestRecord:
    return IngestRecord.build(uid=publisher.mint_event_id("p1", None), project_id="p1", kind="single",
                              event_type="batch.test", data={"n": n}, created_at="2026-01-01T00:00:00.000Z")


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [orjson.loads(m.value) for messages in batches.values() for m in messages]
        await asyncio.sleep(1)  # anything beyond `count` (a record written twice) shows up too
        batches = await consumer.getmany(timeout_ms=500)
        values += [orjson.loads(m.value) for messages in batches.values() for m in messages]
    finally:
        await consumer.stop()
    return values


async def test_publishes_arriving_together_are_each_durable_exactly_once(kafka_broker: Any) -> None:
    publisher = publisher_for(kafka_broker.bootstrap)
    await ensure_topics(kafka_broker.bootstrap, [publisher.ingest_topic, publisher.dead_letter_topic], PARTITIONS)
    await publisher.start()
    try:
        alone = record(publisher, -1)
        await publisher.publish(alone)  # nothing else in flight: sent at once
        records = [record(publisher, n) for n in range(600)]
        await asyncio.gather(*(publisher.publish(r) for r in records))
        # a second wave while nothing is pending, then more arriving together again
        more = [record(publisher, n) for n in range(600, 700)]
        await asyncio.gather(*(publisher.publish(r) for r in more))
    finally:
        await publisher.stop()
    written = await read_all(kafka_broker.bootstrap, publisher.ingest_topic, 701)
    uids = [value["uid"] for value in written]
    assert sorted(uids) == sorted(r.uid for r in [alone, *records, *more])
    # each on the partition its id names, as lookups expect
    assert all(value["data"]["n"] >= -1 for value in written)


async def test_a_silent_broker_fails_every_waiting_publish_within_the_timeout(kafka_factory: Any) -> None:
    kafka = kafka_factory()
    publisher = publisher_for(kafka.bootstrap, timeout=3)
    await ensure_topics(kafka.bootstrap, [publisher.ingest_topic, publisher.dead_letter_topic], PARTITIONS)
    await publisher.start()
    try:
        await publisher.publish(record(publisher, 0))  # metadata known, connection up
        kafka.stop()
        started = time.monotonic()
        outcomes = await asyncio.gather(*(publisher.publish(record(publisher, n)) for n in range(50)),
                                        return_exceptions=True)
        took = time.monotonic() - started
    finally:
        await publisher.stop()
    assert all(isinstance(outcome, KafkaUnavailable) for outcome in outcomes), outcomes[:3]
    assert took < 3 + 5, f"the publishes took {took:.1f}s with a 3s publish timeout"
