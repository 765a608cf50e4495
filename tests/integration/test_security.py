"""Nobody gets in, and nothing secret gets out: tenant isolation, credentials, secrets, bad bodies.

A worker of its own (own app id and topics, so its log holds only this module's
traffic) with the broker bridges running, pointed at loopback ports where no
broker listens, so the bridges' connection errors are in the log too.

- Every project-scoped route registered in `routes.py` is tried with another
  project's key (401/403/404, never 2xx) and with the caller's own project id
  but the victim's entity ids (404, or an answer that contains none of the
  victim's data); the victim's entities are unchanged afterwards.
- Without credentials only `/health`, `/openapi.json` and `/ingest/*` answer.
- Secrets (verifier secrets, broker credentials, endpoint secrets and auth
  headers, API keys, the admin token) never show in an answer after creation,
  in the worker's log, or in the config/ingest topics; stored event headers
  have `Authorization`, `Cookie` and the api_key header redacted.
- Oversized, deeply nested, non-UTF-8 and truncated bodies get 4xx (or 200 for
  webhooks, which accept any bytes), never 5xx, and the worker stays healthy.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devkafka.embedded_kafka import free_port
from convoy_stream.web import routes
from tests.conftest import ADMIN_TOKEN
from tests.support.workers import Worker, all_committed, eventually, read_to_end

PROJECT = "/api/v1/projects/{projectID}"
PUBLIC_URL = "https://hooks.example.test/convoy"  # the worker is behind a proxy that strips /convoy
OPEN_ROUTES = {"/health", "/openapi.json", "/ingest/{maskID}"}
#: Dashboard pages anyone may load: the sign-in form and the stylesheet and script.
UI_OPEN_ROUTES = {("GET", "/ui/signin"), ("GET", "/ui/static/{name}")}


def marker(purpose: str) -> str:
    """A secret value nobody could produce by accident."""
    return f"S3cr3t-{purpose}-{secrets.token_hex(8)}"


def registered_routes() -> list[tuple[str, str]]:
    """(method, template) of every route the worker serves, from the same `add_routes` it uses."""
    app = web.Application()
    routes.add_routes(app.router)
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                   if r.method != "HEAD" and r.resource is not None})


@dataclass
class Tenant:
    uid: str
    key: str
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Env:
    worker: Worker
    http: httpx.Client
    answers: list[str] = field(default_factory=list)  # every answer body after creation, for the secret scan

    @property
    def url(self) -> str:
        return self.worker.url

    def call(self, method: str, path: str, token: str | None = None, *, record: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(method, self.url + path, headers=headers, **kw)
        if record:
            self.answers.append(f"{method} {path} -> {response.status_code} {dict(response.headers)!r} {response.text}")
        return response

    def project(self, kind: str) -> Tenant:
        response = self.call("POST", "/api/v1/projects", ADMIN_TOKEN, record=False,
                             json={"name": f"sec-{secrets.token_hex(3)}", "type": kind, "config": {"max_payload_read_size": 1_000_000}})
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return Tenant(data["project"]["uid"], data["api_key"]["key"])

    def create(self, tenant: Tenant, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.call("POST", f"/api/v1/projects/{tenant.uid}/{collection}", tenant.key, record=False, json=body)
        assert response.status_code == 201, response.text
        return response.json()["data"]


@pytest.fixture(scope="module")
def env(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    nobody = free_port()  # bridges connect here and are refused: errors in the log, no traffic leaves the host
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("security-worker"), "cs-sec-" + secrets.token_hex(4),
                    ADMIN_TOKEN, env={"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{nobody}",
                                      "CONVOY_STREAM_LOG_LEVEL": "debug",  # the secret scan reads every line
                                      "CONVOY_STREAM_PUBLIC_URL": PUBLIC_URL}).start()
    try:
        worker.wait_healthy()
        yield Env(worker, httpx.Client(timeout=20))
    finally:
        worker.stop()


def populate(env: Env, tenant: Tenant, owner: str = "owner-1") -> Tenant:
    """An endpoint, a subscription, an http source, an event and its delivery."""
    endpoint = env.create(tenant, "endpoints", {"name": "ep", "url": "https://example.com/in", "owner_id": owner})
    subscription = env.create(tenant, "subscriptions", {"name": "sub", "endpoint_id": endpoint["uid"]})
    source = env.create(tenant, "sources", {"name": "src", "type": "http"})
    response = env.call("POST", f"/api/v1/projects/{tenant.uid}/events", tenant.key, record=False,
                        json={"endpoint_id": endpoint["uid"], "event_type": "a.b", "data": {"tenant": tenant.uid}})
    assert response.status_code == 201, response.text
    event_id = response.json()["data"]["uid"]

    def delivery() -> str | None:
        r = env.call("GET", f"/api/v1/projects/{tenant.uid}/eventdeliveries", tenant.key, record=False,
                     params={"eventId": event_id})
        content = r.json()["data"]["content"] if r.status_code == 200 else []
        return content[0]["uid"] if content else None

    # A webhook the source turns away (a method it does not take), for the request log's routes.
    assert env.call("DELETE", f"/ingest/{source['mask_id']}", record=False).status_code == 405

    def turned_away() -> str | None:
        r = env.call("GET", f"/api/v1/projects/{tenant.uid}/requests", tenant.key, record=False)
        content = r.json()["data"]["content"] if r.status_code == 200 else []
        return content[0]["uid"] if content else None

    tenant.ids = {"endpoints": endpoint["uid"], "subscriptions": subscription["uid"], "sources": source["uid"],
                  "eventID": event_id, "deliveryID": eventually(delivery), "maskID": source["mask_id"],
                  "requestID": eventually(turned_away, timeout=30)}
    return tenant


@pytest.fixture(scope="module")
def tenants(env: Env) -> tuple[Tenant, Tenant]:
    return populate(env, env.project("outgoing"), "victim-owner"), populate(env, env.project("outgoing"), "attacker-owner")


def fill(template: str, project: Tenant, entities: Tenant) -> str:
    """The template with `project`'s uid and `entities`' ids; an unknown parameter fails loudly."""
    collection = template.split("/")[5] if template.count("/") >= 5 else ""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "projectID":
            return project.uid
        if name == "uid":
            return entities.ids[collection]
        return entities.ids[name]  # eventID, deliveryID; a new parameter needs a line here

    return re.sub(r"{(\w+)}", value, template)


def write_body(method: str, template: str, victim: Tenant) -> dict[str, Any] | None:
    """A body that would succeed for the right caller, so only authorization can stop it."""
    if method not in ("POST", "PUT"):
        return None
    tail = template.removeprefix(PROJECT)
    bodies: dict[str, dict[str, Any]] = {
        "": {"name": "pwned"},
        "/endpoints": {"name": "pwned", "url": "https://example.com/pwned"},
        "/subscriptions": {"name": "pwned", "endpoint_id": victim.ids["endpoints"]},
        "/sources": {"name": "pwned", "type": "http"},
        "/sources/test_function": {"payload": {"event_type": "pwned", "data": {}}, "type": "body",
                                   "function": "function transform(p) { return p }"},
        "/events": {"endpoint_id": victim.ids["endpoints"], "event_type": "pwned", "data": {"x": 1}},
        "/events/fanout": {"owner_id": "victim-owner", "event_type": "pwned", "data": {"x": 1}},
        "/events/broadcast": {"event_type": "pwned", "data": {"x": 1}},
        "/events/dynamic": {"url": "https://example.com/pwned", "event_type": "pwned", "data": {"x": 1}},
        "/events/batchreplay": {}, "/events/{eventID}/replay": {},  # no body: the path and query say it all
        "/requests/{requestID}/retry": {},
    }
    return bodies[re.sub(r"/{\w+}$", "", tail)]


PROJECT_ROUTES = [(m, t) for m, t in registered_routes() if t.startswith(PROJECT)]


def snapshot(env: Env, victim: Tenant) -> dict[str, Any]:
    base = f"/api/v1/projects/{victim.uid}"
    seen = {"project": env.call("GET", base, victim.key, record=False).json()}
    for collection in ("endpoints", "subscriptions", "sources"):
        seen[collection] = env.call("GET", f"{base}/{collection}", victim.key, record=False).json()
    seen["events"] = env.call("GET", f"{base}/events", victim.key, record=False).json()["data"]["content"]
    return seen


def test_every_project_route_exists_in_this_test() -> None:
    """The route list comes from the router, so a new project route is attacked automatically."""
    assert len(PROJECT_ROUTES) >= 24, PROJECT_ROUTES


def test_another_projects_key_is_refused_on_every_project_route(env: Env, tenants: tuple[Tenant, Tenant]) -> None:
    victim, attacker = tenants
    before = snapshot(env, victim)
    allowed = []
    for method, template in PROJECT_ROUTES:
        path = fill(template, victim, victim)
        response = env.call(method, path, attacker.key, json=write_body(method, template, victim))
        if response.status_code not in (401, 403, 404):
            allowed.append((method, path, response.status_code, response.text[:200]))
        assert victim.uid not in response.text or response.status_code >= 400
    assert allowed == []
    settled(env)
    assert snapshot(env, victim) == before


def test_own_project_id_with_another_projects_ids_finds_nothing(env: Env, tenants: tuple[Tenant, Tenant]) -> None:
    """Path ids and body references to another project's entities are not followed."""
    victim, attacker = tenants
    before = snapshot(env, victim)
    leaked = []
    victim_ids = {v for k, v in victim.ids.items() if k != "maskID"}
    for method, template in PROJECT_ROUTES:
        path = fill(template, attacker, victim)
        if path == fill(template, attacker, attacker) and method in ("DELETE",):
            continue  # the attacker's own project: deleting it proves nothing
        response = env.call(method, path, attacker.key, json=write_body(method, template, victim))
        text = response.text
        if response.status_code < 400 and any(uid in text for uid in victim_ids - set(path.split("/"))):
            leaked.append((method, path, response.status_code, text[:300]))
        if "{" in template.removeprefix(PROJECT) and method in ("GET", "PUT", "DELETE"):
            assert response.status_code == 404, (method, path, response.status_code, text)
    # list filters naming the victim's entities return nothing of the victim's
    for path, params in ((f"/api/v1/projects/{attacker.uid}/eventdeliveries", {"eventId": victim.ids["eventID"]}),
                         (f"/api/v1/projects/{attacker.uid}/events", {"endpointId": victim.ids["endpoints"]}),
                         (f"/api/v1/projects/{attacker.uid}/subscriptions", {"endpointId": victim.ids["endpoints"]})):
        response = env.call("GET", path, attacker.key, params=params)
        assert response.status_code == 200 and response.json()["data"]["content"] == [], response.text
    assert leaked == []
    settled(env)
    assert snapshot(env, victim) == before


def settled(env: Env) -> None:
    """Anything a request slipped into the pipeline is processed: every answered event write
    is in the ingest topic, and the worker has committed (so stored) all of it. Config writes
    are applied before they are answered."""
    all_committed(env.worker.bootstrap, env.worker.app_id, "ingest")


def test_project_keys_cannot_use_admin_routes(env: Env, tenants: tuple[Tenant, Tenant]) -> None:
    _, attacker = tenants
    assert env.call("POST", "/api/v1/projects", attacker.key, json={"name": "x", "type": "outgoing"}).status_code == 403
    assert env.call("GET", "/metrics", attacker.key).status_code == 403


@pytest.mark.parametrize("method,template", registered_routes())
def test_only_health_openapi_and_ingest_answer_without_credentials(env: Env, tenants: tuple[Tenant, Tenant],
                                                                   method: str, template: str) -> None:
    victim, _ = tenants
    if template.startswith("/_internal/"):
        path = template.replace("{name}", "event")
    elif template.startswith("/ui"):
        path = fill(template.replace("{name}", "app.css"), victim, victim)
    else:
        path = fill(template, victim, victim) if "{" in template else template
    body = write_body(method, template, victim) if template.startswith(PROJECT) else None
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
                    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}, {"Authorization": "Bearer CO.x.y"}):
        if method == "GET" and template == "/ingest/{maskID}":
            continue  # the CRC challenge answers 400 for a source that is not an X/Twitter one
        response = env.call(method, path, headers=headers, json=body if method in ("POST", "PUT", "PATCH") else None)
        if template.startswith("/ui"):
            # The dashboard's session is its cookie, never a header: without one, a page sends
            # the browser to sign in (or refuses a form), and shows nothing of the project.
            if (method, template) in UI_OPEN_ROUTES:
                assert response.status_code == 200, (method, path)
            else:
                assert response.status_code in (303, 403), (method, path, response.status_code)
                assert response.headers.get("Location", "/ui/signin").startswith(("/ui/signin", "/ui/projects"))
            assert not any(uid in response.text for uid in victim.ids.values()), (method, path)
        elif template in OPEN_ROUTES:
            assert response.status_code < 400, (method, path, headers, response.text)
        else:
            assert response.status_code == 401, (method, path, headers, response.status_code, response.text)


# -- secrets ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_world(env: Env) -> dict[str, Any]:
    """Sources and endpoints holding distinctive secrets; returns the secrets and the ids."""
    s = {name: marker(name) for name in ("hmac", "previous", "basic", "apikey", "github", "sqs", "sqs_id", "kafka",
                                          "amqp", "google", "endpoint", "endpoint_auth", "webhook_auth", "cookie")}
    tenant = env.project("incoming")
    outgoing = env.project("outgoing")
    s["project_key"], s["outgoing_key"], s["admin"] = tenant.key, outgoing.key, ADMIN_TOKEN
    nobody = free_port()
    google_key = base64.b64encode(json.dumps({
        "type": "service_account", "project_id": "local", "private_key_id": "k1", "private_key": s["google"],
        "client_email": "x@local.invalid", "token_uri": f"http://127.0.0.1:{nobody}/token"}).encode()).decode()
    s["google_b64"] = google_key
    sources = {
        "hmac": {"verifier": {"type": "hmac", "hmac": {
            "header": "X-Sig", "hash": "SHA256", "secret": s["hmac"], "encoding": "hex",
            "previous_secret": s["previous"], "previous_secret_expires_at": "2999-01-01T00:00:00Z"}}},
        "basic": {"verifier": {"type": "basic_auth", "basic_auth": {"username": "user", "password": s["basic"]}}},
        "apikey": {"verifier": {"type": "api_key", "api_key": {"header_name": "X-Api-Key", "header_value": s["apikey"]}}},
        "github": {"provider": "github", "verifier": {"hmac": {"secret": s["github"]}}},
    }
    made = {name: env.create(tenant, "sources", {"name": name, "type": "http", **body}) for name, body in sources.items()}
    pub_sub = {
        "sqs": {"type": "sqs", "sqs": {"access_key_id": s["sqs_id"], "secret_key": s["sqs"], "default_region": "us-east-1",
                                       "queue_name": "q", "endpoint": f"http://127.0.0.1:{nobody}"}},
        "kafka": {"type": "kafka", "kafka": {"brokers": [f"127.0.0.1:{nobody}"], "topic_name": "t",
                                             "auth": {"type": "plain", "username": "u", "password": s["kafka"]}}},
        "amqp": {"type": "amqp", "amqp": {"host": "127.0.0.1", "port": str(nobody), "queue": "q",
                                          "auth": {"user": "u", "password": s["amqp"]}}},
        "google": {"type": "google", "google": {"service_account": google_key, "subscription_id": "s", "project_id": "local"}},
    }
    for name, config in pub_sub.items():
        made[name] = env.create(outgoing, "sources", {"name": name, "type": "pub_sub", "pub_sub": config})
    endpoint = env.create(outgoing, "endpoints", {
        "name": "ep", "url": "https://example.com/hook", "secret": s["endpoint"],
        "authentication": {"type": "api_key", "api_key": {"header_name": "X-Auth", "header_value": s["endpoint_auth"]}}})
    return {"secrets": s, "tenant": tenant, "outgoing": outgoing, "sources": made, "endpoint": endpoint}


def sign(secret: str, body: bytes) -> str:
    import hmac as _hmac

    return _hmac.new(secret.encode(), body, "sha256").hexdigest()


def test_secrets_never_appear_after_creation_in_answers_logs_or_topics(env: Env, secret_world: dict[str, Any]) -> None:
    s, tenant, outgoing = secret_world["secrets"], secret_world["tenant"], secret_world["outgoing"]
    sources, endpoint = secret_world["sources"], secret_world["endpoint"]
    env.answers.clear()
    base_in, base_out = f"/api/v1/projects/{tenant.uid}", f"/api/v1/projects/{outgoing.uid}"

    # reads, lists, updates that send the redaction marker back, invalid updates
    for name, source in sources.items():
        owner, base = (outgoing, base_out) if source["type"] == "pub_sub" else (tenant, base_in)
        shown = env.call("GET", f"{base}/sources/{source['uid']}", owner.key).json()["data"]
        assert env.call("PUT", f"{base}/sources/{source['uid']}", owner.key, json=shown).status_code == 202
        env.call("PUT", f"{base}/sources/{source['uid']}", owner.key, json={**shown, "type": "nope"})
        env.call("PUT", f"{base}/sources/{source['uid']}", owner.key, json={**shown, "verifier": {"type": "hmac", "hmac": {}}})
    for base, owner in ((base_in, tenant), (base_out, outgoing)):
        env.call("GET", f"{base}/sources", owner.key)
        env.call("GET", base, owner.key)
    shown = env.call("GET", f"{base_out}/endpoints/{endpoint['uid']}", outgoing.key).json()["data"]
    assert env.call("PUT", f"{base_out}/endpoints/{endpoint['uid']}", outgoing.key, json=shown).status_code == 202
    env.call("GET", f"{base_out}/endpoints", outgoing.key)

    # webhooks: failing verifications of every kind, then good ones carrying credentials in headers
    ingest = lambda name, body=b'{"a":1}', **headers: env.call(  # noqa: E731
        "POST", f"/ingest/{sources[name]['mask_id']}", content=body, headers={"Content-Type": "application/json", **headers})
    assert ingest("hmac", **{"X-Sig": sign("wrong", b'{"a":1}')}).status_code == 400
    assert ingest("hmac", **{"X-Sig": "zz-not-hex"}).status_code == 400
    assert ingest("basic", Authorization="Basic " + base64.b64encode(b"user:" + s["webhook_auth"].encode()).decode()).status_code == 400
    assert ingest("apikey", **{"X-Api-Key": s["webhook_auth"]}).status_code == 400
    assert ingest("github", **{"X-Hub-Signature-256": "sha256=" + sign("wrong", b'{"a":1}')}).status_code == 400
    good = b'{"marker":"redaction"}'
    ok_hmac = ingest("hmac", good, **{"X-Sig": sign(s["hmac"], good), "Cookie": f"session={s['cookie']}",
                                      "Authorization": f"Bearer {s['webhook_auth']}"})
    ok_basic = ingest("basic", good, Authorization="Basic " + base64.b64encode(b"user:" + s["basic"].encode()).decode())
    ok_apikey = ingest("apikey", good, **{"X-Api-Key": s["apikey"], "Proxy-Authorization": f"Basic {s['webhook_auth']}"})
    assert (ok_hmac.status_code, ok_basic.status_code, ok_apikey.status_code) == (200, 200, 200)

    # the stored events keep the header names, with credentials redacted
    def stored_events() -> list[dict[str, Any]] | None:
        r = env.call("GET", f"{base_in}/events", tenant.key)
        content = r.json()["data"]["content"] if r.status_code == 200 else []
        return content if len(content) >= 3 else None

    events = eventually(stored_events)
    headers = [e["headers"] for e in events]
    assert any(h.get("Authorization") == ["[REDACTED]"] and h.get("Cookie") == ["[REDACTED]"] for h in headers)
    assert any(h.get("X-Api-Key") == ["[REDACTED]"] and h.get("Proxy-Authorization") == ["[REDACTED]"] for h in headers)
    for event in events:
        env.call("GET", f"{base_in}/events/{event['uid']}", tenant.key)
        env.call("GET", f"{base_in}/eventdeliveries", tenant.key, params={"eventId": event["uid"]})
    env.call("GET", f"{base_out}/dead-letters", outgoing.key)
    env.call("GET", "/metrics", ADMIN_TOKEN)
    env.call("GET", "/openapi.json")
    # the bridges' connection errors (which name hosts and users) are in the log before it is scanned
    log = env.worker.log_path
    for name in ("sqs", "kafka", "amqp", "google"):
        line = f"bridge {sources[name]['uid']} ({name}) connect failed"
        eventually(lambda: line in log.read_text(errors="replace"), timeout=30)
    # the deployment's cluster secret (worker-to-worker calls) lives in the config topic only
    config = json.dumps(read_all(env.worker.bootstrap, f"{env.worker.app_id}-config"))
    found = re.search(r'"internal_secret": "([^"]+)"', config)
    assert found, "no cluster secret in the config topic"
    s["cluster"] = found.group(1)

    # API keys: the secret part never appears (the public mask `CO.<mask>` may)
    s["project_key_secret"], s["outgoing_key_secret"] = s["project_key"].split(".")[-1], s["outgoing_key"].split(".")[-1]
    shown_as_ids = {"sqs_id"}  # an AWS access key id is an identifier: answers may show it, logs may not
    expect_absent("API answers", "\n".join(env.answers), {k: v for k, v in s.items() if k not in shown_as_ids})
    text = log.read_text(errors="replace")
    assert " DEBUG" in text or "[DEBUG]" in text, "the worker does not log at debug level"
    expect_absent("the worker log", text, s)
    # events, deliveries and dead letters carry request headers: every credential is redacted there
    for topic in ("ingest", "deliveries", "dead-letters"):
        expect_absent(f"topic {topic}", json.dumps(read_all(env.worker.bootstrap, f"{env.worker.app_id}-{topic}")), s)


def expect_absent(where: str, text: str, secrets_by_name: dict[str, str]) -> None:
    found = {k: text[max(0, text.find(v) - 300): text.find(v) + 80] for k, v in secrets_by_name.items() if v in text}
    if found:
        pytest.fail(f"secrets found in {where}: {found}", pytrace=False)


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic` up to its current end (values decoded as JSON where they are)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def consume() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or
                                                             await _partitions(consumer, topic))]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[Any] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for messages in (await consumer.getmany(timeout_ms=300)).values():
                    for message in messages:
                        raw = message.value or b""
                        try:
                            found.append(json.loads(raw))
                        except ValueError:
                            found.append(raw.decode("utf-8", "replace"))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(consume())


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def test_api_keys_and_the_admin_token_are_stored_only_as_digests(env: Env, secret_world: dict[str, Any]) -> None:
    s = secret_world["secrets"]
    text = json.dumps(read_all(env.worker.bootstrap, f"{env.worker.app_id}-config"))
    for key in (s["project_key"], s["outgoing_key"]):
        mask, secret = key.split(".")[1], key.split(".")[2]
        assert mask in text and secret not in text
    assert ADMIN_TOKEN not in text


# -- bad bodies -----------------------------------------------------------------------------------


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=20)


def bad_bodies() -> st.SearchStrategy[bytes]:
    truncated = st.tuples(json_values(), st.floats(0, 1)).map(
        lambda t: (b := json.dumps({"event_type": "x", "data": t[0], "name": "n", "url": "https://e.com"}).encode())[:int(len(b) * t[1])])
    nested = st.sampled_from([b"[", b'{"a":', b'{"data":[', b"[{}", b'{"a":[{"b":']).flatmap(
        lambda open_: st.integers(200, 120_000).map(lambda n: open_ * n))
    invalid_utf8 = st.binary(min_size=1, max_size=200).map(lambda b: b'{"event_type":"' + b + b'\xff\xfe","data":{"k":"\xc3\x28"}}')
    oversized = st.integers(1, 4).map(lambda k: b'{"data":"' + b"x" * ((1 << 20) * k) + b'"}')
    return st.one_of(st.binary(max_size=3000), truncated, nested, invalid_utf8, oversized,
                     st.just(b""), st.just(b"\x00" * 1000), st.just(b"\xef\xbb\xbf{}"), st.just(b"1e400"),
                     st.just(b'{"data": 123456789012345678901234567890, "event_type": "big"}'))


CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xx",
                                 "text/plain", "", "application/json; charset=utf-16", "application/xml"])


@pytest.fixture(scope="module")
def bad_body_targets(env: Env) -> dict[str, Any]:
    incoming = env.project("incoming")
    outgoing = populate(env, env.project("outgoing"))
    plain = env.create(incoming, "sources", {"name": "plain", "type": "http"})
    parsing = env.create(incoming, "sources", {"name": "parsing", "type": "http", "idempotency_keys": [
        "request.body.id", "request.header.X-Id", "request.query.id"], "event_type_location": "request.body.type"})
    small = env.project("incoming")
    env.call("PUT", f"/api/v1/projects/{small.uid}", small.key, record=False, json={"name": "small", "config": {"max_payload_read_size": 100}})
    limited = env.create(small, "sources", {"name": "limited", "type": "http"})
    return {"ingest": [f"/ingest/{plain['mask_id']}", f"/ingest/{parsing['mask_id']}?id=1", f"/ingest/{limited['mask_id']}"],
            "rest": [(f"/api/v1/projects/{outgoing.uid}/{p}", outgoing.key) for p in
                     ("events", "events/fanout", "events/broadcast", "events/dynamic", "endpoints", "subscriptions", "sources")]
            + [("/api/v1/projects", ADMIN_TOKEN), (f"/api/v1/projects/{outgoing.uid}", outgoing.key)]}


def test_bad_bodies_get_4xx_never_5xx_and_the_worker_stays_healthy(env: Env, bad_body_targets: dict[str, Any]) -> None:
    log_start = env.worker.log_path.stat().st_size
    seen: list[tuple[str, int]] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=bad_bodies(), content_type=CONTENT_TYPES, target=st.integers(0, 100), method=st.sampled_from(["POST", "PUT", "PATCH"]))
    def check(body: bytes, content_type: str, target: int, method: str) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        ingest = bad_body_targets["ingest"]
        rest = bad_body_targets["rest"]
        if target % 2:
            path = ingest[target % len(ingest)]
            response = env.call(method, path, content=body, headers=headers, record=False)
            assert response.status_code in (200, 400, 413), (path, response.status_code, response.text[:200])
        else:
            path, key = rest[target % len(rest)]
            method = "PUT" if path.count("/") == 4 else "POST"
            response = env.call(method, path, key, content=body, headers=headers, record=False)
            assert 400 <= response.status_code < 500 or response.status_code in (201, 202), (path, response.status_code, response.text[:200])
        seen.append((path, response.status_code))

    check()
    assert {code for _, code in seen} >= {400, 413}
    assert env.call("GET", "/health", record=False).status_code == 200
    tail = env.worker.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "unhandled error" not in tail and "Traceback" not in tail, tail[-3000:]


def test_truncated_and_abandoned_requests_leave_the_worker_healthy(env: Env, bad_body_targets: dict[str, Any]) -> None:
    """Clients that promise more bytes than they send, then hang up mid-body."""
    log_start = env.worker.log_path.stat().st_size
    host, port = "127.0.0.1", env.worker.port
    for path in bad_body_targets["ingest"][:1] + [bad_body_targets["rest"][0][0]]:
        for sent in (0, 10, 5000):
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             f"Authorization: Bearer {bad_body_targets['rest'][0][1]}\r\nContent-Length: 100000\r\n\r\n".encode()
                             + b"{" * sent)
                sock.shutdown(socket.SHUT_WR)  # hang up: the body will never be complete
                sock.settimeout(2)
                try:
                    answer = sock.recv(200)
                except (TimeoutError, ConnectionError):
                    answer = b""
                assert not answer.startswith(b"HTTP/1.1 5"), answer
    assert env.call("GET", "/health", record=False).status_code == 200
    time.sleep(0.5)
    tail = env.worker.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "unhandled error" not in tail and "Traceback" not in tail, tail[-3000:]


# -- signatures on the paths the provider tests do not take ------------------------------------------


def test_twilio_behind_a_proxy_verifies_against_the_public_url(env: Env) -> None:
    """Twilio signs the URL it called, the proxy's; the worker sees another host and path.
    With `CONVOY_STREAM_PUBLIC_URL` set the signature checks out, and one computed for the
    URL the worker itself sees, or for another query, is refused."""
    from twilio.request_validator import RequestValidator

    tenant = env.project("incoming")
    token = marker("twilio")
    source = env.create(tenant, "sources", {"name": "twilio", "type": "http", "provider": "twilio",
                                            "verifier": {"type": "hmac", "hmac": {"secret": token}}})
    public = f"{PUBLIC_URL}/ingest/{source['mask_id']}"
    assert source["url"] == public  # what the user gives Twilio
    form = {"From": "+15550100", "Body": f"hello {secrets.token_hex(4)}", "MessageSid": "SM" + secrets.token_hex(16)}
    body = urlencode(form).encode()
    validator = RequestValidator(token)

    def send(signed_url: str, query: str = "?tenant=1") -> httpx.Response:
        return env.call("POST", f"/ingest/{source['mask_id']}{query}", record=False, content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(signed_url, form)})

    assert send(f"{env.url}/ingest/{source['mask_id']}?tenant=1").status_code == 400  # the URL behind the proxy
    assert send(f"{public}?tenant=2").status_code == 400  # another query than the one called
    assert send(f"{public}?tenant=1").status_code == 200
    assert ingested(env, tenant) == [form]


def test_a_signature_over_the_form_body_as_json_is_accepted_and_nothing_else(env: Env) -> None:
    """Convoy's compatibility fallback: a form body whose signature does not match its raw
    bytes is verified once more against the JSON the event stores (`{field: first value}`,
    keys sorted). A signature over that JSON is accepted; the same signature on a form
    whose fields differ, or a signature over anything else, is refused and stores nothing."""
    tenant = env.project("incoming")
    secret = marker("form")
    source = env.create(tenant, "sources", {"name": "form", "type": "http", "verifier": {"type": "hmac", "hmac": {
        "header": "X-Sig", "hash": "SHA256", "secret": secret, "encoding": "hex"}}})
    tag = secrets.token_hex(4)
    form = f"tag={tag}&amount=42&currency=EUR".encode()
    as_json = json.dumps({"amount": "42", "currency": "EUR", "tag": tag}, separators=(",", ":")).encode()

    def send(body: bytes, signature: str) -> httpx.Response:
        return env.call("POST", f"/ingest/{source['mask_id']}", record=False, content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Sig": signature})

    forged = f"tag={tag}&amount=4200&currency=EUR".encode()
    assert send(forged, sign(secret, as_json)).status_code == 400  # the JSON signed is not this form's
    assert send(form, sign(secret, as_json.replace(b"42", b"43"))).status_code == 400
    assert send(form, sign("another secret", as_json)).status_code == 400
    assert send(form, sign(secret, as_json)).status_code == 200
    assert ingested(env, tenant) == [{"amount": "42", "currency": "EUR", "tag": tag}]


def ingested(env: Env, tenant: Tenant) -> list[Any]:
    """The data of every event of `tenant` in the ingest topic (all answers are in: all durable)."""
    return [r["data"] for r in read_to_end(env.worker.bootstrap, f"{env.worker.app_id}-ingest")
            if r.get("project_id") == tenant.uid]
