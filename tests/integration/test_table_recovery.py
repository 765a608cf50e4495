"""The pipeline writes its tables a batch at a time (`table_writes.py`), bypassing Faust's
per-key writes. These tests hold it to what Faust's own writes promise: duplicates that
arrive together are still caught, and a worker that loses its disk gets every row back
from the changelog topics."""

from __future__ import annotations

import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from convoy_stream.ids import dedup_key
from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, all_committed, committed_while_progressing, eventually, read_to_end, read_topic

KEYS = 40
COPIES = 3


def stored(api: Api, uid: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        response = api.get(f"/events/{uid}")
        return response.json()["data"] if response.status_code == 200 else None
    return eventually(check, timeout=60)


def outgoing_project(worker: Worker) -> tuple[Api, str]:
    """A new outgoing project on `worker`, with one endpoint: its API and the endpoint id."""
    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    data = admin.post("/api/v1/projects", json={"name": "recover", "type": "outgoing"}).json()["data"]
    api = Api(worker.url, data["api_key"]["key"], data["project"]["uid"])
    return api, api.post("/endpoints", {"name": "e", "url": "https://example.com/r"}).json()["data"]["uid"]


def post_burst(api: Api, endpoint_id: str) -> dict[str, list[str]]:
    """Every key several times at once, so copies share a batch: uids per key."""
    bodies = [{"endpoint_id": endpoint_id, "event_type": "burst", "data": {"key": k, "copy": c}, "idempotency_key": f"k{k}"}
              for c in range(COPIES) for k in range(KEYS)]
    token = api.http.headers["Authorization"]

    def post(body: dict[str, Any]) -> tuple[str, str]:
        r = httpx.post(f"{api.base}/api/v1/projects/{api.project_id}/events", json=body,
                       headers={"Authorization": token}, timeout=15)
        assert r.status_code == 201, r.text
        return body["idempotency_key"], r.json()["data"]["uid"]

    uids: dict[str, list[str]] = {}
    with ThreadPoolExecutor(16) as pool:
        for key, uid in pool.map(post, bodies):
            uids.setdefault(key, []).append(uid)
    return uids


def test_duplicates_in_one_burst_and_tables_rebuilt_from_the_changelog(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    app_id = "cs-recover-" + secrets.token_hex(3)
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("recover"), app_id, ADMIN_TOKEN).start()
    try:
        worker.wait_healthy()
        api, endpoint_id = outgoing_project(worker)

        uids = post_burst(api, endpoint_id)
        before = {uid: stored(api, uid) for key_uids in uids.values() for uid in key_uids}
        for key, key_uids in uids.items():
            originals = [uid for uid in key_uids if not before[uid]["is_duplicate_event"]]
            assert len(originals) == 1, f"{key}: {len(originals)} events not marked duplicate"
        originals = {uid for uid, event in before.items() if not event["is_duplicate_event"]}
        records = read_topic(kafka_broker.bootstrap, f"{app_id}-deliveries",
                             until=lambda rs: originals <= {r["event_id"] for r in rs}, timeout=30)
        assert {r["event_id"] for r in records} == originals, "a duplicate was delivered"
        # Processed records are committed (agent_commits counts only what the agent wrote):
        # otherwise every restart would replay the whole topic.
        all_committed(kafka_broker.bootstrap, app_id, "ingest")

        # Lose the disk: the restarted worker must rebuild every table from Kafka.
        worker.stop()
        shutil.rmtree(worker.data_dir / "faust")
        worker.start().wait_healthy(90)
        for uid, event in before.items():
            after = stored(api, uid)
            assert (after["is_duplicate_event"], after["idempotency_key"], after["data"]) == \
                   (event["is_duplicate_event"], event["idempotency_key"], event["data"])
        again = api.post("/events", {"endpoint_id": endpoint_id, "event_type": "burst", "data": {}, "idempotency_key": "k0"})
        assert again.status_code == 201
        assert stored(api, again.json()["data"]["uid"])["is_duplicate_event"] is True
        listed = api.get("/events", params={"idempotencyKey": "k0"}).json()["data"]["content"]
        assert len(listed) == COPIES + 1
    finally:
        worker.stop()


def test_records_written_before_the_first_worker_started_are_processed_and_committed(
        kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """An ingest topic that already holds records when the consumer group has no offsets (a
    backlog written before the first start, or a group whose offsets expired after a week
    idle): the agents commit only from a known offset, so they must learn where they began,
    or every restart would process the whole topic again."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from convoy_stream.ids import partition_for
    from convoy_stream.publisher import ensure_topics
    from convoy_stream.records import IngestRecord

    app_id = "cs-backlog-" + secrets.token_hex(3)
    topic = f"{app_id}-ingest"

    async def backlog() -> None:
        await ensure_topics(kafka_broker.bootstrap, [topic], 8)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(40):
                record = IngestRecord(uid=f"u{i}", project_id="p", kind="single", event_type="backlog", data={"i": i},
                                      created_at="2026-11-28T00:00:00Z", endpoint_id="e")
                await producer.send_and_wait(topic, record.dumps(), key=f'"p/u{i}"'.encode(),
                                             partition=partition_for(f"p/u{i}", 8))
        finally:
            await producer.stop()

    asyncio.run(backlog())
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("backlog"), app_id, ADMIN_TOKEN).start()
    try:
        worker.wait_healthy()
        all_committed(kafka_broker.bootstrap, app_id, "ingest", timeout=45)
    finally:
        worker.stop()


BACKLOG = 200_000


async def records_in(bootstrap: str, topic: str, partitions: int = 8) -> int:
    """How many records `topic` holds (end offsets; nothing was deleted)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


def test_a_worker_started_on_a_large_backlog_reads_every_record_once(
        kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A worker that starts on a backlog reaches some partitions only seconds later (each
    fetch brings one partition's records). Such a partition is not a hole to read again:
    that re-read once crashed the worker's fetcher (a seek from the wrong thread) and
    stalled it for good, and would otherwise deliver records twice."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from convoy_stream.publisher import Publisher
    from convoy_stream.records import IngestRecord

    app_id = "cs-bigbacklog-" + secrets.token_hex(3)
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("bigbacklog"), app_id, ADMIN_TOKEN).start()
    try:
        worker.wait_healthy()
        api, endpoint_id = outgoing_project(worker)
        # One event through the API: the endpoint gets the subscription Convoy would create.
        assert api.post("/events", {"endpoint_id": endpoint_id, "event_type": "warm", "data": {}}).status_code == 201
        read_topic(kafka_broker.bootstrap, f"{app_id}-deliveries", until=lambda rs: len(rs) == 1)
        worker.stop()

        # The records REST would have written (the product's own key, value and partition).
        publisher = Publisher(kafka_broker.bootstrap, ingest_topic=f"{app_id}-ingest",
                              dead_letter_topic=f"{app_id}-dead-letters", partitions=8, timeout=10.0)
        writes = []
        for i in range(BACKLOG):
            dedup = dedup_key(api.project_id, f"k{i}")
            writes.append(publisher._ingest_write(IngestRecord.build(
                uid=publisher.mint_event_id(api.project_id, dedup), project_id=api.project_id, kind="single",
                event_type="backlog", data={"i": i}, created_at="2026-12-04T00:00:00Z", endpoint_id=endpoint_id,
                idempotency_key=f"k{i}", dedup_key=dedup, config_offset=0)))

        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=20,
                                        max_batch_size=512 * 1024)
            await producer.start()
            try:
                for start in range(0, BACKLOG, 5_000):
                    futures = [await producer.send(f"{app_id}-ingest", value, key=key, partition=partition)
                               for key, value, partition in writes[start:start + 5_000]]
                    await asyncio.gather(*futures)
            finally:
                await producer.stop()

        asyncio.run(produce())
        worker.start().wait_healthy(90)
        # however long a busy machine takes, as long as the worker makes progress
        committed_while_progressing(kafka_broker.bootstrap, app_id, "ingest", stall=60)
        deliveries = read_to_end(kafka_broker.bootstrap, f"{app_id}-deliveries", timeout=120)
        assert len({d["uid"] for d in deliveries}) == BACKLOG + 1
        log = worker.log_path.read_text(errors="replace")
        assert "stayed unprocessed" not in log, "a partition the worker had not reached yet was read again"
        assert asyncio.run(records_in(kafka_broker.bootstrap, f"{app_id}-deliveries")) == BACKLOG + 1, \
            "records were delivered twice"
        assert "Traceback" not in log, worker.log_tail()
    finally:
        worker.stop()
