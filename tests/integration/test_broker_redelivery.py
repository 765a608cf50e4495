"""A worker that dies between the Kafka write and the broker ack: the broker redelivers the
message, and it is stored as a duplicate, never delivered twice. One test per broker.

The crash is real (SIGKILL of the worker process) and lands in that window. For RabbitMQ, SQS
and Pub/Sub the worker reaches its broker through an `AckHoldingProxy`: once the broker's
delivery of the test's message has gone through, nothing from the worker reaches the broker,
so its ack is withheld; the test waits for the message in Kafka and kills the worker. For
Kafka no proxy can hold the commit, so the worker runs with
`CONVOY_STREAM_TEST_ONLY_SIGKILL_AFTER_KAFKA_WRITE_OF` set to a marker only this message
carries (`bridge_runner.TEST_CRASH_AFTER_WRITE`) and kills itself once the message is durably
in Kafka, before the commit. The worker is then started again (the proxy forwarding
faithfully, the variable unset); the broker redelivers (RabbitMQ at once when the connection
drops, SQS after the visibility timeout, Pub/Sub after the ack deadline, Kafka from the
group's committed offset) and the test counts what came out.

No message carries an idempotency key and the RabbitMQ one has no `message_id`: only the
broker's own identity of the message can recognise the redelivery (`redelivery_key`).
Each test takes 15-30 s (two worker starts, the broker's redelivery delay).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any, Callable, Iterator

import boto3
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from google.cloud import pubsub_v1

from convoy_stream.bridge_runner import TEST_CRASH_AFTER_WRITE
from tests.conftest import ADMIN_TOKEN, Api
from tests.support.ack_holding_proxy import AckHoldingProxy
from tests.support.brokers import amqp_publish_raw
from tests.support.workers import Worker, all_committed, eventually, read_to_end

GCP_PROJECT = "convoy-stream-redelivery"


@pytest.fixture(scope="module")
def worker(kafka_broker: Any, pubsub_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """Not started: each test starts it with the crash marker, then again without."""
    w = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("redelivery-worker"), "cs-redeliver-" + secrets.token_hex(3),
               ADMIN_TOKEN, env={"PUBSUB_EMULATOR_HOST": pubsub_emulator})
    try:
        yield w
    finally:
        w.stop()


def crash_once_and_recover(worker: Worker, pub_sub: dict[str, Any], publish: Callable[[bytes], None], *,
                           marker: str, proxy: AckHoldingProxy | None = None) -> None:
    """Start a worker, publish the message, kill the worker once the message is in Kafka and
    before the broker has its ack, restart the worker; then check: one event and one duplicate,
    exactly one delivery (one delivery uid).

    With a `proxy` (the broker's address in `pub_sub` or the worker's env is the proxy's) the
    ack is withheld on the wire and the test kills the worker with SIGKILL; without one, the
    worker kills itself at that point (`TEST_CRASH_AFTER_WRITE`)."""
    if proxy is None:
        worker.env[TEST_CRASH_AFTER_WRITE] = marker
    worker.start().wait_healthy()
    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    data = admin.post("/api/v1/projects", json={"name": "redelivery", "type": "outgoing"}).json()["data"]
    api = Api(worker.url, data["api_key"]["key"], data["project"]["uid"])
    endpoint = api.post("/endpoints", {"name": "e", "url": "https://example.com/r"}).json()["data"]["uid"]
    created = api.post("/sources", {"name": f"r-{pub_sub['type']}", "type": "pub_sub", "pub_sub": {"workers": 1, **pub_sub}})
    assert created.status_code == 201, created.text
    source = created.json()["data"]["uid"]

    publish(json.dumps({"endpoint_id": endpoint, "event_type": "redelivered", "data": {"marker": marker}}).encode())
    ingest = f"{worker.app_id}-ingest"
    assert worker.process is not None
    if proxy is None:
        eventually(lambda: worker.process.poll() is not None, timeout=60)  # type: ignore[union-attr]
        assert worker.process.returncode == -9, worker.log_tail()
        del worker.env[TEST_CRASH_AFTER_WRITE]
    else:
        eventually(lambda: [r for r in read_to_end(worker.bootstrap, ingest) if marker in json.dumps(r)], timeout=60)
        assert proxy.holding.is_set() and worker.process.poll() is None
        worker.kill()  # SIGKILL: the ack it sent is still in the proxy
        proxy.release()
    # it died after the write: the ingest record is in Kafka
    assert [r for r in read_to_end(worker.bootstrap, ingest) if marker in json.dumps(r)], "killed before the Kafka write"
    worker.start().wait_healthy()

    def events_of_source() -> list[dict[str, Any]]:
        return api.get("/events", params={"sourceId": source}).json()["data"]["content"]
    eventually(lambda: len(events_of_source()) >= 2 or None, timeout=90)
    events = events_of_source()
    assert sorted(e["is_duplicate_event"] for e in events) == [False, True], events
    assert all(e["data"] == {"marker": marker} for e in events)
    all_committed(worker.bootstrap, worker.app_id, "ingest", timeout=60)  # both copies processed, deliveries written
    deliveries = [r for r in read_to_end(worker.bootstrap, f"{worker.app_id}-deliveries") if marker in json.dumps(r.get("data"))]
    # one delivery: the killed worker's pipeline may have emitted it before the crash and the
    # restarted one again (at-least-once, README), always as the same record (same uid)
    [original] = [e for e in events if not e["is_duplicate_event"]]
    assert deliveries and {(d["uid"], d["event_id"]) for d in deliveries} == {(deliveries[0]["uid"], original["uid"])}, deliveries
    worker.stop()


def new_marker() -> str:
    return "crash" + secrets.token_hex(12)  # letters and digits: unencoded on every broker's wire


def test_rabbitmq_message_without_message_id(worker: Worker, rabbitmq: Any) -> None:
    queue = f"redeliver-{secrets.token_hex(4)}"
    marker = new_marker()
    proxy = AckHoldingProxy(rabbitmq.host, rabbitmq.port, marker.encode())
    config = {"type": "amqp", "amqp": {"schema": "amqp", "host": "127.0.0.1", "port": str(proxy.port), "vhost": "",
                                       "queue": queue, "auth": {"user": rabbitmq.user, "password": rabbitmq.password},
                                       "bindExchange": {"exchange": "", "routingKey": ""}}}

    def publish(body: bytes) -> None:
        # a bare AMQP client: no message_id property, as most non-Python publishers send
        eventually(lambda: _queue_exists(rabbitmq, queue), timeout=30)
        amqp_publish_raw(rabbitmq, "", queue, body, headers={"tenant": "t-1"})

    with proxy:
        crash_once_and_recover(worker, config, publish, marker=marker, proxy=proxy)
    assert _queue_depth(rabbitmq, queue) == 0  # acked after the redelivery


def test_sqs(worker: Worker, sqs_server: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test")
    queue = f"redeliver-{secrets.token_hex(4)}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    marker = new_marker()
    host, port = sqs_server.removeprefix("http://").split(":")
    with AckHoldingProxy(host, int(port), marker.encode()) as proxy:
        config = {"type": "sqs", "sqs": {"access_key_id": "test", "secret_key": "test", "default_region": "us-east-1",
                                         "queue_name": queue, "endpoint": f"http://{proxy.address}"}}
        crash_once_and_recover(worker, config, lambda body: sqs.send_message(QueueUrl=url, MessageBody=body.decode()) and None,
                               marker=marker, proxy=proxy)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_pubsub(worker: Worker, pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    suffix = secrets.token_hex(4)
    topic = publisher.topic_path(GCP_PROJECT, f"t-{suffix}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscriber.subscription_path(GCP_PROJECT, f"s-{suffix}"),
                                            "topic": topic, "ack_deadline_seconds": 10})
    config = {"type": "google", "google": {"project_id": GCP_PROJECT, "subscription_id": f"s-{suffix}",
                                           "service_account": base64.b64encode(b'{"type": "service_account"}').decode()}}
    marker = new_marker()
    host, port = pubsub_emulator.split(":")
    with AckHoldingProxy(host, int(port), marker.encode()) as proxy:
        worker.env["PUBSUB_EMULATOR_HOST"] = proxy.address  # the worker's gRPC channel goes through the proxy
        try:
            crash_once_and_recover(worker, config, lambda body: publisher.publish(topic, body).result(timeout=10) and None,
                                   marker=marker, proxy=proxy)
        finally:
            worker.env["PUBSUB_EMULATOR_HOST"] = pubsub_emulator


def test_kafka(worker: Worker, kafka_broker: Any) -> None:
    topic = f"redeliver-{secrets.token_hex(4)}"
    config = {"type": "kafka", "kafka": {"brokers": [], "topic_name": topic}}

    def publish(body: bytes) -> None:
        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(topic, body)  # no key: the id is topic/partition/offset
            finally:
                await producer.stop()
        asyncio.run(produce())

    # no proxy can hold a Kafka commit (clients connect to the brokers the cluster advertises):
    # the worker kills itself between the write and the commit
    crash_once_and_recover(worker, config, publish, marker=new_marker())


def _queue_exists(node: Any, queue: str) -> bool:
    return _queue_depth(node, queue) is not None


def _queue_depth(node: Any, queue: str) -> int | None:
    """Messages ready or unacked in `queue` (None when it does not exist yet)."""
    import aio_pika

    async def depth() -> int | None:
        connection = await aio_pika.connect(node.url, timeout=10)
        async with connection:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return None
            return declared.declaration_result.message_count
    return asyncio.run(depth())
