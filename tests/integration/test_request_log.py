"""The request log end to end: a turned-away webhook is listed with its cause, and a retry
after the source is fixed makes it an event (and only then)."""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable

import httpx
import pytest

from tests.conftest import Api
from tests.integration.test_webhooks import hexsig, hmac_config, make_source, post
from tests.support.workers import eventually

pytestmark = pytest.mark.integration

GOOD, WRONG = "the-right-secret", "a-stale-secret"


@pytest.fixture(scope="module")
def incoming(make_project: Callable[..., Api]) -> Api:
    return make_project("incoming")


def logged(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/requests", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]["content"]  # type: ignore[no-any-return]


def logged_with(api: Api, marker: str, **params: Any) -> dict[str, Any]:
    found = eventually(lambda: [r for r in logged(api, **params) if marker in r["body"]], timeout=30)
    [entry] = found
    return entry  # type: ignore[no-any-return]


def test_a_bad_signature_is_logged_with_its_cause_and_retries_into_an_event_once_fixed(worker: Any, incoming: Api) -> None:
    source = make_source(incoming, verifier=hmac_config(WRONG))
    marker = secrets.token_hex(6)
    body = json.dumps({"marker": marker, "amount": 7}).encode()
    answer = post(worker.url, source, body, {"X-Signature": hexsig(GOOD, body), "Content-Type": "application/json",
                                            "Authorization": "Bearer do-not-store-me"})
    assert answer.status_code == 400

    entry = logged_with(incoming, marker, sourceId=source["uid"])
    assert entry["cause"] == "verification_failed" and entry["status"] == 400
    assert entry["source_name"] == source["name"] and entry["method"] == "POST"
    assert entry["headers"]["Authorization"] == "[REDACTED]"
    assert json.loads(entry["body"]) == {"marker": marker, "amount": 7}
    assert logged(incoming, sourceId=source["uid"], cause="body_too_large") == []

    # Still the wrong secret: the retry is verified again and refused, nothing stored.
    refused = incoming.post(f"/requests/{entry['uid']}/retry", {})
    assert refused.status_code == 400 and refused.json()["message"] == "Request verification failed"

    fixed = incoming.put(f"/sources/{source['uid']}", {**{k: source[k] for k in ("name", "type")},
                                                        "verifier": hmac_config(GOOD)})
    assert fixed.status_code == 202, fixed.text
    retried = incoming.post(f"/requests/{entry['uid']}/retry", {})
    assert retried.status_code == 201, retried.text
    event_id = retried.json()["data"]["event_id"]
    event = eventually(lambda: incoming.get(f"/events/{event_id}").json().get("data"), timeout=30)
    assert event["data"] == {"marker": marker, "amount": 7} and event["source_id"] == source["uid"]
    # The log shows which event the retry became.
    eventually(lambda: logged_with(incoming, marker, sourceId=source["uid"]).get("retried_event_id") == event_id,
               timeout=30)


def test_every_cause_the_ingest_answers_is_logged(worker: Any, incoming: Api) -> None:
    source = make_source(incoming, verifier=hmac_config(GOOD))
    marker = secrets.token_hex(6)
    post(worker.url, source, f'{{"m":"{marker}"'.encode(), {"X-Signature": hexsig(GOOD, f'{{"m":"{marker}"'.encode()),
                                                             "Content-Type": "application/x-www-form-urlencoded; x"})
    assert httpx.delete(f"{worker.url}/ingest/{source['mask_id']}", timeout=15).status_code == 405
    big = b'{"pad":"' + marker.encode() + b"x" * 60_000 + b'"}'
    assert post(worker.url, source, big, {"X-Signature": hexsig(GOOD, big)}).status_code == 413

    eventually(lambda: {r["cause"] for r in logged(incoming, sourceId=source["uid"])} >= {"method_not_allowed", "body_too_large"},
               timeout=30)
    [too_large] = logged(incoming, sourceId=source["uid"], cause="body_too_large")
    assert too_large["body_truncated"] and too_large["body"] == ""
    cut = incoming.post(f"/requests/{too_large['uid']}/retry", {})
    assert cut.status_code == 400 and "not kept whole" in cut.json()["message"]

    disabled = make_source(incoming, verifier=hmac_config(GOOD))
    assert incoming.put(f"/sources/{disabled['uid']}", {"name": disabled["name"], "type": "http",
                                                         "is_disabled": True}).status_code == 202
    eventually(lambda: post(worker.url, disabled, b"{}", {}).status_code == 403)
    eventually(lambda: [r["cause"] for r in logged(incoming, sourceId=disabled["uid"])][:1] == ["source_disabled"],
               timeout=30)


def test_the_log_is_the_projects_own(make_project: Callable[..., Api], incoming: Api) -> None:
    other = make_project("incoming")
    stranger = httpx.get(f"{incoming.base}{incoming.p('/requests')}",
                         headers={"Authorization": other.http.headers["Authorization"]}, timeout=15)
    assert stranger.status_code == 401
    assert incoming.get("/requests", params={"cause": "nonsense"}).status_code == 400
