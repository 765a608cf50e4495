"""What the scenarios run against: projects, endpoints and an HMAC source created through the
real management API, and the pre-filled ingest backlog for the pipeline scenarios.

The backlog is built with the product's own `IngestRecord` and `Publisher.publish` (its
`_send` captured instead of sent), so keys, partitions and event ids are exactly what the
REST API would have produced; it is then written to Kafka in large batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

HMAC_HEADER = "X-Bench-Signature"


@dataclass
class Outgoing:
    project_id: str
    api_key: str
    endpoint_ids: list[str]


@dataclass
class Incoming:
    project_id: str
    api_key: str
    source_id: str
    mask_id: str
    secret: str
    endpoint_id: str


@dataclass
class Template:
    """Config created once through the API on the main worker; copied to other runs' apps."""

    app_id: str
    outgoing: Outgoing
    incoming: Incoming
    extra: dict[str, Any] = field(default_factory=dict)


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()["data"]


def create_project(base: str, admin_token: str, kind: str, name: str) -> tuple[str, str]:
    data = _check(httpx.post(f"{base}/api/v1/projects", json={"name": name, "type": kind},
                             headers={"Authorization": f"Bearer {admin_token}"}, timeout=30), "create project")
    return data["project"]["uid"], data["api_key"]["key"]


def make_outgoing(base: str, admin_token: str, endpoints: int = 3) -> Outgoing:
    project_id, key = create_project(base, admin_token, "outgoing", "bench-outgoing")
    auth = {"Authorization": f"Bearer {key}"}
    ids = []
    for i in range(endpoints):
        data = _check(httpx.post(f"{base}/api/v1/projects/{project_id}/endpoints", headers=auth, timeout=30,
                                 json={"name": f"bench-{i}", "url": f"https://example.com/bench/{i}",
                                       "owner_id": "bench-owner"}), "create endpoint")
        ids.append(data["uid"])
    # One event through the API gives each endpoint the subscription Convoy would create.
    for endpoint_id in ids:
        _check(httpx.post(f"{base}/api/v1/projects/{project_id}/events", headers=auth, timeout=30,
                          json={"endpoint_id": endpoint_id, "event_type": "bench.warmup", "data": {"warm": True}}),
               "warm-up event")
    return Outgoing(project_id, key, ids)


def make_incoming(base: str, admin_token: str) -> Incoming:
    project_id, key = create_project(base, admin_token, "incoming", "bench-incoming")
    auth = {"Authorization": f"Bearer {key}"}
    secret = secrets.token_hex(16)
    source = _check(httpx.post(f"{base}/api/v1/projects/{project_id}/sources", headers=auth, timeout=30, json={
        "name": "bench-hmac", "type": "http",
        "verifier": {"type": "hmac", "hmac": {"header": HMAC_HEADER, "hash": "SHA256", "secret": secret,
                                              "encoding": "hex"}},
    }), "create source")
    endpoint = _check(httpx.post(f"{base}/api/v1/projects/{project_id}/endpoints", headers=auth, timeout=30,
                                 json={"name": "bench-sink", "url": "https://example.com/bench/in"}), "create endpoint")
    _check(httpx.post(f"{base}/api/v1/projects/{project_id}/subscriptions", headers=auth, timeout=30, json={
        "name": "bench-sub", "endpoint_id": endpoint["uid"], "source_id": source["uid"],
        "filter_config": {"event_types": ["*"]},
    }), "create subscription")
    return Incoming(project_id, key, source["uid"], source["mask_id"], secret, endpoint["uid"])


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(endpoint_id: str, seq: int = 0, **extra: Any) -> dict[str, Any]:
    """A typical REST event: a few hundred bytes of JSON."""
    return {
        "endpoint_id": endpoint_id,
        "event_type": "invoice.paid",
        "data": {"invoice": f"in_{seq:08d}", "amount": 4200 + seq % 100, "currency": "usd",
                 "customer": {"id": "cus_bench", "email": "billing@example.com"}, "lines": [1, 2, 3], **extra},
    }


def webhook_body(seq: int = 0) -> bytes:
    return orjson.dumps({"id": f"evt_{seq:08d}", "type": "charge.succeeded", "created": 1700000000,
                         "data": {"object": {"id": "ch_bench", "amount": 4200, "currency": "usd",
                                             "customer": "cus_bench"}}})


# ----------------------------------------------------------------------------- backlog


@dataclass
class Backlog:
    items: list[tuple[bytes | None, bytes, int | None]]
    records: int
    expected_deliveries: int
    repeats: int
    build_seconds: float


def capturing_publisher(partitions: int) -> tuple[Any, list[tuple[bytes | None, bytes, int | None]]]:
    """The product's own `Publisher` with its Kafka write captured: (key, value, partition)
    exactly as the product would produce them, for producing in bulk afterwards."""
    from convoy_stream.publisher import Publisher

    captured: list[tuple[bytes | None, bytes, int | None]] = []

    class Capture(Publisher):
        async def _send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:  # type: ignore[override]
            captured.append((key, value, partition))

    return Capture("127.0.0.1:1", ingest_topic="ingest", dead_letter_topic="dead", partitions=partitions,
                   timeout=1.0), captured


def build_backlog(outgoing: Outgoing, records: int, *, repeat_ratio: float = 0.1, partitions: int = 8,
                  seed: int = 6) -> Backlog:
    """`records` single events spread over the endpoints, each with an idempotency key,
    `repeat_ratio` of them re-using the key of an earlier event (duplicates: no delivery)."""
    from convoy_stream.clock import timestamp
    from convoy_stream.ids import dedup_key
    from convoy_stream.records import IngestRecord

    publisher, captured = capturing_publisher(partitions)
    rng = random.Random(seed)
    project = outgoing.project_id
    keys: list[str] = []
    repeats = 0
    start = time.monotonic()

    async def build() -> None:
        nonlocal repeats
        for i in range(records):
            if keys and rng.random() < repeat_ratio:
                idem = keys[rng.randrange(len(keys))]
                repeats += 1
            else:
                idem = f"order-{i:07d}"
                keys.append(idem)
            dedup = dedup_key(project, idem)
            uid = publisher.mint_event_id(project, dedup)
            body = event_body(outgoing.endpoint_ids[i % len(outgoing.endpoint_ids)], i)
            record = IngestRecord(uid=uid, project_id=project, kind="single", event_type=body["event_type"],
                                  data=body["data"], created_at=timestamp(), endpoint_id=body["endpoint_id"],
                                  owner_id="", idempotency_key=idem, dedup_key=dedup, headers={}, forward_headers={})
            await publisher.publish(record)

    asyncio.run(build())
    if len(captured) != records:
        raise RuntimeError(f"backlog capture produced {len(captured)} records for {records} (Publisher changed?)")
    return Backlog(captured, records, len(keys), repeats, time.monotonic() - start)
