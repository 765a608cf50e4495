"""Publishing waits for Kafka's acknowledgement with one timer per record (`Publisher._send`):
many publishes at once are each durable exactly once, and a broker that stops answering fails
every waiting publish within the publish timeout. Real embedded Kafka."""

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
    app = f"publish-{uuid.uuid4().hex[:8]}"
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


async def test_publishes_at_once_are_each_durable_exactly_once(kafka_broker: Any) -> None:
    publisher = publisher_for(kafka_broker.bootstrap)
    await ensure_topics(kafka_broker.bootstrap, [publisher.ingest_topic, publisher.dead_letter_topic], PARTITIONS)
    await publisher.start()
    try:
        alone = record(publisher, -1)
        await publisher.publish(alone)
        records = [record(publisher, n) for n in range(600)]
        await asyncio.gather(*(publisher.publish(r) for r in records))
        more = [record(publisher, n) for n in range(600, 700)]
        await asyncio.gather(*(publisher.publish(r) for r in more))
    finally:
        await publisher.stop()
    written = await read_all(kafka_broker.bootstrap, publisher.ingest_topic, 701)
    uids = [value["uid"] for value in written]
    assert sorted(uids) == sorted(r.uid for r in [alone, *records, *more])


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
        # aiokafka's stop waits for unsent batches, which a stopped broker never takes
        await asyncio.wait([asyncio.ensure_future(publisher.stop())], timeout=5)
    assert all(isinstance(outcome, KafkaUnavailable) for outcome in outcomes), outcomes[:3]
    assert took < 3 + 5, f"the publishes took {took:.1f}s with a 3s publish timeout"
