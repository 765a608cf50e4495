"""Kafka bridge against a real Apache Kafka (the session's embedded broker), records produced
with aiokafka's own producer. Covers an "external" cluster (brokers listed in the source) and
direct Kafka production (no brokers: convoy-stream's own cluster)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bridges import BridgeManager
from bridges.kafka import group_id_for, security_options
from tests.support.collector import INVALID_REASON, Collector, running

pytestmark = pytest.mark.integration


async def make_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"bridge-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


def source_for(
    topic: str, brokers: list[str], *, uid: str | None = None, group: str = "", workers: int = 1
) -> dict[str, Any]:
    return {
        "uid": uid or f"src-{uuid.uuid4().hex[:8]}",
        "project_id": "proj-kafka",
        "type": "pub_sub",
        "is_disabled": False,
        "pub_sub": {
            "type": "kafka",
            "workers": workers,
            "kafka": {"brokers": brokers, "topic_name": topic, "consumer_group_id": group},
        },
    }


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> list[tuple[int, int]]:
    """Produce (key, value, headers) records; returns (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        placed = []
        for key, value, headers in records:
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers or None)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def test_kafka_bodies_headers_ids_and_outcomes(kafka_broker: Any) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = await make_topic(bootstrap)
    group = f"group-{uuid.uuid4().hex[:6]}"
    source = source_for(topic, [bootstrap], group=group)
    collector = Collector()
    placed = await produce(
        bootstrap,
        topic,
        [
            (b"order-1", b"hello kafka", [("X-Trace-Id", b"trace-4"), ("Bin", b"\xff\x01")]),
            (None, b"no key", []),
            (b"order-3", b"invalid: not json", []),
            (b"order-4", b"flaky: kafka was down", []),
        ],
    )
    async with running(source, collector):
        await collector.wait_handled(b"hello kafka", b"no key", b"flaky: kafka was down", timeout=30)
        await collector.wait_for(lambda: len(collector.dead) == 1, what="dead letter")

    plain = collector.message(b"hello kafka")
    assert plain.message_id == "order-1"
    assert plain.headers == {"x-trace-id": "trace-4", "bin": "/wE="}
    partition, offset = placed[1]
    assert collector.message(b"no key").message_id == f"{topic}/{partition}/{offset}"
    _, dead, reason = collector.dead[0]
    assert (dead.body, dead.message_id, reason) == (b"invalid: not json", "order-3", INVALID_REASON)
    # Rejected twice (seek back, not committed), then ingested.
    assert collector.attempts[b"flaky: kafka was down"] == 3
    assert collector.attempts[b"invalid: not json"] == 1
    # Everything acked: the group's offset is past the last record.
    assert await committed(bootstrap, group, topic) == {0: placed[-1][1] + 1}


async def test_kafka_message_in_flight_when_worker_dies_is_delivered_again(kafka_broker: Any) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = await make_topic(bootstrap)
    group = f"group-{uuid.uuid4().hex[:6]}"
    source = source_for(topic, [bootstrap], group=group)
    placed = await produce(bootstrap, topic, [(b"k1", b"hang: dies mid-ingest", []), (b"k2", b"second", [])])
    hanging = Collector()
    async with running(source, hanging) as bridge:
        await hanging.wait_for(lambda: hanging.in_handle, timeout=30, what="handler entered")
        await bridge.kill()
    assert await committed(bootstrap, group, topic) == {0: None}  # nothing committed

    healthy = Collector(hang=False)
    async with running(source, healthy):
        await healthy.wait_handled(b"hang: dies mid-ingest", b"second", timeout=30)
    assert healthy.message(b"hang: dies mid-ingest").message_id == "k1"
    assert await committed(bootstrap, group, topic) == {0: placed[-1][1] + 1}


async def test_kafka_commit_stops_at_the_first_unacked_offset(kafka_broker: Any) -> None:
    """The consumer module on its own: acking offsets 0 and 2 commits 1, never 3; rejecting 1
    fetches 1 and 2 again."""
    from bridges.kafka import KafkaConsumer

    bootstrap = kafka_broker.bootstrap
    topic = await make_topic(bootstrap)
    group = f"group-{uuid.uuid4().hex[:6]}"
    await produce(bootstrap, topic, [(b"a", b"m0", []), (b"b", b"m1", []), (b"c", b"m2", [])])
    consumer = KafkaConsumer(source_for(topic, [bootstrap], group=group), batch_size=10)
    await consumer.connect()
    try:
        batch: list[Any] = []
        for _ in range(30):
            batch += await consumer.receive(10)
            if len(batch) == 3:
                break
        assert [m.body for m in batch] == [b"m0", b"m1", b"m2"]
        await consumer.ack([batch[0], batch[2]])
        assert await committed(bootstrap, group, topic) == {0: 1}
        await consumer.reject([batch[1]])
        again = await consumer.receive(10)
        assert [m.body for m in again] == [b"m1", b"m2"]
        await consumer.ack(again)
        assert await committed(bootstrap, group, topic) == {0: 3}
    finally:
        await consumer.close()


async def test_kafka_direct_production_via_manager(kafka_broker: Any) -> None:
    """No brokers in the source: the topic is on convoy-stream's own cluster."""
    bootstrap = kafka_broker.bootstrap
    topic_a = await make_topic(bootstrap, partitions=2)
    topic_b = await make_topic(bootstrap)
    collector = Collector()
    manager = BridgeManager(collector.handle, collector.dead_letter, kafka_bootstrap=bootstrap)
    uid = f"src-direct-{uuid.uuid4().hex[:6]}"
    try:
        source = source_for(topic_a, [], uid=uid, workers=2)
        await manager.reconcile([source])
        await produce(bootstrap, topic_a, [(f"k{i}".encode(), f"direct-{i}".encode(), []) for i in range(20)])
        await collector.wait_handled(*[f"direct-{i}".encode() for i in range(20)], timeout=30)
        status = manager.status()[uid]
        assert (status["broker"], status["workers"], status["running"]) == ("kafka", 2, 2)
        assert group_id_for(source) == f"convoy-stream-{uid}"
        await collector.wait_for(lambda: manager.status()[uid]["acked"] == 20, timeout=10, what="acks")
        offsets = await committed(bootstrap, f"convoy-stream-{uid}", topic_a, partitions=2)
        assert sum(o or 0 for o in offsets.values()) == 20

        # Config change (another topic): restarted there.
        await manager.reconcile([source_for(topic_b, [], uid=uid)])
        await produce(bootstrap, topic_b, [(b"kb", b"on topic b", [])])
        await collector.wait_handled(b"on topic b", timeout=30)
        assert manager.status()[uid]["started_at"] != status["started_at"]

        # Disabled: stopped.
        await manager.reconcile([dict(source_for(topic_b, [], uid=uid), is_disabled=True)])
        assert manager.status() == {}
        await produce(bootstrap, topic_b, [(b"kc", b"while disabled", [])])
        await asyncio.sleep(1.5)
        assert b"while disabled" not in collector.bodies()
    finally:
        await manager.stop()


def test_kafka_security_options() -> None:
    assert security_options(None) == {"security_protocol": "PLAINTEXT"}
    scram = security_options({"type": "scram", "username": "u", "password": "p"})
    assert scram["security_protocol"] == "SASL_PLAINTEXT"
    assert scram["sasl_mechanism"] == "SCRAM-SHA-512"  # Convoy's default hash
    scram256 = security_options({"type": "scram", "hash": "SHA256", "username": "u", "password": "p", "tls": True})
    assert (scram256["security_protocol"], scram256["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert scram256["ssl_context"] is not None
    plain = security_options({"type": "plain", "username": "u", "password": "p"})
    assert (plain["sasl_mechanism"], plain["sasl_plain_username"], plain["sasl_plain_password"]) == ("PLAIN", "u", "p")
    assert security_options({"tls": True})["security_protocol"] == "SSL"
    with pytest.raises(ValueError, match="unsupported auth type"):
        security_options({"type": "kerberos"})
