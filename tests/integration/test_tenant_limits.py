"""One tenant cannot hurt another, or the instance: every probe of issue 18 on a live worker.

A worker of its own with the production network policy (no private addresses) and small
bridge limits (2 workers per source, 4 per instance). Entities "stored before the limits
existed" are written straight into the config and ingest topics, as an older version
would have left them, through the same ConfigStore and Publisher the worker uses.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

from convoy_stream.ids import mask_id, new_ulid
from convoy_stream.limits import MAX_JSON_DEPTH
from convoy_stream.publisher import Publisher
from convoy_stream.records import DATA_OMITTED, IngestRecord
from tables.config import ConfigStore
from tests.conftest import ADMIN_TOKEN
from tests.support.workers import Worker, eventually

PER_SOURCE, PER_INSTANCE = 2, 4


@pytest.fixture(scope="module")
def guarded(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("tenant-limits"), "cs-ten-" + secrets.token_hex(4),
                    "", env={"CONVOY_STREAM_ALLOW_PRIVATE_NETWORKS": "false",
                             "CONVOY_STREAM_MAX_SOURCE_WORKERS": str(PER_SOURCE),
                             "CONVOY_STREAM_MAX_BRIDGE_WORKERS": str(PER_INSTANCE)}).start()
    try:
        yield worker.wait_healthy()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def admin(guarded: Worker) -> httpx.Client:
    token = (guarded.data_dir / "admin-token").read_text().strip()
    return httpx.Client(base_url=guarded.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def project(guarded: Worker, admin: httpx.Client, kind: str = "outgoing", **config: Any) -> httpx.Client:
    made = admin.post("/api/v1/projects", json={"name": f"t-{secrets.token_hex(3)}", "type": kind, "config": config})
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    client = httpx.Client(base_url=f"{guarded.url}/api/v1/projects/{data['project']['uid']}",
                          headers={"Authorization": f"Bearer {data['api_key']['key']}"}, timeout=30)
    client.uid = data["project"]["uid"]  # type: ignore[attr-defined]
    return client


@pytest.fixture(scope="module")
def outgoing(guarded: Worker, admin: httpx.Client) -> httpx.Client:
    return project(guarded, admin)


def refused(response: httpx.Response, *needles: str) -> None:
    """A 400 in Convoy's envelope whose message names what was wrong."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] is False and body["data"] is None, body
    for needle in needles:
        assert needle in body["message"], body


def healthy(worker: Worker) -> None:
    assert httpx.get(worker.url + "/health", timeout=10).status_code == 200


def kafka_source(workers: int, topic: str = "t") -> dict[str, Any]:
    return {"name": f"k-{secrets.token_hex(2)}", "type": "pub_sub",
            "pub_sub": {"type": "kafka", "workers": workers, "kafka": {"brokers": [], "topic_name": topic}}}


def nested(depth: int) -> Any:
    """A JSON value with `depth` levels of arrays (`[]` is 1)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def store_directly(worker: Worker, kind: str, value: dict[str, Any]) -> None:
    """Write a config entity as an older version (without today's validation) left it."""
    async def put() -> None:
        publisher = Publisher(worker.bootstrap, ingest_topic=f"{worker.app_id}-ingest",
                              dead_letter_topic=f"{worker.app_id}-dead-letters", partitions=8, timeout=10)
        await publisher.start()
        store = ConfigStore(worker.bootstrap, f"{worker.app_id}-config")
        try:
            await store.start(publisher.producer)
            await store.put(kind, value["uid"], value)
        finally:
            await store.stop()
            await publisher.stop()

    asyncio.run(put())


# -- 1. bridge workers -----------------------------------------------------------------------


def test_bridge_workers_are_limited_per_source_and_per_instance(guarded: Worker, outgoing: httpx.Client) -> None:
    refused(outgoing.post("/sources", json=kafka_source(100_000)), f"workers must be at most {PER_SOURCE}")
    first = outgoing.post("/sources", json=kafka_source(2))
    second = outgoing.post("/sources", json=kafka_source(2))
    assert first.status_code == 201 and second.status_code == 201, (first.text, second.text)
    refused(outgoing.post("/sources", json=kafka_source(1)), f"limit of {PER_INSTANCE} bridge workers")
    # A source's own workers do not count against its update.
    update = kafka_source(1) | {"name": "smaller"}
    assert outgoing.put(f"/sources/{first.json()['data']['uid']}", json=update).status_code == 202
    third = outgoing.post("/sources", json=kafka_source(1))
    assert third.status_code == 201, third.text
    for made in (first, second, third):
        assert outgoing.delete(f"/sources/{made.json()['data']['uid']}").status_code == 200
    healthy(guarded)


def test_a_source_stored_with_100000_workers_is_capped_and_a_restarted_worker_stays_healthy(
        guarded: Worker, outgoing: httpx.Client) -> None:
    uid = new_ulid()
    stamp = "2026-01-01T00:00:00.000Z"
    store_directly(guarded, "source", kafka_source(100_000, "legacy-" + uid) | {
        "uid": uid, "project_id": outgoing.uid, "mask_id": mask_id(16), "is_disabled": False, "url": "",  # type: ignore[attr-defined]
        "verifier": {"type": "noop"}, "created_at": stamp, "updated_at": stamp, "deleted_at": None})
    cap_line = f"bridge {uid} runs {PER_SOURCE} of 100000 workers"
    eventually(lambda: cap_line in guarded.log_path.read_text(errors="replace"), timeout=30)
    healthy(guarded)
    guarded.stop()
    before = guarded.log_path.read_text(errors="replace").count(cap_line)
    guarded.start().wait_healthy(timeout=90)
    eventually(lambda: guarded.log_path.read_text(errors="replace").count(cap_line) > before, timeout=30)
    for _ in range(5):  # still answering while its bridges run
        healthy(guarded)
        assert outgoing.get("/sources").status_code == 200
        time.sleep(0.5)
    assert outgoing.delete(f"/sources/{uid}").status_code == 200
    # The admin token: printed by the start that generated it, not by the restart.
    token = (guarded.data_dir / "admin-token").read_text().strip()
    log = guarded.log_path.read_text(errors="replace")
    assert log.count(token) == 1 and f"(in {(guarded.data_dir / 'admin-token').resolve()})" in log


# -- 2. JSON depth ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(outgoing: httpx.Client) -> dict[str, Any]:
    made = outgoing.post("/endpoints", json={"name": "e", "url": "https://example.com/hook"})
    assert made.status_code == 201, made.text
    return made.json()["data"]


@pytest.fixture(scope="module")
def noop_source(guarded: Worker, admin: httpx.Client) -> str:
    incoming = project(guarded, admin, "incoming")
    made = incoming.post("/sources", json={"name": "open", "type": "http"})
    assert made.status_code == 201, made.text
    return f"{guarded.url}/ingest/{made.json()['data']['mask_id']}"


def test_rest_event_data_deeper_than_the_limit_is_refused_and_at_the_limit_reads_back(
        outgoing: httpx.Client, endpoint: dict[str, Any]) -> None:
    def send(data_depth: int) -> httpx.Response:
        return outgoing.post("/events", json={"endpoint_id": endpoint["uid"], "event_type": "deep",
                                              "data": nested(data_depth)})

    for depth in (251, 252, 253, 254, MAX_JSON_DEPTH):  # the body is one level deeper than its data
        refused(send(depth), f"nested deeper than {MAX_JSON_DEPTH} levels")
    ok = send(MAX_JSON_DEPTH - 1)
    assert ok.status_code == 201, ok.text
    uid = ok.json()["data"]["uid"]
    found = eventually(lambda: outgoing.get(f"/events/{uid}").status_code == 200 and outgoing.get(f"/events/{uid}"))
    assert found.json()["data"]["data"] == nested(MAX_JSON_DEPTH - 1)


def test_webhook_bodies_deeper_than_the_limit_are_refused_in_the_envelope(noop_source: str) -> None:
    for depth in (251, 252, 253, 254, MAX_JSON_DEPTH + 1):
        body = "[" * depth + "]" * depth
        refused(httpx.post(noop_source, content=body, headers={"Content-Type": "application/json"}),
                f"nested deeper than {MAX_JSON_DEPTH} levels")
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert httpx.post(noop_source, content=at_limit, headers={"Content-Type": "application/json"}).status_code == 200


def test_an_event_stored_before_the_limit_is_listed_with_a_marker_not_a_500(
        guarded: Worker, outgoing: httpx.Client, endpoint: dict[str, Any]) -> None:
    # An event through the API first: the endpoint gets its subscription, so the deep one has deliveries.
    assert outgoing.post("/events", json={"endpoint_id": endpoint["uid"], "event_type": "a", "data": {}}).status_code == 201

    async def publish() -> str:
        publisher = Publisher(guarded.bootstrap, ingest_topic=f"{guarded.app_id}-ingest",
                              dead_letter_topic=f"{guarded.app_id}-dead-letters", partitions=8, timeout=10)
        await publisher.start()
        try:
            record = IngestRecord.build(
                uid=publisher.mint_event_id(outgoing.uid, None), project_id=outgoing.uid, kind="single",  # type: ignore[attr-defined]
                event_type="legacy.deep", data=nested(252), created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                endpoint_id=endpoint["uid"])
            await publisher.publish(record)
            return record.uid
        finally:
            await publisher.stop()

    uid = asyncio.run(publish())
    def newest() -> httpx.Response | None:
        answer = outgoing.get("/events", params={"perPage": 1})
        if answer.status_code != 200:
            return answer  # a 500 fails below, at once
        content = answer.json()["data"]["content"]
        return answer if content and content[0]["uid"] == uid else None

    page = eventually(newest, timeout=30)
    assert page.status_code == 200, page.text
    row = page.json()["data"]["content"][0]
    assert row["data"] is None and "nested deeper than" in row[DATA_OMITTED]
    whole = outgoing.get("/events")
    assert whole.status_code == 200 and len(whole.json()["data"]["content"]) >= 2, whole.text
    one = outgoing.get(f"/events/{uid}")
    assert one.status_code == 200 and one.json()["data"][DATA_OMITTED], one.text
    deliveries = outgoing.get("/eventdeliveries")
    assert deliveries.status_code == 200, deliveries.text
    deep = [d for d in deliveries.json()["data"]["content"] if d["event_id"] == uid]
    assert deep and deep[0]["data"] is None and deep[0][DATA_OMITTED]
    by_event = outgoing.get("/eventdeliveries", params={"eventId": uid})
    assert by_event.status_code == 200 and by_event.json()["data"]["content"][0][DATA_OMITTED]


# -- 3. payload size ---------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))  # type: ignore[union-attr]


def test_max_payload_read_size_cannot_exceed_what_an_event_can_store(guarded: Worker, admin: httpx.Client,
                                                                     outgoing: httpx.Client) -> None:
    refused(admin.post("/api/v1/projects", json={"name": "huge", "type": "incoming",
                                                 "config": {"max_payload_read_size": 10**12}}),
            "max_payload_read_size:must be at most 1000000")
    refused(admin.put(f"/api/v1/projects/{outgoing.uid}", json={"name": "x", "config": {  # type: ignore[attr-defined]
        "max_payload_read_size": 1_000_001}}), "at most 1000000")
    assert admin.post("/api/v1/projects", json={"name": "max", "type": "incoming",
                                                "config": {"max_payload_read_size": 1_000_000}}).status_code == 201


def test_a_chunked_upload_over_the_limit_is_413_without_the_worker_buffering_it(guarded: Worker) -> None:
    """A project stored with a 10^12 limit (before the bound) gets 1,000,000: a 64 MB chunked
    upload answers 413 and the worker's memory grows by far less than the upload."""
    stamp = "2026-01-01T00:00:00.000Z"
    pid, sid, mask = new_ulid(), new_ulid(), mask_id(16)
    store_directly(guarded, "project", {"uid": pid, "name": "legacy", "type": "incoming", "organisation_id": "",
                                        "config": {"max_payload_read_size": 10**12}, "created_at": stamp,
                                        "updated_at": stamp, "deleted_at": None})
    store_directly(guarded, "source", {"uid": sid, "project_id": pid, "name": "s", "type": "http", "mask_id": mask,
                                       "verifier": {"type": "noop"}, "is_disabled": False, "created_at": stamp,
                                       "updated_at": stamp, "deleted_at": None})
    assert guarded.process is not None
    baseline = rss_kb(guarded.process.pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(guarded.process.pid))  # type: ignore[union-attr]
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    upload_mb = 64

    def chunks() -> Iterator[bytes]:
        block = b"x" * (1024 * 1024)
        for _ in range(upload_mb):
            yield block

    try:
        answer = httpx.post(f"{guarded.url}/ingest/{mask}", content=chunks(), timeout=60)
    finally:
        done.set()
        sampler.join()
    assert answer.status_code == 413, answer.text
    assert answer.json() == {"status": False, "message": "request body too large", "data": None}
    grown_mb = (peak[0] - baseline) / 1024
    print(f"worker RSS {baseline / 1024:.0f} MB, peak during a {upload_mb} MB upload {peak[0] / 1024:.0f} MB")
    assert grown_mb < upload_mb / 4, f"worker grew by {grown_mb:.0f} MB during a {upload_mb} MB upload"
    healthy(guarded)


# -- 4. headers and URLs -------------------------------------------------------------------------


def test_header_injection_and_malformed_urls_are_refused(outgoing: httpx.Client, endpoint: dict[str, Any]) -> None:
    event = {"endpoint_id": endpoint["uid"], "event_type": "h", "data": {}}
    refused(outgoing.post("/events", json=event | {"custom_headers": {"X-A": "v\r\nInjected: 1"}}), "custom_headers:")
    refused(outgoing.post("/events", json=event | {"custom_headers": {"X-A": "v\nInjected: 1"}}), "control character")
    refused(outgoing.post("/events", json=event | {"custom_headers": {"X-A": "v\x00"}}), "control character")
    refused(outgoing.post("/events", json=event | {"custom_headers": {"Bad Name": "v"}}), "not a valid HTTP token")
    refused(outgoing.post("/events", json=event | {"custom_headers": {"X-Long": "v" * 9000}}), "longer than")
    refused(outgoing.post("/events/fanout", json={"owner_id": "o", "event_type": "h", "data": {},
                                                  "custom_headers": {"X:Y": "v"}}), "custom_headers:")
    refused(outgoing.post("/events", json=event | {"owner_id": 5}), '"owner_id"')
    assert outgoing.post("/events", json=event | {"custom_headers": {"X-Trace": "a b\tc"}}).status_code == 201
    for url in ("https://example.com/a b", "https://example.com/a\r\nX-Injected: 1", "ftp://example.com/a",
                "https://exa mple.com/", "javascript:alert(1)"):
        refused(outgoing.post("/endpoints", json={"name": "bad", "url": url}), "url:")
        refused(outgoing.post("/events/dynamic", json={"url": url, "event_type": "d", "data": {}}), "url:")
    refused(outgoing.post("/endpoints", json={"name": "a", "url": "https://example.com/x", "authentication": {
        "type": "api_key", "api_key": {"header_name": "X-Key\r\nInjected", "header_value": "v"}}}), "header_name:")
    refused(outgoing.post("/endpoints", json={"name": "a", "url": "https://example.com/x", "authentication": {
        "type": "api_key", "api_key": {"header_name": "X-Key", "header_value": "v\r\nInjected: 1"}}}), "header_value:")


# -- 5. network policy ---------------------------------------------------------------------------


INTERNAL_URLS = ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/",
                 "http://127.0.0.1:5005/_internal/query/event", "http://[::1]/", "http://2130706433/",
                 "http://0x7f000001/", "http://127.1/", "http://10.0.0.8/", "http://localhost:8080/",
                 "http://[::ffff:169.254.169.254]/")


def test_urls_into_the_instances_network_are_refused(outgoing: httpx.Client) -> None:
    for url in INTERNAL_URLS:
        refused(outgoing.post("/endpoints", json={"name": "i", "url": url}), "url:", "private")
        refused(outgoing.post("/events/dynamic", json={"url": url, "event_type": "d", "data": {}}), "url:", "private")
    assert outgoing.post("/endpoints", json={"name": "public", "url": "https://93.184.215.14/hook"}).status_code == 201


def test_broker_sources_cannot_point_into_the_instances_network(outgoing: httpx.Client) -> None:
    kafka = {"name": "k", "type": "pub_sub", "pub_sub": {"type": "kafka", "workers": 1, "kafka": {
        "brokers": ["kafka.example.com:9092", "127.0.0.1:9092"], "topic_name": "t"}}}
    refused(outgoing.post("/sources", json=kafka), "pub_sub.kafka.brokers:127.0.0.1")
    amqp = {"name": "a", "type": "pub_sub", "pub_sub": {"type": "amqp", "workers": 1, "amqp": {
        "host": "metadata.google.internal", "port": "5672", "queue": "q"}}}
    refused(outgoing.post("/sources", json=amqp), "pub_sub.amqp.host")
    sqs = {"name": "s", "type": "pub_sub", "pub_sub": {"type": "sqs", "workers": 1, "sqs": {
        "access_key_id": "a", "secret_key": "s", "default_region": "us-east-1", "queue_name": "q",
        "endpoint": "http://169.254.169.254/"}}}
    refused(outgoing.post("/sources", json=sqs), "pub_sub.sqs.endpoint")


# -- 6. every answer in the envelope -----------------------------------------------------------


def raw_request(worker: Worker, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def enveloped(body: bytes) -> dict[str, Any]:
    import orjson

    document = orjson.loads(body)
    assert document["status"] is False and document["data"] is None and document["message"], document
    return document


def test_aiohttps_own_refusals_are_in_the_envelope(guarded: Worker, outgoing: httpx.Client, noop_source: str) -> None:
    secret = "s3cr3t-" + secrets.token_hex(8)
    status, _, body = raw_request(guarded, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + secret.encode()
                                  + b"a" * 9000 + b"\r\n\r\n")
    assert status in (400, 431) and secret.encode() not in body
    enveloped(body)
    mask = noop_source.rsplit("/", 1)[1]
    status, _, body = raw_request(guarded, f"POST /ingest/{mask} HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
                                  "Content-Length: 4\r\nConnection: close\r\n\r\nabcd".encode())
    assert status == 400 and b"Brotli" not in body, body
    enveloped(body)
    missing = httpx.get(guarded.url + "/no/such/route")
    assert missing.status_code == 404 and enveloped(missing.content)
    wrong_method = httpx.delete(guarded.url + "/health")
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["Allow"]
    enveloped(wrong_method.content)
    media = outgoing.post("/events", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert media.status_code == 415 and enveloped(media.content)
    healthy(guarded)


def test_a_bad_query_on_an_indexed_list_leaves_no_coroutine_unawaited(guarded: Worker, outgoing: httpx.Client) -> None:
    refused(outgoing.get("/events", params={"idempotencyKey": "k", "startDate": "yesterday"}), "startDate")
    refused(outgoing.get("/eventdeliveries", params={"eventId": "e", "startDate": "yesterday"}), "startDate")
    healthy(guarded)
    assert "was never awaited" not in guarded.log_path.read_text(errors="replace")
