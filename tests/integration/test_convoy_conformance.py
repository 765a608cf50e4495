"""Every answer of every Convoy route convoy-stream serves, checked against Convoy's contract.

Three checks on each answer from a live worker (the session's worker, no other):
- it validates against the response schema Convoy's OpenAPI document gives for that route
  and status (`tests/contracts/convoy-openapi3.json`), with `openapi-schema-validator`;
- it carries every field Convoy's models always write: the json tags without `omitempty` of
  Convoy's Go structs (frain-dev/convoy v26.7.3 `datastore/models.go`; Go writes a struct
  such as `time.Time` or `null.Time` even with `omitempty`), read into `ALWAYS` below. The
  document lists almost no `required` fields, so this is what a typed client relies on;
- it validates against convoy-stream's own `/openapi.json` for the same route.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually

DOCUMENT = json.loads((Path(__file__).parents[1] / "contracts" / "convoy-openapi3.json").read_text())


def _nullable_refs(schema: Any) -> Any:
    """Convoy's document (swaggo) writes a nullable reference as `{"allOf": [ref], "nullable": true}`;
    OpenAPI 3.0 validators apply `nullable` only beside a `type`. Read it as meant: the
    referenced schema, or null."""
    if isinstance(schema, list):
        return [_nullable_refs(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _nullable_refs(value) for key, value in schema.items()}
    if schema.get("nullable") and "allOf" in schema and "type" not in schema:
        return {"anyOf": [{k: v for k, v in schema.items() if k != "nullable"}, {"enum": [None]}]}
    return schema


COMPONENTS = _nullable_refs(DOCUMENT["components"])

#: Fields Convoy always writes, per struct (`datastore/models.go`, v26.7.3).
ALWAYS: dict[str, tuple[str, ...]] = {
    "Endpoint": ("uid", "project_id", "url", "name", "secrets", "advanced_signatures", "description", "status",
                 "http_timeout", "authentication", "rate_limit", "rate_limit_duration", "content_type",
                 "failure_rate", "cb_state", "period_failure_rate", "success_count", "failure_count", "retry_count",
                 "created_at", "updated_at", "deleted_at"),
    "Secret": ("uid", "value", "expires_at", "created_at", "updated_at", "deleted_at"),
    "Subscription": ("uid", "name", "type", "project_id", "function", "source_metadata", "endpoint_metadata",
                     "device_metadata", "created_at", "updated_at", "deleted_at"),
    "FilterConfiguration": ("event_types", "filter"),
    "FilterSchema": ("is_flattened", "headers", "body", "query", "path"),
    "Source": ("uid", "project_id", "mask_id", "name", "url", "type", "provider", "is_disabled", "verifier",
               "custom_response", "provider_config", "forward_headers", "pub_sub", "idempotency_keys",
               "event_type_location", "body_function", "header_function", "created_at", "updated_at", "deleted_at"),
    "VerifierConfig": ("hmac", "basic_auth", "api_key"),
    "HMac": ("header", "hash", "secret", "encoding"),
    "CustomResponse": ("body", "content_type"),
    "PubSubConfig": ("type", "workers", "sqs", "google", "kafka", "amqp"),
    "Event": ("uid", "event_type", "endpoints", "headers", "url_query_params", "url_path", "idempotency_key",
              "is_duplicate_event", "status", "acknowledged_at", "created_at", "updated_at", "deleted_at"),
    "EventDelivery": ("uid", "device_id", "headers", "url_query_params", "idempotency_key", "latency",
                      "latency_seconds", "delivery_mode", "status", "metadata", "cli_metadata", "acknowledged_at",
                      "created_at", "updated_at", "deleted_at"),
    "Metadata": ("data", "raw", "strategy", "next_send_time", "num_trials", "interval_seconds", "retry_limit",
                 "max_retry_seconds"),
    "Project": ("uid", "name", "logo_url", "organisation_id", "type", "config", "statistics", "retained_events",
                "created_at", "updated_at", "deleted_at"),
    "ProjectConfig": ("max_payload_read_size", "replay_attacks_prevention_enabled", "add_event_id_trace_headers",
                      "disable_endpoint", "multiple_endpoint_subscriptions", "verify_dynamic_events",
                      "allow_unmatched_dynamic_urls", "search_policy", "ssl", "ratelimit", "strategy", "signature",
                      "request_id_header", "meta_event", "circuit_breaker"),
    "SSLConfiguration": ("enforce_secure_endpoints",),
    "RateLimitConfiguration": ("count", "duration"),
    "StrategyConfiguration": ("type", "duration", "retry_count"),
    "SignatureConfiguration": ("versions",),
    "SignatureVersion": ("uid", "encoding", "created_at"),
    "MetaEventConfiguration": ("is_enabled", "type", "event_type", "url", "secret", "pub_sub"),
    # `models.CreateProjectResponse` and its `datastore.APIKeyResponse` (datastore/api_keys.go)
    "CreateProjectResponse": ("api_key", "project"),
    "APIKeyResponse": ("name", "role", "key_type", "expires_at", "key", "uid", "created_at"),
    "Role": ("type", "project"),
}


def _missing(struct: str, value: Any, where: str) -> list[str]:
    """Always-written fields absent from `value` and from the structs it embeds."""
    if value is None:
        return []
    out = [f"{where}.{field}" for field in ALWAYS[struct] if field not in value]
    nested = {
        "Endpoint": [("Secret", item, f"{where}.secrets[{i}]") for i, item in enumerate(value.get("secrets") or [])],
        "Subscription": [("Endpoint", value.get("endpoint_metadata"), f"{where}.endpoint_metadata"),
                         ("Source", value.get("source_metadata"), f"{where}.source_metadata"),
                         ("FilterConfiguration", value.get("filter_config"), f"{where}.filter_config")],
        "FilterConfiguration": [("FilterSchema", value.get("filter"), f"{where}.filter")],
        "Source": [("VerifierConfig", value.get("verifier"), f"{where}.verifier"),
                   ("CustomResponse", value.get("custom_response"), f"{where}.custom_response"),
                   ("PubSubConfig", value.get("pub_sub"), f"{where}.pub_sub")],
        "VerifierConfig": [("HMac", value.get("hmac"), f"{where}.hmac")],
        "Event": [("Endpoint", item, f"{where}.endpoint_metadata[{i}]") for i, item in enumerate(value.get("endpoint_metadata") or [])]
                 + [("Source", value.get("source_metadata"), f"{where}.source_metadata")],
        "Project": [("ProjectConfig", value.get("config"), f"{where}.config")],
        "ProjectConfig": [(inner, value.get(field), f"{where}.{field}") for inner, field in (
            ("SSLConfiguration", "ssl"), ("RateLimitConfiguration", "ratelimit"), ("StrategyConfiguration", "strategy"),
            ("SignatureConfiguration", "signature"), ("MetaEventConfiguration", "meta_event"))],
        "SignatureConfiguration": [("SignatureVersion", item, f"{where}.versions[{i}]")
                                   for i, item in enumerate(value.get("versions") or [])],
        "CreateProjectResponse": [("APIKeyResponse", value.get("api_key"), f"{where}.api_key"),
                                  ("Project", value.get("project"), f"{where}.project")],
        "APIKeyResponse": [("Role", value.get("role"), f"{where}.role")],
        "EventDelivery": [("Endpoint", value.get("endpoint_metadata"), f"{where}.endpoint_metadata"),
                          ("Source", value.get("source_metadata"), f"{where}.source_metadata"),
                          ("Metadata", value.get("metadata"), f"{where}.metadata")],
    }.get(struct, [])
    return out + [m for inner, item, path in nested for m in _missing(inner, item, path)]


#: Our route (after `/api`) -> the struct each answer's data (or each list item) is.
ENTITY = {"endpoints": "Endpoint", "subscriptions": "Subscription", "sources": "Source", "events": "Event",
          "eventdeliveries": "EventDelivery"}

checked: set[tuple[str, str, int]] = set()

#: Our own document (`/openapi.json`), read from the worker once: it must describe the same answers.
OURS: dict[str, Any] = {}
_OUR_PARAMS = {"{endpointID}": "{uid}", "{subscriptionID}": "{uid}", "{sourceID}": "{uid}",
               "{eventDeliveryID}": "{deliveryID}"}


def _errors(schema: dict[str, Any], components: dict[str, Any], body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in OAS30Validator({**schema, "components": components}).iter_errors(body)]


def _ours(response: httpx.Response, method: str, route: str, status: int, body: Any) -> list[str]:
    if not OURS:
        OURS.update(httpx.get(str(response.request.url.join("/openapi.json"))).json())
    path = "/api" + route
    for convoy_name, our_name in _OUR_PARAMS.items():
        path = path.replace(convoy_name, our_name)
    content = OURS["paths"][path][method.lower()]["responses"][str(status)]["content"]["application/json"]
    return _errors(content["schema"], OURS["components"], body)


def conforms(response: httpx.Response, method: str, route: str, status: int, entity: str | None = None) -> Any:
    """The answer's `data`, once it matched Convoy's schema for (`method`, `route`, `status`) and
    carries every always-written field of `entity` (the data, each list item, or none)."""
    assert response.status_code == status, (method, route, response.status_code, response.text)
    body = response.json()
    operation = DOCUMENT["paths"][route][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    errors = _errors(schema, COMPONENTS, body)
    assert not errors, f"{method} {route} {status} does not match Convoy's schema: {errors[:10]}\n{response.text[:2000]}"
    errors = _ours(response, method, route, status, body)
    assert not errors, f"{method} {route} {status} does not match /openapi.json: {errors[:10]}\n{response.text[:2000]}"
    data = body["data"]
    if entity is not None:
        items = (data["content"] if isinstance(data, dict) and "content" in data
                 else data if isinstance(data, list) else [data])
        missing = [m for item in items for m in _missing(entity, item, entity)]
        assert not missing, f"{method} {route}: fields Convoy always writes are missing: {missing[:20]}"
    checked.add((method.lower(), route, status))
    return data


P = "/v1/projects/{projectID}"
SECRET = "It's a Secret to Everybody"


def _eventually_data(api: Api, path: str, **params: Any) -> Any:
    def found() -> Any:
        response = api.get(path, params=params)
        return response if response.status_code == 200 and response.json()["data"] else None
    return eventually(found)


def _listed(api: Api, path: str, count: int, **params: Any) -> httpx.Response:
    def found() -> Any:
        response = api.get(path, params=params)
        return response if response.status_code == 200 and len(response.json()["data"]["content"]) >= count else None
    return eventually(found)


@pytest.fixture(scope="module")
def outgoing(make_project: Callable[..., Api]) -> Api:
    return make_project()


@pytest.fixture(scope="module")
def incoming(make_project: Callable[..., Api]) -> Api:
    return make_project("incoming")


def test_endpoints_and_subscriptions(outgoing: Api) -> None:
    api = outgoing
    created = conforms(api.post("/endpoints", {"name": "billing", "url": "https://example.com/hook", "owner_id": "o-1"}),
                       "POST", P + "/endpoints", 201, "Endpoint")
    assert created["secrets"][0]["value"] and created["rate_limit"] == 0 and created["http_timeout"] == 10
    assert created["content_type"] == "application/json" and created["failure_rate"] is None
    assert created["advanced_signatures"] is True  # Convoy's default when the body leaves it out
    uid = created["uid"]
    fetched = conforms(api.get(f"/endpoints/{uid}"), "GET", P + "/endpoints/{endpointID}", 200, "Endpoint")
    assert fetched["secrets"][0]["value"] == "[REDACTED]" and fetched["secrets"][0]["uid"] == created["secrets"][0]["uid"]
    for params in ({}, {"q": "bill"}, {"ownerId": "o-1"}, {"perPage": 1}):
        listed = conforms(api.get("/endpoints", params=params), "GET", P + "/endpoints", 200, "Endpoint")
        assert [e["uid"] for e in listed["content"]] == [uid]
    conforms(api.put(f"/endpoints/{uid}", {"name": "billing-2", "url": "https://example.com/hook2", "description": "d"}),
             "PUT", P + "/endpoints/{endpointID}", 202, "Endpoint")

    sub = conforms(api.post("/subscriptions", {"name": "s", "endpoint_id": uid, "filter_config": {"event_types": ["a.*"]}}),
                   "POST", P + "/subscriptions", 201, "Subscription")
    assert sub["type"] == "api" and sub["endpoint_metadata"]["uid"] == uid and sub["source_metadata"] is None
    assert sub["endpoint_metadata"]["secrets"][0]["value"] == "[REDACTED]"
    conforms(api.get(f"/subscriptions/{sub['uid']}"), "GET", P + "/subscriptions/{subscriptionID}", 200, "Subscription")
    for params in ({}, {"endpointId": uid}):
        listed = conforms(api.get("/subscriptions", params=params), "GET", P + "/subscriptions", 200, "Subscription")
        assert [s["uid"] for s in listed["content"]] == [sub["uid"]]
    conforms(api.put(f"/subscriptions/{sub['uid']}", {"name": "s2", "filter_config": {"event_types": ["*"]}}),
             "PUT", P + "/subscriptions/{subscriptionID}", 202, "Subscription")

    other = api.post("/endpoints", {"name": "gone", "url": "https://example.com/gone"}).json()["data"]
    conforms(api.delete(f"/endpoints/{other['uid']}"), "DELETE", P + "/endpoints/{endpointID}", 200)
    extra = api.post("/subscriptions", {"name": "x", "endpoint_id": uid}).json()["data"]
    conforms(api.delete(f"/subscriptions/{extra['uid']}"), "DELETE", P + "/subscriptions/{subscriptionID}", 200)

    # errors: Convoy's envelope, with data null or absent
    conforms(api.post("/endpoints", {"name": "no-url"}), "POST", P + "/endpoints", 400)
    conforms(api.get("/endpoints/nope"), "GET", P + "/endpoints/{endpointID}", 404)
    conforms(api.post("/subscriptions", {"name": "s", "endpoint_id": "nope"}), "POST", P + "/subscriptions", 400)
    stranger = httpx.get(api.base + api.p("/endpoints"), headers={"Authorization": "Bearer CO.nope.nope"})
    conforms(stranger, "GET", P + "/endpoints", 401)


def test_events_of_every_kind_their_deliveries_and_replay(outgoing: Api) -> None:
    api = outgoing
    owner = "owner-" + secrets.token_hex(3)
    first = api.post("/endpoints", {"name": "a", "url": "https://example.com/a", "owner_id": owner}).json()["data"]
    second = api.post("/endpoints", {"name": "b", "url": "https://example.com/b", "owner_id": owner}).json()["data"]
    key = "idem-" + secrets.token_hex(4)
    single = conforms(api.post("/events", {"endpoint_id": first["uid"], "event_type": "invoice.paid", "data": {"n": 1},
                                           "idempotency_key": key, "custom_headers": {"X-Tenant": "acme"}}),
                      "POST", P + "/events", 201)
    conforms(api.post("/events", {"endpoint_id": first["uid"], "event_type": "invoice.paid", "data": {"n": 1},
                                  "idempotency_key": key}), "POST", P + "/events", 201)
    conforms(api.post("/events/fanout", {"owner_id": owner, "event_type": "user.created", "data": {"n": 2}}),
             "POST", P + "/events/fanout", 201)
    conforms(api.post("/events/broadcast", {"event_type": "user.deleted", "data": {"n": 3}}),
             "POST", P + "/events/broadcast", 201)
    conforms(api.post("/events/dynamic", {"url": "https://example.com/dyn", "event_type": "x.y", "data": {"n": 4}}),
             "POST", P + "/events/dynamic", 201)

    event = conforms(_eventually_data(api, f"/events/{single['uid']}"), "GET", P + "/events/{eventID}", 200, "Event")
    assert event["endpoint_metadata"][0]["uid"] == first["uid"] and event["headers"]["X-Tenant"] == ["acme"]
    listed = conforms(_listed(api, "/events", 5), "GET", P + "/events", 200, "Event")
    duplicate = next(e for e in listed["content"] if e["is_duplicate_event"])
    assert duplicate["status"] == "Success"  # Convoy's enum has no "Duplicate"
    fmt = "%Y-%m-%dT%H:%M:%S"
    hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime(fmt)
    for params in ({"endpointId": first["uid"]}, {"ownerId": owner}, {"idempotencyKey": key}, {"query": "invoice"},
                   {"startDate": hour_ago, "endDate": (datetime.now(timezone.utc) + timedelta(hours=1)).strftime(fmt)},
                   {"perPage": 2}, {"perPage": 2, "next_page_cursor": listed["content"][1]["uid"]},
                   {"direction": "prev", "prev_page_cursor": listed["content"][-1]["uid"]}):
        conforms(api.get("/events", params=params), "GET", P + "/events", 200, "Event")

    deliveries = conforms(_listed(api, "/eventdeliveries", 1, eventId=single["uid"]), "GET", P + "/eventdeliveries",
                          200, "EventDelivery")["content"]
    [delivery] = deliveries
    assert delivery["headers"]["X-Tenant"] == ["acme"] and delivery["endpoint_metadata"]["uid"] == first["uid"]
    assert delivery["metadata"]["data"] == {"n": 1} and delivery["target_url"] == "https://example.com/a"
    for params in ({"endpointId": second["uid"]}, {"subscriptionId": delivery["subscription_id"]},
                   {"eventType": "invoice.paid"}, {"status": "Scheduled"}, {"idempotencyKey": key},
                   {"startDate": hour_ago}, {"perPage": 1}):
        conforms(api.get("/eventdeliveries", params=params), "GET", P + "/eventdeliveries", 200, "EventDelivery")
    conforms(api.get(f"/eventdeliveries/{delivery['uid']}"), "GET", P + "/eventdeliveries/{eventDeliveryID}", 200,
             "EventDelivery")

    # replay: a fresh delivery (new uid) for each subscription that matches now
    api.post("/subscriptions", {"name": "late", "endpoint_id": first["uid"], "filter_config": {"event_types": ["invoice.paid"]}})
    replayed = conforms(api.put(f"/events/{single['uid']}/replay", {}), "PUT", P + "/events/{eventID}/replay", 200, "Event")
    assert replayed["uid"] == single["uid"]
    after = _listed(api, "/eventdeliveries", 3, eventId=single["uid"]).json()["data"]["content"]
    assert delivery["uid"] in {d["uid"] for d in after} and len({d["uid"] for d in after}) == 3
    assert {d["subscription_id"] for d in after if d["uid"] != delivery["uid"]} >= {delivery["subscription_id"]}

    batch = conforms(api.post(f"/events/batchreplay?endpointId={second['uid']}", {}), "POST", P + "/events/batchreplay", 200)
    assert batch == "2 successful, 0 failed"  # the fan-out and the broadcast reached `second`
    _listed(api, "/eventdeliveries", 4, endpointId=second["uid"])
    by_key = conforms(api.post(f"/events/batchreplay?idempotencyKey={key}", {}), "POST", P + "/events/batchreplay", 200)
    assert by_key == "1 successful, 0 failed"  # the original; its duplicate is not replayed

    conforms(api.get("/events/nope"), "GET", P + "/events/{eventID}", 404)
    conforms(api.put("/events/nope/replay", {}), "PUT", P + "/events/{eventID}/replay", 404)
    conforms(api.get("/eventdeliveries/nope"), "GET", P + "/eventdeliveries/{eventDeliveryID}", 404)
    conforms(api.get("/events", params={"startDate": "yesterday"}), "GET", P + "/events", 400)
    conforms(api.post("/events/batchreplay?query=invoice", {}), "POST", P + "/events/batchreplay", 400)
    conforms(api.post("/events", {"endpoint_id": "nope", "event_type": "a", "data": {}}), "POST", P + "/events", 400)


def test_sources_and_webhook_events(incoming: Api, worker: Worker) -> None:
    api = incoming
    created = conforms(api.post("/sources", {"name": "gh", "type": "http", "provider": "github",
                                             "verifier": {"type": "hmac", "hmac": {"secret": SECRET}},
                                             "idempotency_keys": ["request.header.X-GitHub-Delivery"]}),
                       "POST", P + "/sources", 201, "Source")
    assert created["verifier"]["hmac"]["secret"] == SECRET and created["forward_headers"] == []
    uid = created["uid"]
    fetched = conforms(api.get(f"/sources/{uid}"), "GET", P + "/sources/{sourceID}", 200, "Source")
    assert fetched["verifier"]["hmac"]["secret"] == "[REDACTED]"
    for params in ({}, {"q": "gh"}, {"type": "http"}, {"provider": "github"}):
        conforms(api.get("/sources", params=params), "GET", P + "/sources", 200, "Source")
    conforms(api.put(f"/sources/{uid}", {"name": "gh", "type": "http", "verifier": fetched["verifier"]}),
             "PUT", P + "/sources/{sourceID}", 202, "Source")
    conforms(api.get("/sources/nope"), "GET", P + "/sources/{sourceID}", 404)
    conforms(api.post("/sources", {"name": "bad"}), "POST", P + "/sources", 400)
    gone = api.post("/sources", {"name": "gone", "type": "http"}).json()["data"]
    conforms(api.delete(f"/sources/{gone['uid']}"), "DELETE", P + "/sources/{sourceID}", 200)

    endpoint = api.post("/endpoints", {"name": "sink", "url": "https://example.com/in",
                                       "advanced_signatures": False}).json()["data"]
    assert endpoint["advanced_signatures"] is True  # Convoy: always, in an incoming project
    sub = conforms(api.post("/subscriptions", {"name": "s", "endpoint_id": endpoint["uid"], "source_id": uid}),
                   "POST", P + "/subscriptions", 201, "Subscription")
    assert sub["source_metadata"]["uid"] == uid and sub["source_metadata"]["verifier"]["hmac"]["secret"] == "[REDACTED]"

    body = b'{"action": "opened"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = httpx.post(f"{worker.url}/ingest/{created['mask_id']}", content=body,
                      headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature,
                               "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "pull_request"})
    assert sent.status_code == 200, sent.text
    events = conforms(_listed(api, "/events", 1, sourceId=uid), "GET", P + "/events", 200, "Event")["content"]
    assert events[0]["source_metadata"]["uid"] == uid and events[0]["headers"]["Content-Type"] == ["application/json"]
    event = conforms(api.get(f"/events/{events[0]['uid']}"), "GET", P + "/events/{eventID}", 200, "Event")
    [delivery] = conforms(_listed(api, "/eventdeliveries", 1, eventId=event["uid"]), "GET", P + "/eventdeliveries",
                          200, "EventDelivery")["content"]
    assert delivery["source_metadata"]["uid"] == uid
    conforms(api.put(f"/events/{event['uid']}/replay", {}), "PUT", P + "/events/{eventID}/replay", 200, "Event")
    _listed(api, "/eventdeliveries", 2, eventId=event["uid"])


def test_projects(worker: Worker) -> None:
    admin = httpx.Client(base_url=worker.url + "/api", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    created = conforms(admin.post("/v1/projects", json={"name": "p-" + secrets.token_hex(3), "type": "outgoing"}),
                       "POST", "/v1/projects", 201, "CreateProjectResponse")
    project, key = created["project"], created["api_key"]
    assert key["key"].startswith("CO.") and key["role"] == {"type": "project_admin", "project": project["uid"]}
    assert key["expires_at"] is None and key["key_type"] == "project"
    assert project["logo_url"] == "" and project["statistics"] is None and project["retained_events"] == 0
    config = project["config"]
    assert config["signature"]["versions"][0]["uid"] and config["ssl"] == {"enforce_secure_endpoints": False}
    assert config["meta_event"]["is_enabled"] is False and config["circuit_breaker"] is None

    owner = httpx.Client(base_url=worker.url + "/api", headers={"Authorization": f"Bearer {key['key']}"}, timeout=15)
    path = "/v1/projects/" + project["uid"]
    fetched = conforms(owner.get(path), "GET", "/v1/projects/{projectID}", 200, "Project")
    # The list (the SDK's Project.all): a project key sees its own project, the admin every one.
    org = {"orgID": "any"}
    assert [p["uid"] for p in conforms(owner.get("/v1/projects", params=org), "GET", "/v1/projects", 200, "Project")] \
        == [project["uid"]]
    assert project["uid"] in {p["uid"] for p in conforms(admin.get("/v1/projects"), "GET", "/v1/projects", 200, "Project")}
    conforms(httpx.get(worker.url + "/api/v1/projects", headers={"Authorization": "Bearer CO.nope.nope"}),
             "GET", "/v1/projects", 401)
    assert fetched["config"]["signature"]["versions"] == config["signature"]["versions"]  # stable across reads
    updated = conforms(owner.put(path, json={"name": "renamed", "logo_url": "https://example.com/logo.png",
                                             "config": {"max_payload_read_size": 1000,
                                                        "signature": {"versions": [{"hash": "SHA512", "encoding": "base64"}]}}}),
                       "PUT", "/v1/projects/{projectID}", 202, "Project")
    assert updated["name"] == "renamed" and updated["logo_url"] == "https://example.com/logo.png"
    assert updated["config"]["max_payload_read_size"] == 1000
    assert updated["config"]["signature"]["versions"][0]["hash"] == "SHA512"

    # errors: Convoy's envelope, with data null or absent
    conforms(admin.post("/v1/projects", json={"name": "no-type"}), "POST", "/v1/projects", 400)
    conforms(owner.post("/v1/projects", json={"name": "x", "type": "outgoing"}), "POST", "/v1/projects", 403)
    stranger_create = httpx.post(worker.url + "/api/v1/projects", json={"name": "x", "type": "outgoing"},
                                 headers={"Authorization": "Bearer CO.nope.nope"})
    conforms(stranger_create, "POST", "/v1/projects", 401)
    conforms(owner.put(path, json={"name": ""}), "PUT", "/v1/projects/{projectID}", 400)
    conforms(admin.get("/v1/projects/nope"), "GET", "/v1/projects/{projectID}", 404)
    stranger = httpx.get(worker.url + "/api" + path, headers={"Authorization": "Bearer CO.nope.nope"})
    conforms(stranger, "GET", "/v1/projects/{projectID}", 401)
    conforms(owner.delete(path), "DELETE", "/v1/projects/{projectID}", 200)


def test_every_route_was_checked() -> None:
    """The tests above reached every Convoy route convoy-stream serves, with each status they mean to."""
    routes = {(m, r) for m, r, _ in checked}
    expected = {("post", P + "/endpoints"), ("get", P + "/endpoints"), ("get", P + "/endpoints/{endpointID}"),
                ("put", P + "/endpoints/{endpointID}"), ("delete", P + "/endpoints/{endpointID}"),
                ("post", P + "/subscriptions"), ("get", P + "/subscriptions"),
                ("get", P + "/subscriptions/{subscriptionID}"), ("put", P + "/subscriptions/{subscriptionID}"),
                ("delete", P + "/subscriptions/{subscriptionID}"),
                ("post", P + "/sources"), ("get", P + "/sources"), ("get", P + "/sources/{sourceID}"),
                ("put", P + "/sources/{sourceID}"), ("delete", P + "/sources/{sourceID}"),
                ("post", P + "/events"), ("post", P + "/events/fanout"), ("post", P + "/events/broadcast"),
                ("post", P + "/events/dynamic"), ("get", P + "/events"), ("get", P + "/events/{eventID}"),
                ("put", P + "/events/{eventID}/replay"), ("post", P + "/events/batchreplay"),
                ("get", P + "/eventdeliveries"), ("get", P + "/eventdeliveries/{eventDeliveryID}"),
                ("post", "/v1/projects"), ("get", "/v1/projects"), ("get", P), ("put", P), ("delete", P)}
    assert expected <= routes, sorted(expected - routes)
