"""The other supported Kafka line: everything else in the suite runs on the embedded default
(4.x, the pom's version); this module runs the whole path once on Apache Kafka 3.9.

A private 3.9 broker, one worker and one API process: a REST event with an idempotency key
reaches its delivery record and a second copy is a duplicate, a verified webhook reaches the
pipeline, and a worker restarted from an empty disk recovers its tables from the changelogs
(lookups through the API still answer).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Callable

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually, read_to_end, read_topic

pytestmark = pytest.mark.integration

#: The newest 3.9 release (KRaft, Java 17, SCRAM users at format time: what devkafka accepts).
KAFKA_3 = "3.9.2"


def test_the_whole_path_works_on_kafka_3_9(kafka_factory: Callable[..., Any],
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    kafka = kafka_factory(version=KAFKA_3)
    assert kafka.version == KAFKA_3
    app_id = "cs-k39-" + secrets.token_hex(3)
    worker = Worker(kafka.bootstrap, tmp_path_factory.mktemp("k39-worker"), app_id, ADMIN_TOKEN).start()
    api = Worker(kafka.bootstrap, tmp_path_factory.mktemp("k39-api"), app_id, ADMIN_TOKEN,
                 command=("api", "--processes", "1")).start()
    try:
        worker.wait_healthy(120)
        api.wait_healthy(120)
        admin = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)

        # REST, through the API process: accepted after acks=all, deduplicated by key, delivered.
        data = admin.post("/api/v1/projects", json={"name": "k39-out", "type": "outgoing"}).json()["data"]
        out = Api(api.url, data["api_key"]["key"], data["project"]["uid"])
        endpoint = out.post("/endpoints", {"name": "e", "url": "https://example.com/hook", "owner_id": "o"})
        assert endpoint.status_code == 201, endpoint.text
        endpoint_id = endpoint.json()["data"]["uid"]
        body = {"endpoint_id": endpoint_id, "event_type": "t", "data": {"on": KAFKA_3}, "idempotency_key": "k39"}
        first = out.post("/events", body)
        assert first.status_code == 201, first.text
        uid = first.json()["data"]["uid"]

        # Webhook, HMAC-verified, through the API process.
        data = admin.post("/api/v1/projects", json={"name": "k39-in", "type": "incoming"}).json()["data"]
        inc = Api(api.url, data["api_key"]["key"], data["project"]["uid"])
        secret = "k39-secret"
        source = inc.post("/sources", {"name": "hooks", "type": "http", "verifier": {
            "type": "hmac", "hmac": {"header": "X-Signature", "hash": "SHA256", "secret": secret, "encoding": "hex"}}})
        assert source.status_code == 201, source.text
        source_data = source.json()["data"]
        sink = inc.post("/endpoints", {"name": "sink", "url": "https://example.com/in"}).json()["data"]
        assert inc.post("/subscriptions", {"name": "s", "endpoint_id": sink["uid"], "source_id": source_data["uid"],
                                           "filter_config": {"event_types": ["*"]}}).status_code == 201
        hook = b'{"marker":"kafka-3.9"}'
        signature = hmac.new(secret.encode(), hook, hashlib.sha256).hexdigest()
        assert httpx.post(f"{api.url}/ingest/{source_data['mask_id']}", content=hook,
                          headers={"X-Signature": signature}, timeout=15).status_code == 200

        records = read_topic(kafka.bootstrap, f"{app_id}-deliveries", timeout=90,
                             until=lambda rs: any(r.get("event_id") == uid for r in rs)
                             and any(r.get("source_id") == source_data["uid"] for r in rs))
        assert [r["data"] for r in records if r.get("event_id") == uid] == [{"on": KAFKA_3}]
        assert [r["data"] for r in records if r.get("source_id") == source_data["uid"]] == [{"marker": "kafka-3.9"}]

        # A second copy of the key is stored as a duplicate, with no delivery of its own.
        again = out.post("/events", body)
        assert again.status_code == 201, again.text
        copy = again.json()["data"]["uid"]
        stored = eventually(lambda: (r := out.get(f"/events/{copy}")).status_code == 200 and r.json()["data"],
                            timeout=60)
        assert stored["is_duplicate_event"] is True
        assert out.get(f"/events/{uid}").json()["data"]["is_duplicate_event"] is False

        # A worker restarted from an empty disk rebuilds its tables from the 3.9 changelogs.
        worker.stop()
        fresh = Worker(kafka.bootstrap, tmp_path_factory.mktemp("k39-worker-2"), app_id, ADMIN_TOKEN).start()
        try:
            fresh.wait_healthy(120)
            found = eventually(lambda: (r := out.get(f"/events/{uid}")).status_code == 200 and r.json()["data"],
                               timeout=90)
            assert found["uid"] == uid and found["data"] == {"on": KAFKA_3}
            by_key = out.get("/events", params={"idempotencyKey": "k39"})
            assert sorted(e["uid"] for e in by_key.json()["data"]["content"]) == sorted([uid, copy])
            # ...and still knows the key: a third copy is a duplicate too.
            third = out.post("/events", body).json()["data"]["uid"]
            assert eventually(lambda: (r := out.get(f"/events/{third}")).status_code == 200
                              and r.json()["data"]["is_duplicate_event"], timeout=60) is True
            delivered = read_to_end(kafka.bootstrap, f"{app_id}-deliveries")
            assert [r["event_id"] for r in delivered if r.get("event_id") in (uid, copy, third)] == [uid]
        finally:
            fresh.stop()
    finally:
        api.stop()
        worker.stop()
