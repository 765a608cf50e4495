"""Two workers of one app: events and lookups work whichever worker a request hits."""

from __future__ import annotations

import secrets
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually


@pytest.fixture(scope="module")
def two_workers(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Worker]]:
    app_id = "cs-two-" + secrets.token_hex(4)
    first = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("w1"), app_id, ADMIN_TOKEN).start()
    second = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("w2"), app_id, ADMIN_TOKEN).start()
    try:
        first.wait_healthy()
        second.wait_healthy()
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_requests_work_on_either_worker(two_workers: tuple[Worker, Worker]) -> None:
    first, second = two_workers
    admin = httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    created = admin.post("/api/v1/projects", json={"name": "two", "type": "outgoing"}).json()["data"]
    key, project_id = created["api_key"]["key"], created["project"]["uid"]
    on_first, on_second = Api(first.url, key, project_id), Api(second.url, key, project_id)

    # config written through one worker is visible on the other
    endpoint = on_first.post("/endpoints", {"name": "e", "url": "https://example.com/x", "owner_id": "o"}).json()["data"]
    eventually(lambda: on_second.get(f"/endpoints/{endpoint['uid']}").status_code == 200)

    uids = []
    for i in range(24):
        api = on_first if i % 2 else on_second
        response = api.post("/events", {"endpoint_id": endpoint["uid"], "event_type": "t", "data": {"i": i}})
        assert response.status_code == 201, response.text
        uids.append(response.json()["data"]["uid"])

    def settled(api: Api, uid: str) -> bool:
        response = api.get(f"/events/{uid}")
        return response.status_code == 200 and response.json()["data"]["status"] == "Success"

    # every event is found through both workers, so both own some partitions and route to each other
    for uid in uids:
        try:
            eventually(lambda: settled(on_first, uid) and settled(on_second, uid), timeout=60)
        except BaseException:
            raise AssertionError(f"{uid}: first={on_first.get(f'/events/{uid}').text[:300]} "
                                 f"second={on_second.get(f'/events/{uid}').text[:300]} "
                                 f"where={_where(first, project_id, uid)}")
        [d1] = on_first.get("/eventdeliveries", params={"eventId": uid}).json()["data"]["content"]
        [d2] = on_second.get("/eventdeliveries", params={"eventId": uid}).json()["data"]["content"]
        assert d1 == d2
        assert on_second.get(f"/eventdeliveries/{d1['uid']}").json()["data"]["event_id"] == uid

    # dedup holds whichever worker receives the repeats
    body = {"endpoint_id": endpoint["uid"], "event_type": "t", "data": {}, "idempotency_key": "same-key"}
    ids = []
    for api in (on_first, on_second, on_first, on_second):
        response = api.post("/events", body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["uid"])
    for uid in ids:
        eventually(lambda: settled(on_first, uid) or on_first.get(f"/events/{uid}").status_code == 200)
    listed = eventually(lambda: len(on_second.get("/events", params={"idempotencyKey": "same-key"}).json()["data"]["content"]) == 4
                        and on_second.get("/events", params={"idempotencyKey": "same-key"}).json()["data"]["content"])
    assert sorted(e["uid"] for e in listed) == sorted(ids)
    assert sum(not e["is_duplicate_event"] for e in listed) == 1


def _where(worker: Worker, project_id: str, uid: str) -> str:
    """Diagnostics for a missing event: its partition, offset, and the group's committed offsets."""
    import asyncio

    import orjson
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from convoy_stream.ids import partition_of, scoped

    async def look() -> str:
        topic = f"{worker.app_id}-ingest"
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=worker.bootstrap, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        found = []
        try:
            for _ in range(10):
                for tp, messages in (await consumer.getmany(timeout_ms=300)).items():
                    found += [(tp.partition, m.offset) for m in messages if orjson.loads(m.value).get("uid") == uid]
        finally:
            await consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=worker.bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(worker.app_id)
        finally:
            await admin.close()
        mine = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
        return f"expected partition {partition_of(scoped(project_id, uid), 8)}, in topic at {found}, committed {mine}"

    return asyncio.run(look())
