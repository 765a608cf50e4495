"""A replicated cluster loses a broker: three Kafka nodes (replication 3, min.insync.replicas
2, SCRAM on every client connection), two workers, REST + webhook + SQS traffic.

SIGKILL the node that leads the most ingest partitions under load: every event that got a
2xx (or whose SQS message was deleted) is stored exactly once with its delivery records;
requests during the leader election answer 2xx or 503, never later than the publish timeout;
the workers carry on without a restart; and once the node is back (and in sync) the data is
all there even with another node stopped. A worker restarted from an empty disk while that
node is down rebuilds its tables from the changelogs. (One test, not several: each phase
needs the state the one before left, and the cluster tests must fit in a few minutes.)
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import threading
import time
from collections import Counter
from typing import Any

import boto3
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devkafka.embedded_cluster import EmbeddedKafkaCluster
from tests.conftest import ADMIN_TOKEN, Api
from tests.integration.test_crash_and_outage import check_nothing_lost, setup
from tests.support.workers import Worker, all_committed, eventually, read_topic

pytestmark = pytest.mark.integration

PUBLISH_TIMEOUT = 5.0
#: A request may take the publish timeout plus this much (HTTP, a busy 2-core machine).
SLACK = 3.0
TOPICS = ("ingest", "deliveries", "config")


def worker_env(cluster: EmbeddedKafkaCluster) -> dict[str, str]:
    return {**cluster.client_env(),
            "CONVOY_STREAM_REPLICATION_FACTOR": "3",
            "CONVOY_STREAM_MIN_INSYNC_REPLICAS": "2",
            "CONVOY_STREAM_PUBLISH_TIMEOUT": str(int(PUBLISH_TIMEOUT))}


@pytest.fixture
def whole_cluster(kafka_cluster: EmbeddedKafkaCluster) -> EmbeddedKafkaCluster:
    """The session's cluster with every node running (a test may leave one stopped; the
    next test that needs them all restarts it, so the last one pays nothing)."""
    for node_id, node in kafka_cluster.nodes.items():
        if not node.running:
            kafka_cluster.restart(node_id)
    return kafka_cluster


class Clock:
    """Prints how long each phase took (shown with ``pytest -s``; the budget is tight)."""

    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        print(f"[{now - self.t0:6.1f}s] +{now - self.last:5.1f}s {what}", flush=True)
        self.last = now


def busiest_leader(cluster: EmbeddedKafkaCluster, topic: str) -> int:
    """The node that leads the most partitions of ``topic``."""
    counts = Counter(leader for leader in cluster.leaders(topic).values() if leader >= 0)
    return counts.most_common(1)[0][0]


class Traffic:
    """REST events and webhooks through every worker (one thread per worker) and SQS
    messages (one thread); records what was acknowledged and how long each request took."""

    def __init__(self, urls: list[str], api: Api, endpoint_id: str, mask: str,
                 sqs: Any, queue_url: str) -> None:
        self.urls, self.api, self.endpoint_id, self.mask = urls, api, endpoint_id, mask
        self.sqs, self.queue_url = sqs, queue_url
        self.accepted: list[str] = []            # REST event uids answered 201
        self.webhooks_accepted: list[str] = []   # webhook markers answered 200
        self.sqs_sent: list[str] = []            # SQS message ids
        self.answers: list[tuple[float, int, float]] = []   # (sent at, status, seconds)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._http, args=(n, url), daemon=True)
                         for n, url in enumerate(urls)]
        self._threads.append(threading.Thread(target=self._sqs, daemon=True))

    def _timed(self, http: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = http.post(url, json=body)
        except httpx.HTTPError as exc:
            self.errors.append(f"{url}: {exc!r} after {time.monotonic() - started:.1f}s")
            return None
        self.answers.append((started, response.status_code, time.monotonic() - started))
        return response

    def _http(self, n: int, base: str) -> None:
        token = self.api.http.headers["Authorization"]
        i = 0
        with httpx.Client(timeout=PUBLISH_TIMEOUT + 30, headers={"Authorization": token}) as http:
            while not self._stop.is_set():
                key = f"w{n}-key-{i // 2}"      # every key twice: the second is a duplicate
                r = self._timed(http, f"{base}/api/v1/projects/{self.api.project_id}/events",
                                {"endpoint_id": self.endpoint_id, "event_type": "load",
                                 "data": {"i": i}, "idempotency_key": key})
                if r is not None and r.status_code == 201:
                    self.accepted.append(r.json()["data"]["uid"])
                marker = f"w{n}-wh-{i}"
                r = self._timed(http, f"{base}/ingest/{self.mask}", {"marker": marker})
                if r is not None and r.status_code == 200:
                    self.webhooks_accepted.append(marker)
                i += 1
                time.sleep(0.02)

    def _sqs(self) -> None:
        i = 0
        while not self._stop.is_set():
            body = ('{"endpoint_id": "%s", "event_type": "sqs", "data": {"n": %d}}'
                    % (self.endpoint_id, i))
            self.sqs_sent.append(self.sqs.send_message(QueueUrl=self.queue_url,
                                                       MessageBody=body)["MessageId"])
            i += 1
            time.sleep(0.05)

    def between(self, start: float, end: float) -> list[tuple[float, int, float]]:
        return [a for a in self.answers if start <= a[0] <= end]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(PUBLISH_TIMEOUT + 40)


def sqs_source(api: Api, sqs_server: str) -> tuple[Any, str]:
    """An SQS queue on moto and a source reading it into ``api``'s project."""
    sqs = boto3.client("sqs", endpoint_url=sqs_server, region_name="us-east-1",
                       aws_access_key_id="t", aws_secret_access_key="t")
    queue = f"failover-{secrets.token_hex(3)}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    r = api.post("/sources", {"name": "q", "type": "pub_sub", "pub_sub": {
        "type": "sqs", "workers": 1, "sqs": {"access_key_id": "t", "secret_key": "t",
                                              "default_region": "us-east-1", "queue_name": queue,
                                              "endpoint": sqs_server}}})
    assert r.status_code == 201, r.text
    return sqs, url


def read_to_end(cluster: EmbeddedKafkaCluster, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to the end offsets it has now."""
    bootstrap, partitions = cluster.internal_bootstrap, sorted(cluster.partitions(topic))

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            assert tps, f"no partitions for {topic}"
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            async def behind() -> bool:
                return any([await consumer.position(tp) < end for tp, end in ends.items()])

            while await behind():
                assert time.monotonic() < deadline, "deliveries topic not read to its end in 60 s"
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    records += [orjson.loads(m.value) for m in messages]
            return records
        finally:
            await consumer.stop()

    return asyncio.run(read())


def duplicates_of(api: Api, uids: list[str]) -> set[str]:
    """The uids among ``uids`` stored as duplicates (they get no deliveries)."""
    return {uid for uid in uids if api.get(f"/events/{uid}").json()["data"]["is_duplicate_event"]}


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_broker_killed_under_load_loses_nothing(whole_cluster: EmbeddedKafkaCluster, sqs_server: str,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    cluster = whole_cluster
    clock = Clock()
    app_id = "cs-failover-" + secrets.token_hex(3)
    env = worker_env(cluster)
    pool = [Worker(cluster.bootstrap, tmp_path_factory.mktemp("failover"), app_id, ADMIN_TOKEN,
                   env=env).start() for _ in range(2)]
    try:
        for w in pool:
            w.wait_healthy(120)
        pids = [w.process.pid for w in pool if w.process is not None]
        clock("workers healthy")
        out, endpoint, incoming, source = setup(pool[0].url)
        sqs, queue_url = sqs_source(out, sqs_server)
        topics = [f"{app_id}-{t}" for t in TOPICS]
        cluster.wait_in_sync(topics)
        for topic in topics:
            assert {len(s.replicas) for s in cluster.partitions(topic).values()} == {3}, topic

        clock("projects, sources, topics in sync")
        with Traffic([w.url for w in pool], out, endpoint, source["mask_id"], sqs, queue_url) as load:
            eventually(lambda: len(load.accepted) > 30 and len(load.sqs_sent) > 20, timeout=60)
            victim = busiest_leader(cluster, f"{app_id}-ingest")
            clock(f"load running; killing node {victim}")
            killed_at = time.monotonic()
            cluster.kill(victim)
            # through the fencing of the dead node (~3 s) and the leader elections after it
            eventually(lambda: all(l not in (victim, -1) for l in cluster.leaders(f"{app_id}-ingest").values()),
                       timeout=30)
            accepted_before = len(load.accepted)
            eventually(lambda: len(load.accepted) > accepted_before + 30, timeout=60)
            elected_at = time.monotonic()
            clock("new leaders elected, 30 more events accepted")

            cluster.restart(victim)
            clock(f"node {victim} restarted")
            cluster.wait_in_sync(topics, timeout=90)
            clock("node back and in sync")
            accepted_before = len(load.accepted)
            eventually(lambda: len(load.accepted) > accepted_before + 20, timeout=60)
        clock(f"load stopped: {len(load.accepted)} REST, {len(load.webhooks_accepted)} webhooks, "
              f"{len(load.sqs_sent)} SQS; {Counter(a[1] for a in load.answers)}")

        # during the election every request was answered, 2xx or 503, within the timeout
        window = load.between(killed_at, elected_at)
        assert window, "no request was sent while the node was down"
        statuses = Counter(status for _, status, _ in window)
        assert set(statuses) <= {200, 201, 503}, statuses
        slowest = max(seconds for _, _, seconds in load.answers)
        assert slowest < PUBLISH_TIMEOUT + SLACK, f"a request took {slowest:.1f}s; {statuses}"
        assert not load.errors, load.errors[:5]
        # the workers carried on: the same processes, healthy
        assert [w.process.pid for w in pool if w.process is not None] == pids
        assert all(w.process is not None and w.process.poll() is None for w in pool)
        for w in pool:
            assert httpx.get(w.url + "/health", timeout=10).status_code == 200, w.log_tail()

        # the returned node holds the data: stop another node that leads deliveries
        # partitions, so that reads are served by replicas the returned node is one of
        other = busiest_leader(cluster, f"{app_id}-deliveries")
        if other == victim:
            other = next(i for i in cluster.nodes if i != victim)
        cluster.nodes[other].stop()
        cluster.wait_brokers(set(cluster.nodes) - {other}, timeout=30)
        clock(f"node {other} stopped")
        # a worker restarted while a node is down, from an empty disk, rebuilds its tables
        # from the changelogs (the checks below look up every event through its owner)
        pool[1].stop()
        shutil.rmtree(pool[1].data_dir / "faust")
        pool[1].start().wait_healthy(120)
        clock("second worker restarted from an empty disk")

        check_nothing_lost(load, cluster.internal_bootstrap, app_id, out, incoming, source)
        clock("REST and webhook events stored once, with their deliveries")
        # every SQS message became exactly one original event with its delivery, and was
        # deleted from the queue (acknowledged) only then
        eventually(lambda: queue_depth(sqs, queue_url) == 0, timeout=90)
        sqs_events: set[str] = set()
        for message_id in load.sqs_sent:
            events = eventually(lambda: out.get("/events", params={"brokerMessageId": message_id})
                                .json()["data"]["content"], timeout=60)
            originals = [e["uid"] for e in events if not e["is_duplicate_event"]]
            assert len(originals) == 1, (message_id, events)
            sqs_events.update(originals)
        read_topic(cluster.internal_bootstrap, f"{app_id}-deliveries",
                   until=lambda rs: sqs_events <= {r["event_id"] for r in rs}, timeout=60)
        clock("SQS messages stored once, with their deliveries")
        # the rebuilt idempotency tables still know the keys: repeats are duplicates
        for n in range(2):
            for k in range(5):
                r = out.post("/events", {"endpoint_id": endpoint, "event_type": "again", "data": {},
                                         "idempotency_key": f"w{n}-key-{k}"})
                assert r.status_code == 201, r.text
                uid = r.json()["data"]["uid"]
                again = eventually(lambda: (a := out.get(f"/events/{uid}")).status_code == 200 and a.json()["data"],
                                   timeout=60)
                assert again["is_duplicate_event"], again
        clock("repeated keys are duplicates")

        # once every ingest record is committed, the whole deliveries topic (to its end
        # offsets): each (event, subscription) pair under one uid, no duplicate delivered
        all_committed(cluster.internal_bootstrap, app_id, "ingest", timeout=60)
        records = read_to_end(cluster, f"{app_id}-deliveries")
        uids_per_pair: dict[tuple[str, str], set[str]] = {}
        for r in records:
            uids_per_pair.setdefault((r["event_id"], r["subscription_id"]), set()).add(r["uid"])
        assert all(len(uids) == 1 for uids in uids_per_pair.values())
        delivered = {event for event, _ in uids_per_pair}
        assert set(load.accepted) | sqs_events <= delivered | duplicates_of(out, load.accepted)
        clock(f"deliveries topic read to its end: {len(records)} records, {len(uids_per_pair)} pairs")
    finally:
        for w in pool:
            w.stop()
