"""Body timeouts, size limits, the rate-limit middleware and HTTP metrics on a tiny aiohttp app.

No worker and no Kafka: the same middlewares and `read_body` the worker uses,
mounted on a test server, driven by raw sockets where a well-behaved client
library would not misbehave enough.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from aiohttp.test_utils import TestClient, TestServer

from convoy_stream import metrics
from convoy_stream.web import ratelimit
from convoy_stream.web.body import read_body
from convoy_stream.web.body import read_json
from convoy_stream.web.envelope import ok
from convoy_stream.web.front import front_middleware

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

LIMIT = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def ingest(request: web.Request) -> web.Response:
    body = await read_body(request, LIMIT, read_timeout=0.3, total_timeout=1.0)
    return ok(len(body), "Event received")


async def rest(request: web.Request) -> web.Response:
    return ok(await read_json(request), "ok")


class Settings:
    """What `read_body` reads from the worker's settings when a handler gives no timeouts."""

    body_read_timeout = 0.3
    body_total_timeout = 1.0


class Convoy:
    settings = Settings()


def make_app(bucket: ratelimit.TokenBucket | None = None) -> web.Application:
    app = web.Application(middlewares=[front_middleware],
                          client_max_size=LIMIT)
    app[ratelimit.LIMITER_KEY] = bucket
    app["convoy"] = Convoy()
    app.router.add_post("/ingest/{maskID}", ingest)
    app.router.add_post("/api/v1/projects/{projectID}/events", rest)
    return app


@pytest.fixture
async def client():
    async with TestClient(TestServer(make_app())) as c:
        yield c


async def raw(client: TestClient, request: bytes, *, stall_before_last: int = 0,
              read_timeout: float = 5.0) -> tuple[int, bytes, float]:
    """Send bytes over a socket, all of them or all but the last `stall_before_last` (then wait
    for the answer without ever sending the rest); return (status, body, seconds)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    started = time.monotonic()
    try:
        writer.write(request[:len(request) - stall_before_last])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), read_timeout) if length else b""
        return status, body, time.monotonic() - started
    finally:
        writer.close()


def post(path: str, body: bytes, headers: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n").encode() + body


async def test_a_body_that_stalls_is_answered_408_within_the_read_timeout(client) -> None:
    status, body, took = await raw(client, post("/ingest/abc", b'{"a": 1}'), stall_before_last=3)
    assert status == 408 and orjson.loads(body) == {"status": False, "message": "request body not received in time", "data": None}
    assert took < 2


async def test_a_body_trickling_in_is_cut_off_by_the_total_timeout(client) -> None:
    """One byte every 0.1 s: every read succeeds, but the whole body never arrives in time."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    started = time.monotonic()
    writer.write(b"POST /ingest/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n")

    async def trickle() -> None:
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        sender.cancel()
        writer.close()
    assert int(head.split(b" ", 2)[1]) == 408
    assert time.monotonic() - started < 2.5


async def test_chunked_bodies_over_the_limit_are_413_without_content_length(client) -> None:
    chunk = b"x" * 600
    request = (b"POST /ingest/abc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
    status, body, _ = await raw(client, request)
    assert status == 413 and orjson.loads(body)["message"] == "request body too large"


async def test_content_length_over_the_limit_is_413_before_reading(client) -> None:
    status, _, _ = await raw(client, b"POST /ingest/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert status == 413


async def test_broken_chunked_framing_is_a_4xx(client) -> None:
    request = b"POST /ingest/abc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\nZZ\r\n"
    status, _, _ = await raw(client, request)
    assert 400 <= status < 500


async def test_a_gzip_body_that_does_not_decompress_is_a_4xx(client) -> None:
    status, _, _ = await raw(client, post("/ingest/abc", b"not gzip at all", "Content-Encoding: gzip\r\n"))
    assert 400 <= status < 500


async def test_rest_json_bodies_share_the_limits(client) -> None:
    status, body, _ = await raw(client, post("/api/v1/projects/p/events", b"{" * 2000, "Content-Type: application/json\r\n"))
    assert status == 413
    status, body, took = await raw(client, post("/api/v1/projects/p/events", b'{"a": 1}', "Content-Type: application/json\r\n"),
                                   stall_before_last=3)
    assert status == 408 and took < 2


async def test_over_the_rate_limit_is_429_with_retry_after_and_rate_headers() -> None:
    clock = Clock()
    async with TestClient(TestServer(make_app(ratelimit.TokenBucket(2, clock=clock)))) as c:
        first = await c.post("/ingest/abc", data=b"{}")
        assert first.status == 200
        assert first.headers["X-RateLimit-Limit"] == "2" and first.headers["X-RateLimit-Remaining"] == "1"
        assert (await c.post("/api/v1/projects/p/events", json={"a": 1})).status == 200
        refused = await c.post("/ingest/abc", data=b"{}")
        assert refused.status == 429
        assert await refused.json() == {"status": False, "message": "exceeded rate limit", "data": None}
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-RateLimit-Limit"] == "2" and refused.headers["X-RateLimit-Remaining"] == "0"
        clock.now += 0.5
        assert (await c.post("/ingest/abc", data=b"{}")).status == 200


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_by_route_template_not_raw_path(client) -> None:
    before = sample("convoy_stream_http_requests_total", method="POST", route="/ingest/{maskID}", status="200")
    unmatched = sample("convoy_stream_http_requests_total", method="GET", route="unmatched", status="404")
    masks = ("raw-mask-one", "raw-mask-two", "raw-mask-three")
    for mask in masks:
        assert (await client.post(f"/ingest/{mask}", data=b"{}")).status == 200
    assert (await client.get("/no/such/route")).status == 404
    assert sample("convoy_stream_http_requests_total", method="POST", route="/ingest/{maskID}", status="200") == before + 3
    assert sample("convoy_stream_http_requests_total", method="GET", route="unmatched", status="404") == unmatched + 1
    exposition = generate_latest(metrics.REGISTRY).decode()
    assert not any(mask in exposition for mask in masks) and "/no/such" not in exposition


async def test_bridge_reconnects_are_counted_per_broker() -> None:
    before = sample("convoy_stream_bridge_reconnects_total", broker="amqp")
    metrics.record_bridge_reconnect("amqp")
    metrics.record_bridge_reconnect("amqp")
    assert sample("convoy_stream_bridge_reconnects_total", broker="amqp") == before + 2
