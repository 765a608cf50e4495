"""REST event API end to end: HTTP -> Kafka -> dedup agent -> delivery records."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from convoy import Convoy

from tests.conftest import Api
from tests.support.workers import eventually, read_topic


def endpoint(api: Api, owner: str = "", **extra: Any) -> dict[str, Any]:
    body = {"name": f"ep-{secrets.token_hex(3)}", "url": "https://example.com/hook", "owner_id": owner, **extra}
    response = api.post("/endpoints", body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def subscription(api: Api, endpoint_id: str, event_types: list[str], body_filter: dict | None = None,
                 header_filter: dict | None = None, source_id: str = "") -> dict[str, Any]:
    response = api.post("/subscriptions", {
        "name": f"sub-{secrets.token_hex(3)}", "endpoint_id": endpoint_id, "source_id": source_id,
        "filter_config": {"event_types": event_types, "filter": {"body": body_filter or {}, "headers": header_filter or {}}},
    })
    assert response.status_code == 201, response.text
    return response.json()["data"]


def settled_event(api: Api, uid: str) -> dict[str, Any]:
    """The event once the pipeline stored it."""
    def check() -> dict[str, Any] | None:
        response = api.get(f"/events/{uid}")
        return response.json()["data"] if response.status_code == 200 else None
    return eventually(check)


def deliveries_of(api: Api, uid: str) -> list[dict[str, Any]]:
    settled_event(api, uid)
    response = api.get("/eventdeliveries", params={"eventId": uid})
    assert response.status_code == 200, response.text
    return response.json()["data"]["content"]


def test_single_event_becomes_one_delivery_record_on_the_delivery_topic(make_project, worker, kafka_broker, app_id) -> None:
    api = make_project()
    ep = endpoint(api)
    response = api.post("/events", {"endpoint_id": ep["uid"], "event_type": "invoice.paid", "data": {"amount": 5},
                                    "custom_headers": {"X-Tenant": "acme"}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] is True and body["message"] == "Event queued successfully"
    uid = body["data"]["uid"]

    event = settled_event(api, uid)
    assert event["event_type"] == "invoice.paid" and event["data"] == {"amount": 5}
    assert event["status"] == "Success" and event["endpoints"] == [ep["uid"]]
    assert event["headers"]["X-Tenant"] == ["acme"]  # the sender's name, as Convoy keeps it

    [delivery] = deliveries_of(api, uid)
    assert delivery["endpoint_id"] == ep["uid"] and delivery["status"] == "Scheduled"
    assert delivery["headers"]["X-Tenant"] == ["acme"]  # Convoy's header map
    assert api.get(f"/eventdeliveries/{delivery['uid']}").json()["data"]["event_id"] == uid

    records = read_topic(kafka_broker.bootstrap, f"{app_id}-deliveries",
                         until=lambda rs: any(r["event_id"] == uid for r in rs))
    [record] = [r for r in records if r["event_id"] == uid]
    assert record["__key"] == ep["uid"] and record["data"] == {"amount": 5} and record["uid"] == delivery["uid"]


def test_fanout_reaches_every_endpoint_of_the_owner_only(make_project) -> None:
    api = make_project()
    a1, a2, b = endpoint(api, "owner-a"), endpoint(api, "owner-a"), endpoint(api, "owner-b")
    response = api.post("/events/fanout", {"owner_id": "owner-a", "event_type": "user.created", "data": {"id": 1}})
    assert response.status_code == 201, response.text
    assert response.json()["message"] == "Endpoint fanout event queued successfully"
    deliveries = deliveries_of(api, response.json()["data"]["uid"])
    assert sorted(d["endpoint_id"] for d in deliveries) == sorted([a1["uid"], a2["uid"]])
    assert b["uid"] not in {d["endpoint_id"] for d in deliveries}


def test_broadcast_matches_event_types_and_body_filters(make_project) -> None:
    api = make_project()
    e1, e2, e3, e4 = (endpoint(api) for _ in range(4))
    paid = subscription(api, e1["uid"], ["invoice.paid"])
    star = subscription(api, e2["uid"], ["*"])
    subscription(api, e3["uid"], ["invoice.created"])
    big = subscription(api, e4["uid"], ["*"], body_filter={"amount": {"$gte": 100}})

    small = api.post("/events/broadcast", {"event_type": "invoice.paid", "data": {"amount": 5}}).json()["data"]["uid"]
    large = api.post("/events/broadcast", {"event_type": "invoice.paid", "data": {"amount": 500}}).json()["data"]["uid"]
    assert {d["subscription_id"] for d in deliveries_of(api, small)} == {paid["uid"], star["uid"]}
    assert {d["subscription_id"] for d in deliveries_of(api, large)} == {paid["uid"], star["uid"], big["uid"]}


def test_header_filter_on_custom_headers(make_project) -> None:
    api = make_project()
    ep = endpoint(api)
    sub = subscription(api, ep["uid"], ["*"], header_filter={"x-region": "eu"})
    eu = api.post("/events", {"endpoint_id": ep["uid"], "event_type": "t", "data": {}, "custom_headers": {"X-Region": "eu"}})
    us = api.post("/events", {"endpoint_id": ep["uid"], "event_type": "t", "data": {}, "custom_headers": {"X-Region": "us"}})
    assert [d["subscription_id"] for d in deliveries_of(api, eu.json()["data"]["uid"])] == [sub["uid"]]
    us_event = settled_event(api, us.json()["data"]["uid"])
    assert us_event["status"] == "Failure" and deliveries_of(api, us_event["uid"]) == []


def test_dynamic_event_creates_endpoint_once_and_delivers(make_project) -> None:
    api = make_project()
    url = f"https://dynamic.example.com/{secrets.token_hex(4)}"
    first = api.post("/events/dynamic", {"url": url, "event_type": "a.b", "data": {"x": 1}, "event_types": ["a.b"]})
    assert first.status_code == 201, first.text
    second = api.post("/events/dynamic", {"url": url, "event_type": "a.b", "data": {"x": 2}})
    [d1] = deliveries_of(api, first.json()["data"]["uid"])
    [d2] = deliveries_of(api, second.json()["data"]["uid"])
    assert d1["endpoint_id"] == d2["endpoint_id"] and d1["url"] == url
    endpoints = api.get("/endpoints").json()["data"]["content"]
    assert [e["url"] for e in endpoints] == [url]


def test_idempotency_key_deduplicates_within_the_project(make_project) -> None:
    api = make_project()
    other = make_project()
    ep, other_ep = endpoint(api), endpoint(other)
    body = {"endpoint_id": ep["uid"], "event_type": "order.placed", "data": {"n": 1}, "idempotency_key": "order-42"}
    first = api.post("/events", body).json()["data"]["uid"]
    settled_event(api, first)
    second = api.post("/events", body)
    assert second.status_code == 201
    assert second.json()["message"] == "Duplicate event received, but will not be sent"
    duplicate = settled_event(api, second.json()["data"]["uid"])
    assert duplicate["is_duplicate_event"] is True and deliveries_of(api, duplicate["uid"]) == []
    assert len(deliveries_of(api, first)) == 1

    listed = api.get("/events", params={"idempotencyKey": "order-42"}).json()["data"]["content"]
    assert sorted(e["uid"] for e in listed) == sorted([first, duplicate["uid"]])

    # the same key in another project is a different event
    elsewhere = other.post("/events", {**body, "endpoint_id": other_ep["uid"]}).json()["data"]["uid"]
    assert settled_event(other, elsewhere)["is_duplicate_event"] is False


def test_auth_is_required_and_scoped_to_the_project(make_project, worker) -> None:
    api, other = make_project(), make_project()
    ep = endpoint(api)
    event = {"endpoint_id": ep["uid"], "event_type": "t", "data": {}}
    path = f"/api/v1/projects/{api.project_id}/events"
    assert httpx.post(worker.url + path, json=event).status_code == 401
    assert httpx.post(worker.url + path, json=event, headers={"Authorization": "Bearer CO.nope.nope"}).status_code == 401
    foreign = other.http.post(path, json=event)
    assert foreign.status_code == 401 and foreign.json()["status"] is False
    assert other.http.get(f"/api/v1/projects/{api.project_id}/endpoints").status_code == 401
    # a project key cannot create projects
    assert api.http.post("/api/v1/projects", json={"name": "x", "type": "outgoing"}).status_code == 403


def test_bad_requests_get_convoy_messages(make_project) -> None:
    api = make_project()
    ep = endpoint(api)
    bad_json = api.http.post(api.p("/events"), content=b'{"event_type": ', headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "badly-formed JSON" in bad_json.json()["message"]
    wrong_type = api.http.post(api.p("/events"), content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415
    missing = api.post("/events", {"endpoint_id": ep["uid"], "data": {}})
    assert missing.status_code == 400 and missing.json()["message"] == "event_type:please provide an event type"
    no_endpoint = api.post("/events", {"event_type": "t", "data": {}})
    assert no_endpoint.status_code == 400 and no_endpoint.json()["message"] == "please provide an endpoint ID"
    unknown = api.post("/events", {"endpoint_id": "nope", "event_type": "t", "data": {}})
    assert unknown.status_code == 400 and unknown.json()["message"] == "endpoint not found"
    assert api.get("/events/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404


def test_convoy_python_sdk_creates_events_that_become_deliveries(make_project, worker) -> None:
    api = make_project()
    token = api.http.headers["Authorization"].split(" ", 1)[1]
    sdk = Convoy({"api_key": token, "uri": f"{worker.url}/api/v1/projects/{api.project_id}"})
    created, status = sdk.endpoint.create({}, {"name": "sdk", "url": "https://sdk.example.com/hook", "owner_id": "o-1"})
    assert status == 201, created
    response, status = sdk.event.create({}, {"endpoint_id": created["data"]["uid"], "event_type": "sdk.test", "data": {"ok": True}})
    assert status == 201, response
    [delivery] = deliveries_of(api, response["data"]["uid"])
    assert delivery["endpoint_id"] == created["data"]["uid"]
    found, status = sdk.event.find(response["data"]["uid"], {})
    assert status == 200 and found["data"]["event_type"] == "sdk.test"


def test_a_project_ratelimit_that_would_be_ignored_is_refused(make_project, worker) -> None:
    """`config.ratelimit` paces deliveries in Convoy; convoy-stream sends none, so a value other
    than Convoy's default is refused (400, Convoy's envelope), never stored and ignored. The
    default, which Convoy's clients send and every read shows, round-trips."""
    from tests.conftest import ADMIN_TOKEN

    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    refused = admin.post("/api/v1/projects", json={"name": "paced", "type": "outgoing",
                                                   "config": {"ratelimit": {"count": 10, "duration": 1}}})
    assert refused.status_code == 400, refused.text
    assert refused.json()["status"] is False
    assert "config.ratelimit paces deliveries to endpoints" in refused.json()["message"]

    api = make_project()
    shown = api.http.get(api.p("")).json()["data"]
    assert shown["config"]["ratelimit"] == {"count": 1000, "duration": 60}
    assert api.http.put(api.p(""), json={"name": shown["name"], "config": shown["config"]}).status_code == 202
    changed = api.http.put(api.p(""), json={"name": shown["name"], "config": {**shown["config"], "ratelimit": {"count": 5}}})
    assert changed.status_code == 400 and changed.json()["status"] is False
    assert api.http.get(api.p("")).json()["data"]["config"]["ratelimit"] == {"count": 1000, "duration": 60}
