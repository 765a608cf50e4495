"""RabbitMQ bridge against the machine's RabbitMQ, messages published with aio-pika."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from typing import Any

import aio_pika
import pytest

from bridges import BridgeManager
from tests.support.brokers import SBIN_PATH, RabbitMQ, amqp_publish_raw
from tests.support.collector import INVALID_REASON, Collector, running

pytestmark = pytest.mark.integration


def source_for(
    node: RabbitMQ,
    queue: str,
    *,
    uid: str | None = None,
    workers: int = 1,
    exchange: str = "",
    routing_key: str = "",
    dlx: str = "",
    password: str | None = None,
) -> dict[str, Any]:
    return {
        "uid": uid or f"src-{uuid.uuid4().hex[:8]}",
        "project_id": "proj-amqp",
        "type": "pub_sub",
        "is_disabled": False,
        "pub_sub": {
            "type": "amqp",
            "workers": workers,
            "amqp": {
                "schema": "amqp",
                "host": node.host,
                "port": str(node.port),
                "vhost": "",
                "queue": queue,
                "auth": {"user": node.user, "password": password or node.password},
                "bindExchange": {"exchange": exchange, "routingKey": routing_key},
                "deadLetterExchange": dlx,
            },
        },
    }


def persistent(body: bytes, **kwargs: Any) -> aio_pika.Message:
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **kwargs)


async def queue_state(node: RabbitMQ, queue: str) -> int:
    """Ready messages in the queue (un-acked ones of a closed consumer are back to ready)."""
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


def queue_arguments(queue: str) -> str:
    ctl = shutil.which("rabbitmqctl", path=SBIN_PATH)
    assert ctl
    out = subprocess.run(
        [ctl, "list_queues", "-q", "name", "arguments"], capture_output=True, text=True, timeout=30
    ).stdout
    return next((line for line in out.splitlines() if line.startswith(queue)), "")


async def test_amqp_bodies_headers_ids_and_outcomes(rabbitmq: RabbitMQ) -> None:
    queue = f"bridge-{uuid.uuid4().hex[:8]}"
    exchange = f"ex-{uuid.uuid4().hex[:8]}"
    dlx = f"dlx-{uuid.uuid4().hex[:8]}"
    collector = Collector()
    connection = await aio_pika.connect(rabbitmq.url)
    async with connection:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        await channel.declare_exchange(dlx, aio_pika.ExchangeType.FANOUT, durable=True)
        source = source_for(rabbitmq, queue, exchange=exchange, routing_key="orders", dlx=dlx)
        async with running(source, collector) as bridge:
            await bridge.wait_connected()
            # Declared by the bridge: durable, with the dead-letter exchange, bound to `exchange`.
            arguments = queue_arguments(queue)
            assert "x-dead-letter-exchange" in arguments and dlx in arguments, arguments
            await ex.publish(
                persistent(
                    b"hello amqp",
                    message_id="amqp-id-1",
                    headers={"X-Trace-Id": "trace-3", "Count": 42, "Flag": True, "Raw": bytearray(b"\xff\x00")},
                ),
                routing_key="orders",
            )
            # aio-pika always sets a message_id; publish this one bare, as a Go client would.
            await asyncio.to_thread(amqp_publish_raw, rabbitmq, exchange, "orders", b"no message id")
            await ex.publish(persistent(b"invalid: not json", message_id="amqp-id-2"), routing_key="orders")
            await ex.publish(persistent(b"flaky: kafka was down", message_id="amqp-id-3"), routing_key="orders")
            await collector.wait_handled(b"hello amqp", b"no message id", b"flaky: kafka was down")
            await collector.wait_for(lambda: len(collector.dead) == 1, what="dead letter")

    plain = collector.message(b"hello amqp")
    assert plain.message_id == "amqp-id-1"
    assert plain.headers == {"x-trace-id": "trace-3", "count": "42", "flag": "true", "raw": "/wA="}
    fallback = collector.message(b"no message id")
    ex_name, routing_key, tag = fallback.message_id.split("/")
    assert (ex_name, routing_key) == (exchange, "orders") and int(tag) >= 1
    _, dead, reason = collector.dead[0]
    assert (dead.body, dead.message_id, reason) == (b"invalid: not json", "amqp-id-2", INVALID_REASON)
    assert collector.attempts[b"flaky: kafka was down"] == 3  # nacked with requeue, not dead-lettered
    # The consumer is gone and nothing came back to the queue: everything was acked.
    assert await queue_state(rabbitmq, queue) == 0
    assert collector.attempts[b"invalid: not json"] == 1


async def test_amqp_message_in_flight_when_worker_dies_is_delivered_again(rabbitmq: RabbitMQ) -> None:
    queue = f"bridge-{uuid.uuid4().hex[:8]}"
    source = source_for(rabbitmq, queue)
    hanging = Collector()
    async with running(source, hanging) as bridge:
        await bridge.wait_connected()
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                persistent(b"hang: worker dies mid-ingest", message_id="hang-1"), routing_key=queue
            )
        await hanging.wait_for(lambda: hanging.in_handle, what="handler entered")
        await bridge.kill()

    healthy = Collector(hang=False)
    async with running(source, healthy):
        await healthy.wait_handled(b"hang: worker dies mid-ingest", timeout=10)
    assert healthy.message(b"hang: worker dies mid-ingest").message_id == "hang-1"


async def test_amqp_broker_restart_mid_stream_loses_nothing(rabbitmq: RabbitMQ) -> None:
    queue = f"bridge-{uuid.uuid4().hex[:8]}"
    source = source_for(rabbitmq, queue)
    collector = Collector(delay=0.05)  # ~200 messages/s with batches of 10
    before = [f"before-{i}".encode() for i in range(500)]
    after = [f"after-{i}".encode() for i in range(50)]

    async def publish(bodies: list[bytes]) -> None:
        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)
            for body in bodies:
                await channel.default_exchange.publish(
                    persistent(body, message_id=body.decode()), routing_key=queue
                )

    await publish(before)
    async with running(source, collector) as bridge:
        await collector.wait_for(lambda: len(collector.handled) >= 50, what="stream under way")
        collector.paused = True  # the stream stays unfinished until the restart has landed, however slow
        await rabbitmq.restart(down_seconds=1.0)
        assert len(set(collector.bodies())) < len(before), "stream finished before the restart"
        collector.paused = False
        await publish(after)
        await collector.wait_for(
            lambda: set(before + after) <= set(collector.bodies()), timeout=60, what="every message"
        )
        assert bridge.stats.errors >= 1  # it did see the connection drop and reconnect
    assert await queue_state(rabbitmq, queue) == 0
    assert not collector.dead


async def test_amqp_manager_follows_source_config_and_hides_credentials(rabbitmq: RabbitMQ) -> None:
    queue_a = f"bridge-{uuid.uuid4().hex[:8]}"
    queue_b = f"bridge-{uuid.uuid4().hex[:8]}"
    collector = Collector()
    manager = BridgeManager(collector.handle, collector.dead_letter)
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        for queue in (queue_a, queue_b):
            await channel.declare_queue(queue, durable=True)

        async def send(queue: str, body: bytes) -> None:
            await channel.default_exchange.publish(persistent(body), routing_key=queue)

        source = source_for(rabbitmq, queue_a, uid="src-amqp-managed", workers=2)
        await manager.reconcile([source])
        await send(queue_a, b"manager: first")
        await collector.wait_handled(b"manager: first", timeout=10)
        first = manager.status()["src-amqp-managed"]
        assert (first["broker"], first["workers"], first["running"]) == ("amqp", 2, 2)

        # A change Convoy would not notice (only the queue changes here) restarts the bridge.
        await manager.reconcile([source_for(rabbitmq, queue_b, uid="src-amqp-managed")])
        await send(queue_b, b"manager: on b")
        await collector.wait_handled(b"manager: on b", timeout=10)
        assert manager.status()["src-amqp-managed"]["started_at"] != first["started_at"]

        # Wrong password: the bridge keeps retrying, the status says why, without the password.
        bad = source_for(rabbitmq, queue_b, uid="src-amqp-managed", password="wrong-Pa55word-xyz")
        await manager.reconcile([bad])
        await collector.wait_for(
            lambda: bool(manager.status()["src-amqp-managed"]["last_error"]), timeout=10, what="error"
        )
        status = manager.status()["src-amqp-managed"]
        assert status["connected"] == 0
        assert "wrong-Pa55word-xyz" not in repr(status)

        # Deleted: stopped; its queue keeps the message.
        await manager.reconcile([])
        assert manager.status() == {}
        await send(queue_b, b"manager: after delete")
        await asyncio.sleep(1.5)
        assert b"manager: after delete" not in collector.bodies()
        assert await queue_state(rabbitmq, queue_b) == 1
    finally:
        await manager.stop()
        await connection.close()
