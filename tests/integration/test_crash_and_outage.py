"""Break things on purpose: SIGKILL workers under load, stop Kafka, and check that
nothing acknowledged is lost, nothing is delivered twice under different ids, and
everything resumes without a manual step."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import defaultdict
from typing import Any

import boto3
from aiokafka import AIOKafkaConsumer
import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, committed_offsets, eventually, read_topic


class Load:
    """Steady REST and webhook traffic from a thread; remembers what was acknowledged."""

    def __init__(self, urls: list[str], api: Api, endpoint_id: str, webhook_mask: str) -> None:
        self.urls, self.api, self.endpoint_id, self.mask = urls, api, endpoint_id, webhook_mask
        self.accepted: list[str] = []          # event uids answered 201
        self.webhooks_accepted: list[str] = []  # markers answered 200
        self.duplicate_keys: list[str] = []     # idempotency keys sent twice
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        token = self.api.http.headers["Authorization"]
        i = 0
        with httpx.Client(timeout=15, headers={"Authorization": token}) as http:
            while not self._stop.is_set():
                base = self.urls[i % len(self.urls)]
                key = f"key-{i // 2}"  # every key is used twice in a row: the second is a duplicate
                try:
                    r = http.post(f"{base}/api/v1/projects/{self.api.project_id}/events",
                                  json={"endpoint_id": self.endpoint_id, "event_type": "load", "data": {"i": i}, "idempotency_key": key})
                    if r.status_code == 201:
                        self.accepted.append(r.json()["data"]["uid"])
                    else:
                        self.failures += 1
                    marker = f"wh-{i}"
                    w = http.post(f"{base}/ingest/{self.mask}", json={"marker": marker})
                    if w.status_code == 200:
                        self.webhooks_accepted.append(marker)
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.05)
                i += 1
                time.sleep(0.01)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)


def make_project(base: str, kind: str) -> Api:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    data = admin.post("/api/v1/projects", json={"name": "crash", "type": kind}).json()["data"]
    return Api(base, data["api_key"]["key"], data["project"]["uid"])


def setup(base: str) -> tuple[Api, str, Api, dict[str, Any]]:
    out = make_project(base, "outgoing")
    endpoint = out.post("/endpoints", {"name": "e", "url": "https://example.com/c"}).json()["data"]["uid"]
    incoming = make_project(base, "incoming")
    source = incoming.post("/sources", {"name": "hook", "type": "http"}).json()["data"]
    sink = incoming.post("/endpoints", {"name": "sink", "url": "https://example.com/s"}).json()["data"]["uid"]
    incoming.post("/subscriptions", {"name": "s", "endpoint_id": sink, "source_id": source["uid"], "filter_config": {"event_types": ["*"]}})
    return out, endpoint, incoming, source


def where_are(bootstrap: str, app_id: str, uids: set[str]) -> str:
    """For a failure message: where the missing events are in the ingest topic and the events
    changelog, and the consumer group's committed offsets."""
    async def scan() -> str:
        found: dict[str, list[str]] = {"ingest": [], "events-changelog": []}
        for name in found:
            consumer = AIOKafkaConsumer(f"{app_id}-{name}", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                        enable_auto_commit=False, group_id=None)
            await consumer.start()
            try:
                idle = 0
                while idle < 3:
                    batches = await consumer.getmany(timeout_ms=300)
                    idle = 0 if batches else idle + 1
                    for tp, messages in batches.items():
                        for m in messages:
                            key = (m.key or b"").decode()
                            if any(uid in key for uid in uids):
                                found[name].append(f"p{tp.partition}@{m.offset}")
            finally:
                await consumer.stop()
        ingest_committed = sorted((await committed_offsets(bootstrap, app_id, "ingest")).items())
        return f"in ingest: {found['ingest']}\nin events changelog: {found['events-changelog']}\ncommitted: {ingest_committed}"
    return asyncio.run(scan())


def check_nothing_lost(load: Load, bootstrap: str, app_id: str, out: Api, incoming: Api, source: dict[str, Any]) -> None:
    assert len(load.accepted) > 20 and len(load.webhooks_accepted) > 20
    # every acknowledged REST event is stored once, duplicates of a key are marked so
    deadline = time.monotonic() + 60
    missing = list(load.accepted)
    while missing and time.monotonic() < deadline:
        missing = [uid for uid in missing if out.get(f"/events/{uid}").status_code != 200]
        time.sleep(0.5)
    if missing:
        pytest.fail(f"{len(missing)} acknowledged events not stored: {missing[:5]}; answers: "
                    f"{[out.get(f'/events/{uid}').text[:200] for uid in missing[:3]]}\n{where_are(bootstrap, app_id, set(missing))}")
    stored = [out.get(f"/events/{uid}").json()["data"] for uid in load.accepted]
    originals = defaultdict(int)
    for event in stored:
        originals[event["idempotency_key"]] += not event["is_duplicate_event"]
    assert all(count <= 1 for count in originals.values()), "a key produced two non-duplicate events"

    # delivery records: every stored, non-duplicate event has its delivery on the topic;
    # a (event, subscription) pair seen twice (replay after the crash) carries one uid
    expected = {e["uid"] for e in stored if not e["is_duplicate_event"]}

    def complete(records: list[dict[str, Any]]) -> bool:
        seen = {r["event_id"] for r in records}
        markers = {str(r["data"].get("marker")) for r in records if isinstance(r.get("data"), dict)}
        return expected <= seen and set(load.webhooks_accepted) <= markers

    records = read_topic(bootstrap, f"{app_id}-deliveries", until=complete, timeout=90)
    uids_per_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        uids_per_pair[(r["event_id"], r["subscription_id"])].add(r["uid"])
    assert all(len(uids) == 1 for uids in uids_per_pair.values())
    duplicates = {e["uid"] for e in stored if e["is_duplicate_event"]}
    assert not duplicates & {r["event_id"] for r in records}, "a duplicate event was delivered"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_under_load_loses_nothing(workers: int, kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    app_id = f"cs-crash{workers}-" + secrets.token_hex(3)
    pool = [Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("crash"), app_id, ADMIN_TOKEN).start() for _ in range(workers)]
    try:
        for w in pool:
            w.wait_healthy()
        out, endpoint, incoming, source = setup(pool[0].url)
        victim = pool[-1]
        with Load([w.url for w in pool], out, endpoint, source["mask_id"]) as load:
            time.sleep(3)
            victim.kill()
            time.sleep(2)
            victim.start().wait_healthy(90)
            time.sleep(3)
        check_nothing_lost(load, kafka_broker.bootstrap, app_id, out, incoming, source)
    finally:
        for w in pool:
            w.stop()


def test_kafka_outage_answers_503_then_resumes_and_keeps_broker_messages(
        kafka_factory: Any, sqs_server: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    kafka = kafka_factory()
    worker = Worker(kafka.bootstrap, tmp_path_factory.mktemp("outage"), "cs-outage-" + secrets.token_hex(3), ADMIN_TOKEN,
                    env={"CONVOY_STREAM_PUBLISH_TIMEOUT": "3"}).start()
    try:
        worker.wait_healthy()
        api = make_project(worker.url, "outgoing")
        endpoint = api.post("/endpoints", {"name": "e", "url": "https://example.com/o"}).json()["data"]["uid"]
        before = api.post("/events", {"endpoint_id": endpoint, "event_type": "before", "data": {}}).json()["data"]["uid"]
        eventually(lambda: api.get(f"/events/{before}").status_code == 200)

        sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        queue = f"outage-{secrets.token_hex(3)}"
        url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        api.post("/sources", {"name": "q", "type": "pub_sub", "pub_sub": {"type": "sqs", "workers": 1, "sqs": {
            "access_key_id": "t", "secret_key": "t", "default_region": "us-east-1", "queue_name": queue, "endpoint": sqs_server}}})

        kafka.stop()
        eventually(lambda: httpx.get(worker.url + "/health", timeout=5).status_code == 503, timeout=20)
        started = time.monotonic()
        during = api.post("/events", {"endpoint_id": endpoint, "event_type": "during", "data": {}})
        assert during.status_code == 503 and time.monotonic() - started < 10
        message_id = sqs.send_message(QueueUrl=url, MessageBody='{"endpoint_id": "%s", "event_type": "q", "data": {}}' % endpoint)["MessageId"]
        time.sleep(5)  # the bridge tries and fails to publish; the message must stay in the queue
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 1

        kafka.start()
        eventually(lambda: httpx.get(worker.url + "/health", timeout=5).status_code == 200, timeout=60)
        after = eventually(lambda: (r := api.post("/events", {"endpoint_id": endpoint, "event_type": "after", "data": {}})).status_code == 201
                           and r.json()["data"]["uid"], timeout=30)
        eventually(lambda: api.get(f"/events/{after}").status_code == 200, timeout=30)
        assert api.get(f"/events/{before}").status_code == 200
        # the bridge retried while Kafka was down; a retry whose write landed after all is a
        # stored duplicate (deduplicated by the SQS message id), never a second delivery
        events = eventually(lambda: api.get("/events", params={"brokerMessageId": message_id}).json()["data"]["content"], timeout=60)
        [original] = [e for e in events if not e["is_duplicate_event"]]
        assert original["event_type"] == "q" and original["status"] == "Success"
    finally:
        worker.stop()
