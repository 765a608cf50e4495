"""SQS bridge against a real SQS API (moto server), messages sent with boto3."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import boto3
import pytest

from bridges import BridgeManager

from tests.support.collector import INVALID_REASON, Collector, running

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCESS_KEY = "AKIDTESTBRIDGE"
SECRET_KEY = "sqs-secret-never-shown"
VISIBILITY = 2  # seconds: a crashed consumer's message comes back quickly


def sqs_client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def make_queue(endpoint: str) -> str:
    name = f"bridge-{uuid.uuid4().hex[:10]}"
    sqs_client(endpoint).create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(VISIBILITY)}
    )
    return name


def source_for(endpoint: str, queue: str, *, uid: str | None = None, workers: int = 1) -> dict[str, Any]:
    return {
        "uid": uid or f"src-{uuid.uuid4().hex[:8]}",
        "project_id": "proj-sqs",
        "type": "pub_sub",
        "is_disabled": False,
        "pub_sub": {
            "type": "sqs",
            "workers": workers,
            "sqs": {
                "access_key_id": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "default_region": REGION,
                "queue_name": queue,
                "endpoint": endpoint,
            },
        },
    }


async def send(endpoint: str, queue: str, body: str, attributes: dict[str, Any] | None = None) -> str:
    def _send() -> str:
        client = sqs_client(endpoint)
        url = client.get_queue_url(QueueName=queue)["QueueUrl"]
        return client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes or {})[
            "MessageId"
        ]

    return await asyncio.to_thread(_send)


def queue_depth(endpoint: str, queue: str) -> int:
    """Messages still in the queue, visible or in flight (i.e. not deleted)."""
    client = sqs_client(endpoint)
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


async def test_sqs_bodies_headers_ids_and_outcomes(sqs_server: str) -> None:
    queue = make_queue(sqs_server)
    source = source_for(sqs_server, queue)
    collector = Collector()
    plain_id = await send(
        sqs_server,
        queue,
        "hello sqs",
        {
            "X-Trace-Id": {"DataType": "String", "StringValue": "trace-1"},
            "Count": {"DataType": "Number", "StringValue": "42"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbin"},
        },
    )
    invalid_id = await send(sqs_server, queue, "invalid: not json")
    flaky_id = await send(sqs_server, queue, "flaky: kafka was down")

    async with running(source, collector):
        await collector.wait_handled(b"hello sqs", b"flaky: kafka was down")
        await collector.wait_for(lambda: len(collector.dead) == 1, what="dead letter")
        await collector.wait_for(lambda: queue_depth(sqs_server, queue) == 0, what="queue drained")

    plain = collector.message(b"hello sqs")
    assert plain.message_id == plain_id
    assert plain.headers == {
        "x-trace-id": "trace-1",
        "count": "42",
        "blob": base64.b64encode(b"\x00\xffbin").decode(),
    }
    source_seen, dead, reason = collector.dead[0]
    assert (dead.body, dead.message_id, reason) == (b"invalid: not json", invalid_id, INVALID_REASON)
    assert source_seen["uid"] == source["uid"]
    # The transient failures were not acked: SQS delivered the same message again.
    assert collector.attempts[b"flaky: kafka was down"] == 3
    assert collector.message(b"flaky: kafka was down").message_id == flaky_id
    # Dead-lettered and ingested messages are deleted, so never redelivered.
    assert collector.attempts[b"invalid: not json"] == 1
    assert collector.attempts[b"hello sqs"] == 1


async def test_sqs_message_in_flight_when_worker_dies_is_delivered_again(sqs_server: str) -> None:
    queue = make_queue(sqs_server)
    source = source_for(sqs_server, queue)
    hanging = Collector()
    message_id = await send(sqs_server, queue, "hang: worker dies mid-ingest")
    async with running(source, hanging) as bridge:
        await hanging.wait_for(lambda: hanging.in_handle, what="handler entered")
        await bridge.kill()

    started = time.monotonic()
    healthy = Collector(hang=False)
    async with running(source, healthy):
        await healthy.wait_handled(b"hang: worker dies mid-ingest", timeout=VISIBILITY + 10)
    assert healthy.message(b"hang: worker dies mid-ingest").message_id == message_id
    assert time.monotonic() - started >= VISIBILITY - 1.5  # came back after the visibility timeout


async def test_sqs_manager_follows_source_config(sqs_server: str) -> None:
    queue_a, queue_b = make_queue(sqs_server), make_queue(sqs_server)
    collector = Collector()
    manager = BridgeManager(collector.handle, collector.dead_letter)
    source = source_for(sqs_server, queue_a, uid="src-sqs-managed")
    http_source = {"uid": "src-http", "type": "http", "is_disabled": False}
    try:
        # New source: running within a few seconds.
        await manager.reconcile([http_source, source])
        await send(sqs_server, queue_a, "manager: first")
        await collector.wait_handled(b"manager: first", timeout=10)
        status = manager.status()
        assert list(status) == ["src-sqs-managed"]
        assert status["src-sqs-managed"]["broker"] == "sqs"
        assert status["src-sqs-managed"]["running"] == 1
        first_start = status["src-sqs-managed"]["started_at"]

        # Same config again (e.g. a periodic reconcile): nothing restarts.
        await manager.reconcile([http_source, dict(source, name="renamed")])
        assert manager.status()["src-sqs-managed"]["started_at"] == first_start

        # Changed pub_sub config: restarted on the new queue with two workers.
        changed = source_for(sqs_server, queue_b, uid="src-sqs-managed", workers=2)
        await manager.reconcile([changed])
        status = manager.status()["src-sqs-managed"]
        assert status["started_at"] != first_start
        assert status["running"] == 2
        await send(sqs_server, queue_b, "manager: on queue b")
        await collector.wait_handled(b"manager: on queue b", timeout=10)
        await send(sqs_server, queue_a, "manager: old queue")

        # Disabled: stopped.
        await manager.reconcile([dict(changed, is_disabled=True)])
        assert manager.status() == {}
        await send(sqs_server, queue_b, "manager: while disabled")

        # Re-enabled, then deleted.
        await manager.reconcile([changed])
        await collector.wait_handled(b"manager: while disabled", timeout=10)
        await manager.reconcile([])
        assert manager.status() == {}
        await send(sqs_server, queue_b, "manager: after delete")
        await asyncio.sleep(2)
        assert b"manager: after delete" not in collector.bodies()
        assert b"manager: old queue" not in collector.bodies()
        assert queue_depth(sqs_server, queue_b) == 1
        assert all("sqs-secret-never-shown" not in str(v) for v in manager.status().values())
    finally:
        await manager.stop()


async def test_manager_reports_unsupported_broker_without_crashing() -> None:
    collector = Collector()
    manager = BridgeManager(collector.handle, collector.dead_letter)
    try:
        await manager.reconcile(
            [{"uid": "src-bad", "type": "pub_sub", "pub_sub": {"type": "nats", "workers": 1}}]
        )
        status = manager.status()["src-bad"]
        assert status["running"] == 0
        assert status["last_error"] == "unsupported pub sub type"
    finally:
        await manager.stop()
