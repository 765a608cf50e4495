"""One bridge measurement in a process of its own (run by scenario_bridges.py).

    python bench/bridge_probe.py '<json config>'

modes:
  fill    put `count` messages on a fresh topic/queue/subscription
  bridge  drain it with the product's bridge loop: `bridges.run_consumer` + the broker's
          `Consumer`, with the worker's own handle (`convoy_stream.bridge_runner.Bridges.handle`:
          validate, check the endpoint in the config view, build the `IngestRecord`, await
          `Publisher.publish` with acks=all) before the loop acks it at the broker
  bare    drain it with the broker's own client doing receive + ack alone, in the same batch
          sizes, nothing else
  relay   the least any bridge must do: `bare`, plus each message's body produced to the
          ingest topic (aiokafka, acks=all, idempotent, as the product's publisher) before
          the batch is acked
  delete  remove the topic/queue/subscription

Every mode runs on uvloop, the event loop of the worker and of `convoy-stream bridge`.

Prints one line `PROBE_JSON {...}` with the rate from the first received batch to the last ack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fixtures import event_body  # noqa: E402

BATCH = 100


def source_for(cfg: dict[str, Any]) -> dict[str, Any]:
    broker, name = cfg["broker"], cfg["name"]
    pub_sub: dict[str, Any] = {"type": broker, "workers": 1}
    if broker == "kafka":
        pub_sub["kafka"] = {"brokers": [cfg["bootstrap"]], "topic_name": name, "consumer_group_id": f"{name}-bridge"}
    elif broker == "sqs":
        pub_sub["sqs"] = {"access_key_id": "bench", "secret_key": "bench", "default_region": "us-east-1",
                          "queue_name": name, "endpoint": cfg["sqs_endpoint"]}
    elif broker == "google":
        pub_sub["google"] = {"project_id": cfg["pubsub_project"], "subscription_id": name, "service_account": ""}
    elif broker == "amqp":
        amqp = cfg["amqp"]
        pub_sub["amqp"] = {"schema": "amqp", "host": amqp["host"], "port": str(amqp["port"]), "vhost": "",
                           "queue": name, "auth": {"user": amqp["user"], "password": amqp["password"]}}
    return {"uid": f"src-{name}", "project_id": cfg["project_id"], "type": "pub_sub", "is_disabled": False,
            "pub_sub": pub_sub}


def _sqs_client(cfg: dict[str, Any]) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client("sqs", region_name="us-east-1", endpoint_url=cfg["sqs_endpoint"],
                                       aws_access_key_id="bench", aws_secret_access_key="bench")


def _pubsub_paths(cfg: dict[str, Any]) -> tuple[str, str]:
    project, name = cfg["pubsub_project"], cfg["name"]
    return f"projects/{project}/topics/{name}", f"projects/{project}/subscriptions/{name}"


def _pubsub_clients() -> tuple[Any, Any]:
    import grpc
    from google.auth.credentials import AnonymousCredentials
    from google.pubsub_v1 import PublisherAsyncClient, SubscriberAsyncClient
    from google.pubsub_v1.services.publisher.transports.grpc_asyncio import PublisherGrpcAsyncIOTransport
    from google.pubsub_v1.services.subscriber.transports.grpc_asyncio import SubscriberGrpcAsyncIOTransport

    host = os.environ["PUBSUB_EMULATOR_HOST"]
    pub = PublisherAsyncClient(transport=PublisherGrpcAsyncIOTransport(
        channel=grpc.aio.insecure_channel(host), credentials=AnonymousCredentials()))
    sub = SubscriberAsyncClient(transport=SubscriberGrpcAsyncIOTransport(
        channel=grpc.aio.insecure_channel(host), credentials=AnonymousCredentials()))
    return pub, sub


async def _amqp_connect(cfg: dict[str, Any]) -> Any:
    import aio_pika

    amqp = cfg["amqp"]
    return await aio_pika.connect(host=amqp["host"], port=int(amqp["port"]), login=amqp["user"],
                                  password=amqp["password"], timeout=10)


# ----------------------------------------------------------------------------- fill / delete


def _bodies(cfg: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(event_body(cfg["endpoint_id"], i)) for i in range(cfg["count"])]


async def fill(cfg: dict[str, Any]) -> dict[str, Any]:
    broker, name, bodies = cfg["broker"], cfg["name"], _bodies(cfg)
    start = time.monotonic()
    if broker == "kafka":
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=cfg["bootstrap"])
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], acks="all", linger_ms=10)
        await producer.start()
        try:
            futures = [await producer.send(name, body, key=f"msg-{i}".encode()) for i, body in enumerate(bodies)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
    elif broker == "sqs":
        async with _sqs_client(cfg) as client:
            url = (await client.create_queue(QueueName=name))["QueueUrl"]
            chunks = [bodies[i:i + 10] for i in range(0, len(bodies), 10)]
            for j in range(0, len(chunks), 8):
                await asyncio.gather(*(client.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(k), "MessageBody": b.decode()} for k, b in enumerate(chunk)]) for chunk in chunks[j:j + 8]))
    elif broker == "google":
        from google.pubsub_v1 import PubsubMessage

        pub, sub = _pubsub_clients()
        topic, subscription = _pubsub_paths(cfg)
        await pub.create_topic(name=topic)
        await sub.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        for i in range(0, len(bodies), 500):
            await pub.publish(topic=topic, messages=[PubsubMessage(data=b) for b in bodies[i:i + 500]])
        await pub.transport.close()
        await sub.transport.close()
    elif broker == "amqp":
        import aio_pika

        connection = await _amqp_connect(cfg)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(name, durable=True, auto_delete=False)
            for i in range(0, len(bodies), 500):
                await asyncio.gather(*(channel.default_exchange.publish(
                    aio_pika.Message(b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=f"msg-{i + k}"),
                    routing_key=name) for k, b in enumerate(bodies[i:i + 500])))
        finally:
            await connection.close()
    return {"filled": len(bodies), "seconds": time.monotonic() - start}


async def delete(cfg: dict[str, Any]) -> dict[str, Any]:
    broker, name = cfg["broker"], cfg["name"]
    if broker == "kafka":
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=cfg["bootstrap"])
        await admin.start()
        try:
            await admin.delete_topics([name])
        finally:
            await admin.close()
    elif broker == "sqs":
        async with _sqs_client(cfg) as client:
            url = (await client.get_queue_url(QueueName=name))["QueueUrl"]
            await client.delete_queue(QueueUrl=url)
    elif broker == "google":
        pub, sub = _pubsub_clients()
        topic, subscription = _pubsub_paths(cfg)
        await sub.delete_subscription(subscription=subscription)
        await pub.delete_topic(topic=topic)
        await pub.transport.close()
        await sub.transport.close()
    elif broker == "amqp":
        connection = await _amqp_connect(cfg)
        try:
            channel = await connection.channel()
            await channel.queue_delete(name)
        finally:
            await connection.close()
    return {"deleted": name}


# ----------------------------------------------------------------------------- the bridge


async def bridge(cfg: dict[str, Any]) -> dict[str, Any]:
    from bridges import WorkerStats, consumer_for, run_consumer
    from convoy_stream.publisher import Publisher

    count = cfg["count"]
    source = source_for(cfg)
    publisher = Publisher(cfg["bootstrap"], ingest_topic=cfg["ingest_topic"], dead_letter_topic=cfg["ingest_topic"] + "-dead",
                          partitions=8, timeout=10.0)
    await publisher.start()
    # The worker's own handle (convoy_stream/bridge_runner.py): validation, the endpoint
    # check against the config view, the record, `Publisher.publish`.
    from convoy_stream.bridge_runner import Bridges
    from tables.config import ConfigStore

    config = ConfigStore(cfg["bootstrap"], cfg["config_topic"])
    await config.start(publisher.producer)
    await asyncio.wait_for(config.ready.wait(), 30)
    product = Bridges(config, publisher)
    handle, dead_letter, which = product.handle, product.dead_letter, "convoy_stream.bridge_runner.Bridges.handle"
    consumer = consumer_for(source, batch_size=BATCH, kafka_bootstrap=cfg["bootstrap"])
    stats = WorkerStats()
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(source, consumer, handle, dead_letter, batch_size=BATCH, stop=stop,
                                            stats=stats))
    first = cpu0 = 0.0
    deadline = time.monotonic() + cfg.get("timeout", 300)
    try:
        while stats.acked < count:
            if task.done():
                raise RuntimeError(f"bridge loop ended: {task.exception()!r}")
            if time.monotonic() > deadline:
                break
            if not first and stats.received:
                first, cpu0 = time.monotonic(), time.process_time()
            await asyncio.sleep(0.005)
        last, cpu1 = time.monotonic(), time.process_time()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        await config.stop()
        await publisher.stop()
    return _result(count, stats.acked, first, last, cpu1 - cpu0, errors=stats.errors, rejected=stats.rejected,
                   dead=stats.dead_lettered, last_error=stats.last_error, handle=which)


def _result(count: int, acked: int, first: float, last: float, cpu: float, **extra: Any) -> dict[str, Any]:
    span = last - first if first else None
    return {"count": count, "acked": acked, "seconds": span, "rate": acked / span if span else None,
            "cpu_percent": round(100 * cpu / span, 1) if span else None, **extra}


# ----------------------------------------------------------------------------- bare clients


async def bare(cfg: dict[str, Any]) -> dict[str, Any]:
    broker, name, count = cfg["broker"], cfg["name"], cfg["count"]
    acked = 0
    producer = None
    if cfg["mode"] == "relay":
        if broker not in ("kafka", "google"):
            raise ValueError("relay mode is measured for the batch-pulling brokers, kafka and google")
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=cfg["bootstrap"], acks="all", linger_ms=0, enable_idempotence=True)
        await producer.start()

    async def forward(bodies: list[bytes]) -> None:
        """relay mode: every body durable in Kafka before the batch is acked."""
        if producer is not None:
            await asyncio.gather(*[await producer.send(cfg["ingest_topic"], body) for body in bodies])
    first = cpu0 = 0.0
    deadline = time.monotonic() + cfg.get("timeout", 300)

    def started() -> None:
        nonlocal first, cpu0
        if not first:
            first, cpu0 = time.monotonic(), time.process_time()

    if broker == "kafka":
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(name, bootstrap_servers=cfg["bootstrap"], group_id=f"{name}-bare",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed", max_poll_records=BATCH)
        await consumer.start()
        try:
            while acked < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
                if not batches:
                    continue
                started()
                await forward([r.value for records in batches.values() for r in records])
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
                acked += sum(len(r) for r in batches.values())
        finally:
            await consumer.stop()
    elif broker == "sqs":
        async with _sqs_client(cfg) as client:
            url = (await client.get_queue_url(QueueName=name))["QueueUrl"]
            while acked < count and time.monotonic() < deadline:
                response = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                                        MessageAttributeNames=["All"])
                messages = response.get("Messages", [])
                if not messages:
                    continue
                started()
                await forward([m["Body"].encode() for m in messages])
                await client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                acked += len(messages)
    elif broker == "google":
        _, sub = _pubsub_clients()
        _, subscription = _pubsub_paths(cfg)
        try:
            while acked < count and time.monotonic() < deadline:
                response = await sub.pull(request={"subscription": subscription, "max_messages": BATCH}, timeout=5)
                if not response.received_messages:
                    await asyncio.sleep(0.2)  # what the bridge does on an empty emulator pull
                    continue
                started()
                await forward([m.message.data for m in response.received_messages])
                await sub.acknowledge(request={"subscription": subscription,
                                               "ack_ids": [m.ack_id for m in response.received_messages]}, timeout=30)
                acked += len(response.received_messages)
        finally:
            await sub.transport.close()
    elif broker == "amqp":
        connection = await _amqp_connect(cfg)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=BATCH)
            queue = await channel.declare_queue(name, durable=True, auto_delete=False)
            async with queue.iterator() as messages:
                async for message in messages:
                    started()
                    await message.ack()
                    acked += 1
                    if acked >= count or time.monotonic() > deadline:
                        break
        finally:
            await connection.close()
    if producer is not None:
        await producer.stop()
    return _result(count, acked, first, time.monotonic(), time.process_time() - cpu0)


def main() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    cfg = json.loads(sys.argv[1])
    mode = cfg["mode"]
    action = {"fill": fill, "delete": delete, "bridge": bridge, "bare": bare, "relay": bare}[mode]
    profile_to = os.environ.get("BRIDGE_PROFILE")  # a path prefix: cProfile the bridge runs there
    if profile_to and mode == "bridge":
        import cProfile

        with cProfile.Profile() as profile:
            result = asyncio.run(action(cfg))
        profile.dump_stats(f"{profile_to}-{cfg['broker']}.prof")
    else:
        result = asyncio.run(action(cfg))
    print("PROBE_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
