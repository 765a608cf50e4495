"""Google Pub/Sub bridge against the official emulator, messages published with
google-cloud-pubsub's own PublisherClient."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from bridges import BridgeManager
from bridges.pubsub import service_account_info

from tests.support.collector import INVALID_REASON, Collector, running

pytestmark = pytest.mark.integration

PROJECT = "convoy-stream-test"
ACK_DEADLINE = 10  # the minimum Pub/Sub allows


@pytest.fixture
def emulator(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    yield pubsub_emulator


def make_subscription() -> tuple[str, str]:
    """A fresh topic and subscription; returns (topic path, subscription id)."""
    suffix = uuid.uuid4().hex[:10]
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, f"topic-{suffix}")
    subscription_id = f"sub-{suffix}"
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, subscription_id),
        topic=topic,
        ack_deadline_seconds=ACK_DEADLINE,
    )
    subscriber.close()
    return topic, subscription_id


def source_for(subscription_id: str, *, uid: str | None = None, workers: int = 1) -> dict[str, Any]:
    return {
        "uid": uid or f"src-{uuid.uuid4().hex[:8]}",
        "project_id": "proj-google",
        "type": "pub_sub",
        "is_disabled": False,
        "pub_sub": {
            "type": "google",
            "workers": workers,
            # Empty service account: fine against the emulator (PUBSUB_EMULATOR_HOST).
            "google": {"project_id": PROJECT, "subscription_id": subscription_id, "service_account": ""},
        },
    }


async def publish(topic: str, body: bytes, **attributes: str) -> str:
    def _publish() -> str:
        return pubsub_v1.PublisherClient().publish(topic, body, **attributes).result(timeout=10)

    return await asyncio.to_thread(_publish)


async def backlog(subscription_id: str) -> int:
    """Messages still deliverable on the subscription right now (pulled, then given back)."""

    def _pull() -> int:
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(PROJECT, subscription_id)
        with warnings.catch_warnings():  # deprecated, but the emulator honours it
            warnings.simplefilter("ignore", DeprecationWarning)
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 100, "return_immediately": True},
                timeout=5,
            )
        ids = [m.ack_id for m in response.received_messages]
        if ids:
            subscriber.modify_ack_deadline(
                request={"subscription": path, "ack_ids": ids, "ack_deadline_seconds": 0}
            )
        subscriber.close()
        return len(ids)

    return await asyncio.to_thread(_pull)


async def test_pubsub_bodies_headers_ids_and_outcomes(emulator: str) -> None:
    topic, subscription_id = make_subscription()
    source = source_for(subscription_id)
    collector = Collector()
    plain_id = await publish(topic, b'{"hello":"pubsub"}', **{"X-Trace-Id": "trace-2", "Kind": "test"})
    invalid_id = await publish(topic, b"invalid: not json")
    flaky_id = await publish(topic, b"flaky: kafka was down")

    async with running(source, collector):
        await collector.wait_handled(b'{"hello":"pubsub"}', b"flaky: kafka was down")
        await collector.wait_for(lambda: len(collector.dead) == 1, what="dead letter")

    plain = collector.message(b'{"hello":"pubsub"}')
    assert plain.message_id == plain_id
    assert plain.headers == {"x-trace-id": "trace-2", "kind": "test"}
    _, dead, reason = collector.dead[0]
    assert (dead.body, dead.message_id, reason) == (b"invalid: not json", invalid_id, INVALID_REASON)
    assert collector.attempts[b"flaky: kafka was down"] == 3
    assert collector.message(b"flaky: kafka was down").message_id == flaky_id
    # Everything was acked: nothing is left to deliver.
    assert await backlog(subscription_id) == 0
    assert collector.attempts[b"invalid: not json"] == 1


async def test_pubsub_message_in_flight_when_worker_dies_is_delivered_again(emulator: str) -> None:
    topic, subscription_id = make_subscription()
    source = source_for(subscription_id)
    hanging = Collector()
    message_id = await publish(topic, b"hang: worker dies mid-ingest")
    async with running(source, hanging) as bridge:
        await hanging.wait_for(lambda: hanging.in_handle, what="handler entered")
        await bridge.kill()

    healthy = Collector(hang=False)
    async with running(source, healthy):
        # Not acked, so Pub/Sub redelivers it once the ack deadline passed.
        await healthy.wait_handled(b"hang: worker dies mid-ingest", timeout=ACK_DEADLINE + 10)
    assert healthy.message(b"hang: worker dies mid-ingest").message_id == message_id


async def test_pubsub_manager_follows_source_config(emulator: str) -> None:
    topic_a, sub_a = make_subscription()
    topic_b, sub_b = make_subscription()
    collector = Collector()
    manager = BridgeManager(collector.handle, collector.dead_letter)
    try:
        source = source_for(sub_a, uid="src-google-managed")
        started = time.monotonic()
        await manager.reconcile([source])
        await publish(topic_a, b"manager: first")
        await collector.wait_handled(b"manager: first", timeout=10)
        assert time.monotonic() - started < 10
        first = manager.status()["src-google-managed"]
        assert (first["broker"], first["running"], first["connected"]) == ("google", 1, 1)

        await manager.reconcile([source_for(sub_b, uid="src-google-managed")])
        await publish(topic_b, b"manager: on b")
        await publish(topic_a, b"manager: old subscription")
        await collector.wait_handled(b"manager: on b", timeout=10)
        assert manager.status()["src-google-managed"]["started_at"] != first["started_at"]

        await manager.reconcile([dict(source_for(sub_b, uid="src-google-managed"), is_disabled=True)])
        assert manager.status() == {}
        await publish(topic_b, b"manager: while disabled")
        await asyncio.sleep(1.5)
        assert b"manager: while disabled" not in collector.bodies()
        assert b"manager: old subscription" not in collector.bodies()
    finally:
        await manager.stop()


def test_service_account_is_base64_of_the_key_file() -> None:
    key = {"type": "service_account", "project_id": PROJECT, "client_email": "a@b.c"}
    encoded = base64.b64encode(json.dumps(key).encode()).decode()
    assert service_account_info(encoded) == key
    assert service_account_info(json.dumps(key)) == key
    assert service_account_info("") is None
    with pytest.raises(ValueError):
        service_account_info(base64.b64encode(b"not json").decode())
