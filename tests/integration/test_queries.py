"""Event and delivery queries across two workers: filters, cursor pagination, retention."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually


@pytest.fixture(scope="module")
def workers(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Worker]]:
    app_id = "cs-q-" + secrets.token_hex(3)
    env = {"CONVOY_STREAM_RETENTION_SWEEP_INTERVAL": "1"}
    pair = [Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp(f"q{i}"), app_id, ADMIN_TOKEN, env=env).start() for i in (1, 2)]
    try:
        for w in pair:
            w.wait_healthy()
        yield pair[0], pair[1]
    finally:
        for w in pair:
            w.stop()


def project(workers: tuple[Worker, Worker], kind: str = "outgoing", **config: Any) -> tuple[Api, Api]:
    admin = httpx.Client(base_url=workers[0].url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response = admin.post("/api/v1/projects", json={"name": "q", "type": kind, "config": config})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return tuple(Api(w.url, data["api_key"]["key"], data["project"]["uid"]) for w in workers)  # type: ignore[return-value]


def content(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]["content"]


def all_pages(api: Api, path: str, per_page: int, **params: Any) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        response = api.get(path, params={"perPage": per_page, "next_page_cursor": cursor, **params}).json()["data"]
        pages.append([row["uid"] for row in response["content"]])
        if not response["pagination"]["has_next_page"]:
            return pages
        cursor = response["pagination"]["next_page_cursor"]


def test_cursor_pagination_is_exact_and_the_same_on_both_workers(workers: tuple[Worker, Worker]) -> None:
    first, second = project(workers)
    endpoint = first.post("/endpoints", {"name": "e", "url": "https://example.com/p"}).json()["data"]
    uids = []
    for i in range(250):
        api = first if i % 2 else second
        response = api.post("/events", {"endpoint_id": endpoint["uid"], "event_type": "page.test", "data": {"i": i}})
        assert response.status_code == 201, response.text
        uids.append(response.json()["data"]["uid"])
    eventually(lambda: len(content(first, "/events", perPage=100, query="page.test")) == 100
               and sum(map(len, all_pages(first, "/events", 100))) == 250, timeout=60)

    pages = all_pages(first, "/events", 50)
    assert [len(p) for p in pages] == [50] * 5
    flat = [uid for page in pages for uid in page]
    assert sorted(flat) == sorted(uids) and flat == sorted(flat, reverse=True)  # each once, newest first
    assert all_pages(second, "/events", 50) == pages  # whichever worker answers

    # events arriving while a client pages neither repeat nor shift later pages
    cursor = first.get("/events", params={"perPage": 50}).json()["data"]["pagination"]["next_page_cursor"]
    for _ in range(5):
        first.post("/events", {"endpoint_id": endpoint["uid"], "event_type": "page.test", "data": {}})
    later = second.get("/events", params={"perPage": 50, "next_page_cursor": cursor}).json()["data"]
    assert [r["uid"] for r in later["content"]] == pages[1]
    # and going back from page 2 gives page 1 again
    back = first.get("/events", params={"perPage": 50, "direction": "prev", "prev_page_cursor": pages[1][0]}).json()["data"]
    assert [r["uid"] for r in back["content"]] == pages[0]

    deliveries = all_pages(second, "/eventdeliveries", 100, endpointId=endpoint["uid"])
    assert sum(map(len, deliveries)) >= 250


def test_event_and_delivery_filters(workers: tuple[Worker, Worker]) -> None:
    first, second = project(workers)
    a = first.post("/endpoints", {"name": "a", "url": "https://example.com/a", "owner_id": "owner-a"}).json()["data"]
    b = first.post("/endpoints", {"name": "b", "url": "https://example.com/b", "owner_id": "owner-b"}).json()["data"]
    sub_a = first.post("/subscriptions", {"name": "sa", "endpoint_id": a["uid"], "filter_config": {"event_types": ["*"]}}).json()["data"]
    created = first.post("/events", {"endpoint_id": a["uid"], "event_type": "invoice.paid", "data": {}, "idempotency_key": "k-a"})
    assert created.status_code == 201, created.text
    to_a = created.json()["data"]["uid"]
    to_b = second.post("/events", {"endpoint_id": b["uid"], "event_type": "invoice.created", "data": {}}).json()["data"]["uid"]
    fan = first.post("/events/fanout", {"owner_id": "owner-b", "event_type": "user.created", "data": {}}).json()["data"]["uid"]
    eventually(lambda: len(content(second, "/events")) == 3)

    ids = lambda rows: {r["uid"] for r in rows}  # noqa: E731
    assert ids(content(second, "/events", endpointId=a["uid"])) == {to_a}
    assert ids(second.get("/events", params=[("endpointId", a["uid"]), ("endpointId", b["uid"])]).json()["data"]["content"]) == {to_a, to_b, fan}
    assert ids(content(first, "/events", ownerId="owner-b")) == {fan}
    assert ids(content(first, "/events", idempotencyKey="k-a")) == {to_a}
    assert ids(content(first, "/events", query="invoice")) == {to_a, to_b}
    assert ids(content(first, "/events", query=to_b[:20])) == {to_b}
    assert ids(content(first, "/events", query="invoice", endpointId=b["uid"])) == {to_b}

    assert {d["event_id"] for d in content(second, "/eventdeliveries", eventId=to_a)} == {to_a}
    assert {d["event_id"] for d in content(second, "/eventdeliveries", endpointId=b["uid"])} == {to_b, fan}
    assert {d["event_id"] for d in content(first, "/eventdeliveries", subscriptionId=sub_a["uid"])} == {to_a}
    assert {d["event_id"] for d in content(first, "/eventdeliveries", eventType="user.created")} == {fan}
    assert len(content(first, "/eventdeliveries", status="Scheduled")) == 3
    assert content(first, "/eventdeliveries", status="Failure") == []
    assert {d["event_id"] for d in content(first, "/eventdeliveries", idempotencyKey="k-a")} == {to_a}

    # dates: everything is within today; a window in the past or the future is empty
    fmt = "%Y-%m-%dT%H:%M:%S"
    now = datetime.now(timezone.utc)
    assert len(content(first, "/events", startDate=(now - timedelta(hours=1)).strftime(fmt))) == 3
    assert content(first, "/events", startDate=(now + timedelta(hours=1)).strftime(fmt)) == []
    assert content(first, "/events", startDate=(now - timedelta(days=3)).strftime(fmt), endDate=(now - timedelta(days=2)).strftime(fmt)) == []

    bad = first.get("/events", params={"startDate": "yesterday"})
    assert bad.status_code == 400 and bad.json()["message"] == "please specify a startDate in the format 2006-01-02T15:04:05"
    assert first.get("/events", params={"perPage": "many"}).status_code == 400
    assert first.get("/events", params={"direction": "sideways"}).status_code == 400


def test_source_filter_on_webhook_events(workers: tuple[Worker, Worker]) -> None:
    first, second = project(workers, "incoming")
    sources = [first.post("/sources", {"name": f"s{i}", "type": "http"}).json()["data"] for i in range(2)]
    for source in sources:
        for _ in range(2):
            assert httpx.post(f"{workers[1].url}/ingest/{source['mask_id']}", json={"x": 1}).status_code == 200
    eventually(lambda: len(content(second, "/events")) == 4)
    assert {e["source_id"] for e in content(second, "/events", sourceId=sources[0]["uid"])} == {sources[0]["uid"]}
    assert len(content(first, "/events", sourceId=sources[0]["uid"])) == 2
    both = first.get("/events", params=[("sourceId", s["uid"]) for s in sources]).json()["data"]["content"]
    assert len(both) == 4


def test_events_past_retention_disappear(workers: tuple[Worker, Worker]) -> None:
    first, second = project(workers, retention_policy={"policy": "3s"})
    endpoint = first.post("/endpoints", {"name": "e", "url": "https://example.com/r"}).json()["data"]
    body = {"endpoint_id": endpoint["uid"], "event_type": "old", "data": {}, "idempotency_key": "once"}
    uid = first.post("/events", body).json()["data"]["uid"]
    event = eventually(lambda: second.get(f"/events/{uid}").json().get("data"))
    [delivery] = content(first, "/eventdeliveries", eventId=uid)

    eventually(lambda: second.get(f"/events/{uid}").status_code == 404, timeout=30)
    assert first.get(f"/eventdeliveries/{delivery['uid']}").status_code == 404
    assert content(first, "/events", idempotencyKey="once") == []
    # the dedup window ends with the retention: the same key is a new event again
    again = second.post("/events", body).json()
    assert again["message"] == "Event queued successfully"
    fresh = eventually(lambda: first.get(f"/events/{again['data']['uid']}").json().get("data"))
    assert fresh["is_duplicate_event"] is False and event["uid"] != fresh["uid"]
