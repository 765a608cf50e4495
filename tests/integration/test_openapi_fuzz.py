"""schemathesis against a live worker: every documented operation, fuzzed, answers within its schema.

One pytest test per OpenAPI operation (`/openapi.json`, i.e. `openapi.document()`),
positive and negative data, a bounded number of examples each. Each request is
authenticated with a real credential: the project's API key for project routes,
the admin token for `POST /api/v1/projects` and `/metrics`, and none for
`/health`, `/openapi.json` and `/ingest`. Path ids point at real entities about
half the time (a real project, endpoint, source mask, event, delivery...) so the
fuzzer gets past "not found" into validation and the pipeline; the other half
keep the generated value. Checked on every answer:

- not a 5xx (a 503 would mean the worker lost Kafka, which it must not here);
- the status code is documented for the operation;
- the Content-Type, the documented headers and the body match the schema.

The worker is private to this module (its own app id, so its own topics) and
runs without broker bridges: the fuzzer creates `pub_sub` sources with random
broker addresses, which a bridge would otherwise try to reach.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from convoy_stream.web import openapi
from tests.conftest import ADMIN_TOKEN
from tests.support.workers import Worker, eventually

SCHEMA = schemathesis.openapi.from_dict(openapi.document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
#: Writes whose request body the document describes completely, fuzzed with invalid bodies
#: only: each must be refused (4xx). Sources are left out: their `pub_sub` block is read only
#: for `type: pub_sub`, and only the block its `type` names, which the schema cannot say.
#: A replay has no body and only string parameters: nothing to make invalid.
NEGATIVE = schemathesis.openapi.from_dict(openapi.document()).include(method=["POST", "PUT"]).exclude(
    path_regex="^/ingest|/sources|/replay$|/retry$")  # a replay or retry has no body to make invalid
NEGATIVE.config.generation.update(modes=[GenerationMode.NEGATIVE], with_security_parameters=False)
NEGATIVE_EXAMPLES = int(os.environ.get("CONVOY_STREAM_FUZZ_NEGATIVE_EXAMPLES", "15"))
#: Examples per operation (and per generation mode). Derandomized, so CI runs the same
#: cases every time; raise it locally (CONVOY_STREAM_FUZZ_EXAMPLES=500) to explore further.
EXAMPLES = int(os.environ.get("CONVOY_STREAM_FUZZ_EXAMPLES", "20"))


@dataclass
class Target:
    worker: Worker
    outgoing: dict[str, str]  # project uid, key
    incoming: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    @property
    def url(self) -> str:
        return self.worker.url

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kw)

    def project(self, kind: str) -> dict[str, str]:
        response = self.admin("POST", "/api/v1/projects", json={"name": f"fz-{secrets.token_hex(3)}", "type": kind})
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return {"uid": data["project"]["uid"], "key": data["api_key"]["key"]}

    def create(self, project: dict[str, str], collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/api/v1/projects/{project['uid']}/{collection}", json=body,
                                  headers={"Authorization": f"Bearer {project['key']}"})
        assert response.status_code == 201, response.text
        return response.json()["data"]


@pytest.fixture(scope="module")
def target(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("fuzz-worker"), "cs-fuzz-" + secrets.token_hex(4),
                    ADMIN_TOKEN, env={"CONVOY_STREAM_BRIDGES": "0"}).start()
    try:
        worker.wait_healthy()
        t = Target(worker, {}, {})
        t.outgoing, t.incoming = t.project("outgoing"), t.project("incoming")
        endpoint = t.create(t.outgoing, "endpoints", {"name": "fz", "url": "https://example.com/hook", "owner_id": "o1"})
        subscription = t.create(t.outgoing, "subscriptions", {"name": "fz", "endpoint_id": endpoint["uid"]})
        noop = t.create(t.incoming, "sources", {"name": "fz-noop", "type": "http"})
        signed = t.create(t.incoming, "sources", {"name": "fz-hmac", "type": "http", "verifier": {
            "type": "hmac", "hmac": {"header": "X-Sig", "hash": "SHA256", "secret": "fz-secret", "encoding": "hex"}}})
        event = t.http.post(f"{t.url}/api/v1/projects/{t.outgoing['uid']}/events",
                            json={"endpoint_id": endpoint["uid"], "event_type": "fz.made", "data": {"n": 1}},
                            headers={"Authorization": f"Bearer {t.outgoing['key']}"})
        assert event.status_code == 201, event.text
        event_id = event.json()["data"]["uid"]

        def delivery() -> str | None:
            response = t.http.get(f"{t.url}/api/v1/projects/{t.outgoing['uid']}/eventdeliveries",
                                  params={"eventId": event_id}, headers={"Authorization": f"Bearer {t.outgoing['key']}"})
            content = response.json().get("data", {}).get("content") if response.status_code == 200 else None
            return content[0]["uid"] if content else None

        t.ids = {"endpoints:get": endpoint["uid"], "subscriptions:get": subscription["uid"], "sources:get": noop["uid"],
                 "eventID": event_id, "deliveryID": eventually(delivery), "mask": noop["mask_id"],
                 "signed_mask": signed["mask_id"]}
        for method in ("put", "delete"):  # victims of the writes, one set per method
            victim = t.create(t.outgoing, "endpoints", {"name": f"fz-{method}", "url": "https://example.com/w"})
            t.ids[f"endpoints:{method}"] = victim["uid"]
            t.ids[f"subscriptions:{method}"] = t.create(t.outgoing, "subscriptions", {
                "name": f"fz-{method}", "endpoint_id": endpoint["uid"]})["uid"]
            t.ids[f"sources:{method}"] = t.create(t.incoming, "sources", {"name": f"fz-{method}", "type": "http"})["uid"]
        yield t
    finally:
        worker.stop()


def _pick(case: Any, name: str) -> int:
    """A stable 0-99 choice per generated case, so a failing example replays the same way."""
    seen = f"{name}:{case.path_parameters!r}:{case.query!r}:{case.body!r}"
    return int(hashlib.sha256(seen.encode("utf-8", "replace")).hexdigest(), 16) % 100


def prepare(case: Any, t: Target, *, touch_body: bool = True) -> dict[str, str]:
    """Point the case at real entities (most of the time) and return the credential headers.

    Writes (PUT, DELETE) get victims of their own, so the entities other operations read
    (the ingest source, the event's endpoint) keep working for the whole run. With
    `touch_body` a body may also get a real endpoint id and a plain URL, so generated
    writes get past "not found" and URL checks often enough to reach the pipeline.
    """
    path, method = case.operation.path, case.operation.method.upper()
    params = case.path_parameters if case.path_parameters is not None else {}
    real = _pick(case, "real") < 70
    if path.startswith("/ingest/"):
        if real:
            params["maskID"] = t.ids["signed_mask"] if _pick(case, "signed") < 30 else t.ids["mask"]
        return {}
    if path in ("/health", "/openapi.json"):
        return {}
    if path in ("/api/v1/projects", "/metrics"):
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # a project route
    collection = path.split("/")[5] if path.count("/") >= 5 else ""
    project = t.incoming if collection == "sources" else t.outgoing
    if path == "/api/v1/projects/{projectID}" and method in ("PUT", "DELETE"):
        project = t.project("outgoing")  # never change or delete the projects other operations use
    if real:
        params["projectID"] = project["uid"]
        if "uid" in params and collection:
            params["uid"] = t.ids[f"{collection}:{method.lower() if method in ('PUT', 'DELETE') else 'get'}"]
        for name in ("eventID", "deliveryID"):
            if name in params:
                params[name] = t.ids[name]
        wants_endpoint = "endpoint_id" in case.body or path.endswith("/events") if isinstance(case.body, dict) else False
        if touch_body and wants_endpoint and _pick(case, "endpoint") < 70:
            case.body["endpoint_id"] = t.ids["endpoints:get"]  # events to, or subscriptions of, a real endpoint
        if touch_body and isinstance(case.body, dict) and "url" in case.body and _pick(case, "url") < 50:
            case.body["url"] = "https://example.com/hook"
    return {"Authorization": f"Bearer {project['key']}"}


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_within_its_schema(case: Any, target: Target) -> None:
    headers = prepare(case, target)
    response = case.call(base_url=target.url, headers=headers, timeout=20)
    case.validate_response(response, checks=CHECKS, headers=headers)


@NEGATIVE.parametrize()
@settings(max_examples=NEGATIVE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_invalid_request_bodies_are_refused(case: Any, target: Target) -> None:
    headers = prepare(case, target, touch_body=False)
    response = case.call(base_url=target.url, headers=headers, timeout=20)
    case.validate_response(response, checks=[not_a_server_error, negative_data_rejection], headers=headers)


def test_the_worker_is_still_healthy_and_logged_no_unhandled_error(target: Target) -> None:
    assert httpx.get(target.url + "/health", timeout=5).status_code == 200
    log = target.worker.log_path.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log, target.worker.log_tail(120)




def test_the_fuzzer_got_past_authentication_into_every_write(target: Target) -> None:
    """Answers counted by the worker itself: each write succeeded at least once, so the run
    exercised validation and the pipeline, not only 401s and 404s."""
    text = target.admin("GET", "/metrics").text
    answered = {(m["method"], m["route"], m["status"]) for m in re.finditer(
        r'convoy_stream_http_requests_total\{method="(?P<method>\w+)",route="(?P<route>[^"]+)",status="(?P<status>\d+)"\} [1-9]',
        text)}
    project = "/api/v1/projects/{projectID}"
    wanted = {("POST", "/api/v1/projects", "201"), ("POST", "/ingest/{maskID}", "200"),
              ("PUT", "/ingest/{maskID}", "200"), ("PATCH", "/ingest/{maskID}", "200")}
    wanted |= {("POST", f"{project}/{c}", "201") for c in ("endpoints", "subscriptions", "sources")}
    wanted |= {("PUT", f"{project}/{c}/{{uid}}", "202") for c in ("endpoints", "subscriptions", "sources")}
    wanted |= {("DELETE", f"{project}/{c}/{{uid}}", "200") for c in ("endpoints", "subscriptions", "sources")}
    wanted |= {("POST", f"{project}/events{k}", "201") for k in ("", "/fanout", "/broadcast", "/dynamic")}
    assert wanted - answered == set()
