"""Broker sources end to end: publish with each broker's own client, find the event by its
broker message id, see its delivery records, and find invalid messages in the dead letters."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any, Callable, Iterator

import aio_pika
import boto3
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from google.cloud import pubsub_v1

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, all_committed, eventually

GCP_PROJECT = "convoy-stream-e2e"


@pytest.fixture(scope="module")
def bridge_worker(kafka_broker: Any, pubsub_emulator: str, sqs_server: str, rabbitmq: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("bridge-worker"), "cs-brokers-" + secrets.token_hex(3),
               ADMIN_TOKEN, env={"PUBSUB_EMULATOR_HOST": pubsub_emulator, "CONVOY_STREAM_RETENTION_SWEEP_INTERVAL": "1"}).start()
    try:
        yield w.wait_healthy()
    finally:
        w.stop()


@pytest.fixture(scope="module")
def project(bridge_worker: Worker) -> Api:
    admin = httpx.Client(base_url=bridge_worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    data = admin.post("/api/v1/projects", json={"name": "brokers", "type": "outgoing"}).json()["data"]
    return Api(bridge_worker.url, data["api_key"]["key"], data["project"]["uid"])


def endpoint(api: Api, owner: str) -> dict[str, Any]:
    response = api.post("/endpoints", {"name": f"e-{secrets.token_hex(2)}", "url": "https://example.com/b", "owner_id": owner})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def create_source(api: Api, pub_sub: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/sources", {"name": f"{pub_sub['type']}-{secrets.token_hex(2)}", "type": "pub_sub",
                                     "pub_sub": {"workers": 1, **pub_sub}})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def messages(single_endpoint: str, owner: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """(broker message id, body, broker headers): single, fanout via custom_headers,
    broadcast via a broker header, and one that can never be valid."""
    tag = secrets.token_hex(4)
    return [
        (f"single-{tag}", json.dumps({"endpoint_id": single_endpoint, "event_type": "s", "data": {"k": "single"}}).encode(), {}),
        (f"fanout-{tag}", json.dumps({"owner_id": owner, "event_type": "f", "data": {"k": "fanout"},
                                      "custom_headers": {"x-convoy-message-type": "fanout"}}).encode(), {}),
        (f"broadcast-{tag}", json.dumps({"event_type": "b", "data": {"k": "broadcast"}}).encode(), {"x-convoy-message-type": "broadcast"}),
        (f"invalid-{tag}", b"this is not json", {}),
    ]


def check_outcome(api: Api, sent: list[tuple[str, bytes, dict[str, str]]], endpoints: dict[str, list[str]],
                  id_of: Callable[[str], str]) -> None:
    """Each valid message is an event found by its broker message id, with the expected deliveries."""
    for name, _, _ in sent[:3]:
        broker_id = id_of(name)
        events = eventually(lambda: api.get("/events", params={"brokerMessageId": broker_id}).json()["data"]["content"], timeout=30)
        [event] = events
        assert event["broker_message_id"] == broker_id and event["headers"]["x-broker-message-id"] == [broker_id]
        deliveries = eventually(lambda: api.get("/eventdeliveries", params={"brokerMessageId": broker_id}).json()["data"]["content"])
        kind = name.split("-")[0]
        assert sorted(d["endpoint_id"] for d in deliveries) == sorted(endpoints[kind]), (kind, deliveries)
        assert all(d["headers"]["x-broker-message-id"] == [broker_id] for d in deliveries)  # Convoy's header map
    invalid_id = id_of(sent[3][0])

    def dead() -> list[dict[str, Any]]:
        return [d for d in api.get("/dead-letters").json()["data"]["content"] if d["broker_message_id"] == invalid_id]
    [letter] = eventually(dead, timeout=30)
    assert letter["original"] == "this is not json" and "not valid JSON" in letter["reason"]


def setup_endpoints(api: Api) -> tuple[dict[str, list[str]], str, str]:
    owner = "owner-" + secrets.token_hex(3)
    single, fan1, fan2 = endpoint(api, "solo-" + secrets.token_hex(2)), endpoint(api, owner), endpoint(api, owner)
    everyone = [e["uid"] for e in api.get("/endpoints", params={"perPage": 100}).json()["data"]["content"]]
    return {"single": [single["uid"]], "fanout": [fan1["uid"], fan2["uid"]], "broadcast": everyone}, single["uid"], owner


def test_sqs_source(project: Api, sqs_server: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    queue = f"q-{secrets.token_hex(4)}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    expected, single, owner = setup_endpoints(project)
    create_source(project, {"type": "sqs", "sqs": {"access_key_id": "test", "secret_key": "test", "default_region": "us-east-1",
                                                    "queue_name": queue, "endpoint": sqs_server}})
    sent = messages(single, owner)
    ids: dict[str, str] = {}
    for name, body, headers in sent:
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in headers.items()}
        ids[name] = sqs.send_message(QueueUrl=url, MessageBody=body.decode(), MessageAttributes=attributes)["MessageId"]
    # broadcast goes to every endpoint, which by now includes all of this project's
    expected["broadcast"] = [e["uid"] for e in project.get("/endpoints", params={"perPage": 100}).json()["data"]["content"]]
    check_outcome(project, sent, expected, ids.__getitem__)
    # everything was acknowledged at the source: the queue drains
    eventually(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"] == "0"
               and sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0")


def test_pubsub_source(project: Api, pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    suffix = secrets.token_hex(4)
    topic = publisher.topic_path(GCP_PROJECT, f"t-{suffix}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscriber.subscription_path(GCP_PROJECT, f"s-{suffix}"), topic=topic)
    expected, single, owner = setup_endpoints(project)
    create_source(project, {"type": "google", "google": {"project_id": GCP_PROJECT, "subscription_id": f"s-{suffix}",
                                                         "service_account": base64.b64encode(b'{"type": "service_account"}').decode()}})
    sent = messages(single, owner)
    ids = {name: publisher.publish(topic, body, **headers).result(timeout=10) for name, body, headers in sent}
    expected["broadcast"] = [e["uid"] for e in project.get("/endpoints", params={"perPage": 100}).json()["data"]["content"]]
    check_outcome(project, sent, expected, ids.__getitem__)


def test_rabbitmq_source(project: Api, rabbitmq: Any) -> None:
    queue = f"q-{secrets.token_hex(4)}"
    expected, single, owner = setup_endpoints(project)
    create_source(project, {"type": "amqp", "amqp": {"schema": "amqp", "host": "127.0.0.1", "port": "5672", "vhost": "", "queue": queue,
                                                     "auth": {"user": "guest", "password": "guest"},
                                                     "bindExchange": {"exchange": "", "routingKey": ""}}})
    sent = messages(single, owner)

    async def publish() -> None:
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)
            for name, body, headers in sent:
                await channel.default_exchange.publish(aio_pika.Message(body, message_id=name, headers=headers), routing_key=queue)
    # the bridge declares the queue when the source is created; publishing before that is fine too
    asyncio.run(publish())
    expected["broadcast"] = [e["uid"] for e in project.get("/endpoints", params={"perPage": 100}).json()["data"]["content"]]
    check_outcome(project, sent, expected, lambda name: name)


def test_kafka_source_on_the_own_cluster(project: Api, kafka_broker: Any) -> None:
    topic = f"orders-{secrets.token_hex(4)}"
    expected, single, owner = setup_endpoints(project)
    create_source(project, {"type": "kafka", "kafka": {"brokers": [], "topic_name": topic}})
    sent = messages(single, owner)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
        await producer.start()
        try:
            for name, body, headers in sent:
                await producer.send_and_wait(topic, body, key=name.encode(), headers=[(k, v.encode()) for k, v in headers.items()])
        finally:
            await producer.stop()
    asyncio.run(produce())
    expected["broadcast"] = [e["uid"] for e in project.get("/endpoints", params={"perPage": 100}).json()["data"]["content"]]
    check_outcome(project, sent, expected, lambda name: name)


def test_dead_letters_past_retention_disappear(bridge_worker: Worker, sqs_server: str) -> None:
    """Constant bad input must not grow storage forever: dead letters follow the project's retention."""
    admin = httpx.Client(base_url=bridge_worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    data = admin.post("/api/v1/projects", json={"name": "short-lived", "type": "outgoing",
                                                "config": {"retention_policy": {"policy": "3s"}}}).json()["data"]
    api = Api(bridge_worker.url, data["api_key"]["key"], data["project"]["uid"])
    sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    queue = f"q-{secrets.token_hex(4)}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    create_source(api, {"type": "sqs", "sqs": {"access_key_id": "test", "secret_key": "test", "default_region": "us-east-1",
                                                "queue_name": queue, "endpoint": sqs_server}})
    message_id = sqs.send_message(QueueUrl=url, MessageBody="not json either")["MessageId"]

    def letters() -> list[dict[str, Any]]:
        return [d for d in api.get("/dead-letters").json()["data"]["content"] if d["broker_message_id"] == message_id]
    eventually(letters, timeout=30)
    eventually(lambda: letters() == [], timeout=30)


def test_a_body_function_lets_a_source_take_any_payload(project: Api, kafka_broker: Any) -> None:
    """Producers publish their own shape; the source's JavaScript maps it onto Convoy's message."""
    topic = f"shop-{secrets.token_hex(4)}"
    target = endpoint(project, "solo-" + secrets.token_hex(2))["uid"]
    script = ("function transform(p) { return {endpoint_id: '%s', event_type: 'order.' + p.status, "
              "data: {order: p.id}}; }" % target)
    response = project.post("/sources", {"name": f"shop-{secrets.token_hex(2)}", "type": "pub_sub", "body_function": script,
                                         "pub_sub": {"workers": 1, "type": "kafka", "kafka": {"brokers": [], "topic_name": topic}}})
    assert response.status_code == 201, response.text
    refused = project.post("/sources", {"name": "broken", "type": "pub_sub", "body_function": "function transform(",
                                        "pub_sub": {"workers": 1, "type": "kafka", "kafka": {"brokers": [], "topic_name": topic}}})
    assert refused.status_code == 400 and "body_function" in refused.json()["message"]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, json.dumps({"id": "o-1", "status": "paid", "extra": True}).encode(), key=b"shop-1")
        finally:
            await producer.stop()
    asyncio.run(produce())
    [event] = eventually(lambda: project.get("/events", params={"brokerMessageId": "shop-1"}).json()["data"]["content"], timeout=30)
    assert event["event_type"] == "order.paid" and event["data"] == {"order": "o-1"}
    [delivery] = eventually(lambda: project.get("/eventdeliveries", params={"eventId": event["uid"]}).json()["data"]["content"])
    assert delivery["endpoint_id"] == target


def test_test_function_shows_the_transformed_payload_and_console(project: Api) -> None:
    script = "function transform(p) { console.log('status', p.status); return {event_type: 'o.' + p.status, data: p}; }"
    answer = project.post("/sources/test_function", {"payload": {"status": "paid"}, "function": script, "type": "body"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"payload": {"event_type": "o.paid", "data": {"status": "paid"}}, "log": ["status paid"]}
    # a body function must produce a valid broker message: the check every bridge applies
    wrong = project.post("/sources/test_function", {"payload": {"status": "paid"}, "type": "body",
                                                    "function": "function transform(p) { return {kind: p.status}; }"})
    assert wrong.status_code == 400 and 'unknown field "kind"' in wrong.json()["message"]
    headers = project.post("/sources/test_function", {"payload": {"x-a": "1"}, "type": "header",
                                                      "function": "function transform(h) { return {n: 1}; }"})
    assert headers.status_code == 400 and "string values" in headers.json()["message"]


def test_a_message_too_large_for_an_event_is_dead_lettered_and_the_queue_moves_on(project: Api, rabbitmq: Any,
                                                                                 bridge_worker: Worker) -> None:
    """RabbitMQ takes messages far past Kafka's record size: such a message can never become an
    event, so it is dead-lettered (its start kept) instead of being redelivered forever."""
    queue = f"q-{secrets.token_hex(4)}"
    target = endpoint(project, "solo-" + secrets.token_hex(2))["uid"]
    create_source(project, {"type": "amqp", "amqp": {"schema": "amqp", "host": "127.0.0.1", "port": "5672", "vhost": "", "queue": queue,
                                                     "auth": {"user": "guest", "password": "guest"},
                                                     "bindExchange": {"exchange": "", "routingKey": ""}}})
    tag = secrets.token_hex(4)
    big = json.dumps({"endpoint_id": target, "event_type": "big", "data": {"blob": "z" * (1200 * 1024)}}).encode()
    small = json.dumps({"endpoint_id": target, "event_type": "small", "data": {"n": 1}}).encode()

    async def publish() -> None:
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True)
            for name, body in ((f"big-{tag}", big), (f"small-{tag}", small)):
                await channel.default_exchange.publish(aio_pika.Message(body, message_id=name), routing_key=queue)
    asyncio.run(publish())

    def dead() -> list[dict[str, Any]]:
        return [d for d in project.get("/dead-letters").json()["data"]["content"] if d["broker_message_id"] == f"big-{tag}"]
    [letter] = eventually(dead, timeout=30)
    assert "too large" in letter["reason"] and letter["original_truncated"] is True
    assert big.decode().startswith(letter["original"]) and len(letter["original"]) == 64 * 1024
    [event] = eventually(lambda: project.get("/events", params={"brokerMessageId": f"small-{tag}"}).json()["data"]["content"], timeout=30)
    assert event["event_type"] == "small"
    all_committed(bridge_worker.bootstrap, bridge_worker.app_id, "dead-letters")
