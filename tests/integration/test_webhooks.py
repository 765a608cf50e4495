"""Webhook ingest end to end: provider-signed HTTP requests -> verified events -> delivery records."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from typing import Any, Callable

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator

from tests.conftest import Api
from tests.support.workers import all_committed, eventually, read_to_end, read_topic

SECRET = "It's a Secret to Everybody"
WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-0123").decode()


def _hmac(secret: str, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), message, algorithm).digest()


def hexsig(secret: str, message: bytes) -> str:
    return _hmac(secret, message).hex()


def b64sig(secret: str, message: bytes) -> str:
    return base64.b64encode(_hmac(secret, message)).decode()


@pytest.fixture(scope="module")
def incoming(make_project: Callable[..., Api]) -> Api:
    return make_project("incoming")


def make_source(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": f"src-{secrets.token_hex(3)}", "type": "http", **fields}
    response = api.post("/sources", body)
    assert response.status_code == 201, response.text
    source = response.json()["data"]
    endpoint = api.post("/endpoints", {"name": "sink", "url": "https://example.com/in"}).json()["data"]
    subscription = api.post("/subscriptions", {"name": "s", "endpoint_id": endpoint["uid"], "source_id": source["uid"],
                                                "filter_config": {"event_types": ["*"]}})
    assert subscription.status_code == 201, subscription.text
    source["endpoint_id"] = endpoint["uid"]
    return source


def hmac_config(secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    return {"type": "hmac", "hmac": {"header": "X-Signature", "hash": "SHA256", "secret": secret, "encoding": "hex", **extra}}


def post(worker_url: str, source: dict[str, Any], body: bytes, headers: dict[str, str], *, method: str = "POST",
         query: str = "") -> httpx.Response:
    return httpx.request(method, f"{worker_url}/ingest/{source['mask_id']}{query}", content=body, headers=headers, timeout=15)


def assert_delivered(kafka: Any, app_id: str, source: dict[str, Any], marker: str) -> dict[str, Any]:
    records = read_topic(kafka.bootstrap, f"{app_id}-deliveries",
                         until=lambda rs: any(r["source_id"] == source["uid"] and marker in json.dumps(r["data"]) for r in rs))
    [record] = [r for r in records if r["source_id"] == source["uid"] and marker in json.dumps(r["data"])]
    assert record["endpoint_id"] == source["endpoint_id"]
    return record


def assert_not_ingested(kafka: Any, app_id: str, marker: str) -> None:
    """Called after the refusal was answered: anything the request wrote is in Kafka by then
    (nothing is answered before it is durable), so the topic read to its end must lack it."""
    records = read_to_end(kafka.bootstrap, f"{app_id}-ingest")
    assert records, "the ingest topic read nothing: the check would prove nothing"
    assert not any(marker in json.dumps(r) for r in records)


def assert_stored_as_duplicate_and_not_delivered(api: Api, kafka: Any, app_id: str, source: dict[str, Any],
                                                 marker: str) -> None:
    """Waits until the pipeline stored the event carrying `marker` as a duplicate and has
    committed (so written the deliveries of) everything ingested; then no delivery carries it."""
    def stored() -> list[dict[str, Any]]:
        events = api.get("/events", params={"sourceId": source["uid"], "perPage": 100}).json()["data"]["content"]
        return [e for e in events if marker in json.dumps(e["data"])]
    [event] = eventually(stored, timeout=30)
    assert event["is_duplicate_event"] is True, event
    all_committed(kafka.bootstrap, app_id, "ingest")
    deliveries = read_to_end(kafka.bootstrap, f"{app_id}-deliveries")
    assert any(r["source_id"] == source["uid"] for r in deliveries), "the original's delivery is missing: nothing was read"
    assert not any(marker in json.dumps(r["data"]) for r in deliveries)


def _signed_cases(url_of: Callable[[dict[str, Any]], str]) -> dict[str, tuple[dict[str, Any], Callable[[dict[str, Any], bytes], dict[str, str]]]]:
    now = str(int(time.time()))
    return {
        "hmac": (hmac_config(), lambda s, b: {"X-Signature": hexsig(SECRET, b)}),
        "github": ({"type": "hmac", "hmac": {"secret": SECRET}}, lambda s, b: {"X-Hub-Signature-256": "sha256=" + hexsig(SECRET, b)}),
        "shopify": ({"type": "hmac", "hmac": {"secret": SECRET}}, lambda s, b: {"X-Shopify-Hmac-SHA256": b64sig(SECRET, b)}),
        "twitter": ({"type": "hmac", "hmac": {"secret": SECRET}}, lambda s, b: {"X-Twitter-Webhooks-Signature": "sha256=" + b64sig(SECRET, b)}),
        "stripe": ({"type": "hmac", "hmac": {"secret": "whsec_stripe"}},
                   lambda s, b: {"Stripe-Signature": f"t={now},v1=" + hexsig("whsec_stripe", now.encode() + b"." + b)}),
        "slack": ({"type": "hmac", "hmac": {"secret": SECRET}},
                  lambda s, b: {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + hexsig(SECRET, f"v0:{now}:".encode() + b)}),
        "standard_webhooks": ({"type": "hmac", "hmac": {"secret": WHSEC}}, lambda s, b: _standard(b)),
        "svix": ({"type": "hmac", "hmac": {"secret": WHSEC}}, lambda s, b: _svix(b)),
        "convoy": ({"type": "hmac", "hmac": {"secret": SECRET}},
                   lambda s, b: {"X-Convoy-Signature": f"t={now},v1=" + hexsig(SECRET, now.encode() + b"," + b)}),
        "twilio": ({"type": "hmac", "hmac": {"secret": SECRET}}, lambda s, b: _twilio(url_of(s), b)),
    }


def _standard(body: bytes) -> dict[str, str]:
    from datetime import datetime, timezone

    msg_id = "msg_" + secrets.token_hex(6)
    signature = StandardWebhook(WHSEC).sign(msg_id, datetime.now(timezone.utc), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(time.time())), "webhook-signature": signature}


def _svix(body: bytes) -> dict[str, str]:
    from datetime import datetime, timezone

    msg_id = "msg_" + secrets.token_hex(6)
    signature = SvixWebhook(WHSEC).sign(msg_id, datetime.now(timezone.utc), body.decode())
    return {"svix-id": msg_id, "svix-timestamp": str(int(time.time())), "svix-signature": signature}


def _twilio(url: str, body: bytes) -> dict[str, str]:
    params = dict(httpx.QueryParams(body.decode()))
    return {"X-Twilio-Signature": RequestValidator(SECRET).compute_signature(url, params),
            "Content-Type": "application/x-www-form-urlencoded"}


PROVIDERS = ["hmac", "github", "shopify", "twitter", "stripe", "slack", "standard_webhooks", "svix", "convoy", "twilio"]


@pytest.mark.parametrize("scheme", PROVIDERS)
def test_signed_webhooks_are_accepted_and_tampered_twins_refused(scheme: str, incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    url_of = lambda s: f"{worker.url}/ingest/{s['mask_id']}"  # noqa: E731
    verifier, sign = _signed_cases(url_of)[scheme]
    source = make_source(incoming, verifier=verifier, **({} if scheme == "hmac" else {"provider": scheme}))
    marker = secrets.token_hex(8)
    body = (f"marker={marker}&kind=ok" if scheme == "twilio" else json.dumps({"marker": marker, "kind": "ok"})).encode()
    headers = {"Content-Type": "application/json", **sign(source, body)}

    tampered_marker = secrets.token_hex(8)
    tampered = body.replace(marker.encode(), tampered_marker.encode())
    refused = post(worker.url, source, tampered, headers)
    assert refused.status_code == 400 and refused.json() == {"status": False, "message": "Request verification failed", "data": None}

    accepted = post(worker.url, source, body, headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["message"] == "Event received"
    record = assert_delivered(kafka_broker, app_id, source, marker)
    assert record["event_type"] == source["mask_id"]
    assert_not_ingested(kafka_broker, app_id, tampered_marker)


def test_basic_auth_api_key_and_noop_sources(incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    basic = make_source(incoming, verifier={"type": "basic_auth", "basic_auth": {"username": "convoy", "password": "pa:ss"}})
    good = "Basic " + base64.b64encode(b"convoy:pa:ss").decode()
    bad = "Basic " + base64.b64encode(b"convoy:wrong").decode()
    assert post(worker.url, basic, b'{"m":"basic-bad"}', {"Authorization": bad}).status_code == 400
    assert post(worker.url, basic, b'{"m":"basic-good"}', {"Authorization": good}).status_code == 200
    record = assert_delivered(kafka_broker, app_id, basic, "basic-good")
    assert "authorization" not in {k.lower() for k in record["headers"]}

    key = make_source(incoming, verifier={"type": "api_key", "api_key": {"header_name": "X-Api-Key", "header_value": "sekret"}})
    assert post(worker.url, key, b'{"m":"key-bad"}', {"X-Api-Key": "nope"}).status_code == 400
    assert post(worker.url, key, b'{"m":"key-good"}', {"X-Api-Key": "sekret"}).status_code == 200
    assert_delivered(kafka_broker, app_id, key, "key-good")
    assert_not_ingested(kafka_broker, app_id, "key-bad")
    assert_not_ingested(kafka_broker, app_id, "basic-bad")

    noop = make_source(incoming)
    response = post(worker.url, noop, b"", {})
    assert response.status_code == 200 and response.json() == {"status": True, "message": "Event received", "data": 2}


def test_stored_headers_are_redacted_and_query_and_path_kept(incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    source = make_source(incoming, verifier={"type": "api_key", "api_key": {"header_name": "X-Api-Key", "header_value": "sekret"}},
                         forward_headers=["X-Custom"])
    response = post(worker.url, source, b'{"m": "hdr-1"}', {"X-Api-Key": "sekret", "Cookie": "session=1", "X-Custom": "kept",
                                                         "X-Other": "not-forwarded", "Content-Type": "application/json"},
                    query="?x=1&y=2")
    assert response.status_code == 200
    record = assert_delivered(kafka_broker, app_id, source, "hdr-1")
    assert record["headers"] == {"X-Custom": "kept"}
    event = eventually(lambda: incoming.get(f"/events/{record['event_id']}").json().get("data"))
    headers = event["headers"]
    assert headers["X-Api-Key"] == ["[REDACTED]"] and headers["Cookie"] == ["[REDACTED]"]
    assert headers["X-Custom"] == ["kept"] and headers["X-Convoy-Source-Id"] == [source["mask_id"]]
    assert "sekret" not in json.dumps(event)
    assert event["url_query_params"] == "x=1&y=2" and event["url_path"] == f"/ingest/{source['mask_id']}"


def test_form_multipart_and_raw_bodies(incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    source = make_source(incoming)
    form = post(worker.url, source, b"key1=value1&marker=form-1", {"Content-Type": "application/x-www-form-urlencoded"}, query="?leak=1")
    assert form.status_code == 200
    record = assert_delivered(kafka_broker, app_id, source, "form-1")
    assert record["data"] == {"key1": "value1", "marker": "form-1"}

    boundary = "XyZ"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"marker\"\r\n\r\nmulti-1\r\n"
                 f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                 f"Content-Type: text/plain\r\n\r\nfile body\r\n--{boundary}--\r\n").encode()
    assert post(worker.url, source, multipart, {"Content-Type": f"multipart/form-data; boundary={boundary}"}).status_code == 200
    assert assert_delivered(kafka_broker, app_id, source, "multi-1")["data"] == {"marker": "multi-1"}

    assert post(worker.url, source, b"plain text raw-1", {"Content-Type": "text/plain"}).status_code == 200
    assert assert_delivered(kafka_broker, app_id, source, "raw-1")["data"] == "plain text raw-1"


def test_size_limit_applies_to_chunked_bodies(make_project: Callable[..., Api], worker: Any) -> None:
    api = make_project("incoming", max_payload_read_size=1000)
    source = make_source(api)

    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 200

    response = httpx.post(f"{worker.url}/ingest/{source['mask_id']}", content=chunks(), timeout=15)
    assert response.status_code == 413
    assert post(worker.url, source, b'{"small": true}', {"Content-Type": "application/json"}).status_code == 200
    assert post(worker.url, source, b"y" * 1001, {}).status_code == 413


def test_custom_response_unknown_disabled_and_non_http_sources(incoming: Api, worker: Any) -> None:
    source = make_source(incoming, custom_response={"body": "[accepted]", "content_type": "text/plain"})
    response = post(worker.url, source, b"{}", {})
    assert response.status_code == 200 and response.text == "[accepted]"
    assert response.headers["content-type"].startswith("text/plain")

    assert httpx.post(f"{worker.url}/ingest/doesnotexist1234", content=b"{}").status_code == 404

    update = incoming.put(f"/sources/{source['uid']}", {"name": source["name"], "type": "http", "is_disabled": True})
    assert update.status_code == 202, update.text
    disabled = post(worker.url, source, b"{}", {})
    assert disabled.status_code == 403 and disabled.json()["message"] == "source is disabled"


def test_dedup_by_header_and_by_body_path(incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    by_header = make_source(incoming, idempotency_keys=["request.header.X-GitHub-Delivery"])
    first = post(worker.url, by_header, b'{"m":"dh-1"}', {"X-GitHub-Delivery": "d-1", "Content-Type": "application/json"})
    assert first.json()["message"] == "Event received"
    assert_delivered(kafka_broker, app_id, by_header, "dh-1")
    again = post(worker.url, by_header, b'{"m":"dh-2"}', {"X-GitHub-Delivery": "d-1", "Content-Type": "application/json"})
    assert again.status_code == 200 and again.json()["message"] == "Duplicate event received, but will not be sent"
    assert_stored_as_duplicate_and_not_delivered(incoming, kafka_broker, app_id, by_header, "dh-2")
    # no header -> no idempotency key -> not deduplicated (Convoy would collapse these)
    for m in ("dh-3", "dh-4"):
        assert post(worker.url, by_header, json.dumps({"m": m}).encode(), {"Content-Type": "application/json"}).json()["message"] == "Event received"
        assert_delivered(kafka_broker, app_id, by_header, m)

    by_body = make_source(incoming, idempotency_keys=["request.body.id"])
    assert post(worker.url, by_body, b'{"id":"evt_1","m":"db-1"}', {"Content-Type": "application/json"}).status_code == 200
    assert_delivered(kafka_broker, app_id, by_body, "db-1")
    dup = post(worker.url, by_body, b'{"id":"evt_1","m":"db-2"}', {"Content-Type": "application/json"})
    assert dup.json()["message"] == "Duplicate event received, but will not be sent"
    # the duplicate is stored but never delivered
    assert_stored_as_duplicate_and_not_delivered(incoming, kafka_broker, app_id, by_body, "db-2")


def test_event_type_location_and_twitter_crc(incoming: Api, worker: Any, kafka_broker: Any, app_id: str) -> None:
    typed = make_source(incoming, event_type_location="request.header.X-GitHub-Event")
    assert post(worker.url, typed, b'{"m":"typed-1"}', {"X-GitHub-Event": "push"}).status_code == 200
    assert assert_delivered(kafka_broker, app_id, typed, "typed-1")["event_type"] == "push"

    twitter = make_source(incoming, provider="twitter", verifier={"type": "hmac", "hmac": {"secret": "Convoy"}})
    crc = httpx.get(f"{worker.url}/ingest/{twitter['mask_id']}", params={"crc_token": "uzwcfYtzr9"})
    assert crc.status_code == 200
    assert crc.json() == {"response_token": "sha256=HXvxTdsfShG6k2zC9NVANwFquJBdOugRYHax2vNiiOo="}
    stored = incoming.get(f"/sources/{twitter['uid']}").json()["data"]
    assert stored["provider_config"]["twitter"]["crc_verified_at"]
    assert stored["verifier"]["hmac"]["secret"] == "[REDACTED]"


def test_bodies_too_large_for_kafka_are_413_and_the_largest_allowed_are_delivered(
        make_project: Callable[..., Api], worker: Any, kafka_broker: Any, app_id: str) -> None:
    """Bodies past what a Kafka record holds (1 MB by default) are the client's mistake (413),
    never "Kafka unavailable": over the read limit (at most 1,000,000 bytes), or within it but
    too large once wrapped in an ingest record; a body just under the cap travels the whole
    pipeline (a stored event row and a delivery record each hold a copy)."""
    api = make_project("incoming", max_payload_read_size=1_000_000)
    source = make_source(api)  # with a subscription to a sink
    for size in (2 * 1024 * 1024, 999_980):  # the second fits the read limit, not the record
        huge = json.dumps({"blob": "x" * size}).encode()
        response = post(worker.url, source, huge, {"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert response.json()["message"] == "request body too large"

    outgoing = make_project()
    endpoint = outgoing.post("/endpoints", {"name": "e", "url": "https://example.com/e"}).json()["data"]["uid"]
    rest = outgoing.post("/events", {"endpoint_id": endpoint, "event_type": "big", "data": {"blob": "x" * (2 * 1024 * 1024)}})
    assert rest.status_code == 413, rest.text

    marker = secrets.token_hex(4)
    largest = json.dumps({"marker": marker, "blob": "y" * (900 * 1024)}).encode()
    assert post(worker.url, source, largest, {"Content-Type": "application/json"}).status_code == 200
    records = read_topic(kafka_broker.bootstrap, f"{app_id}-deliveries",
                         until=lambda rs: any(r["data"].get("marker") == marker for r in rs if isinstance(r.get("data"), dict)),
                         timeout=30)
    [delivered] = [r for r in records if isinstance(r.get("data"), dict) and r["data"].get("marker") == marker]
    assert len(delivered["data"]["blob"]) == 900 * 1024
    # the worker is still processing: a small event after the large one is delivered too
    after = outgoing.post("/events", {"endpoint_id": endpoint, "event_type": "small", "data": {"n": 1}})
    assert after.status_code == 201
    uid = after.json()["data"]["uid"]
    read_topic(kafka_broker.bootstrap, f"{app_id}-deliveries", until=lambda rs: any(r["event_id"] == uid for r in rs), timeout=30)
