"""Limits and metrics on a live worker: ingest rate limit, slow clients, `/metrics`.

A worker of its own with the instance ingest rate limit on
(`CONVOY_STREAM_INGEST_RATE=5`), short body timeouts (1 s per read, 3 s in all)
and a 2 s keep-alive (which is also how long aiohttp waits for request headers).
Slow clients are raw sockets; while they stall, other clients are served.
"""

from __future__ import annotations

import re
import secrets
import select
import socket
import time
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.workers import Worker, eventually, read_to_end

RATE = 5


@pytest.fixture(scope="module")
def limited(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("limits-worker"), "cs-lim-" + secrets.token_hex(4),
                    ADMIN_TOKEN, env={"CONVOY_STREAM_INGEST_RATE": str(RATE), "CONVOY_STREAM_BODY_READ_TIMEOUT": "1",
                                      "CONVOY_STREAM_BODY_TIMEOUT": "3", "CONVOY_STREAM_KEEPALIVE_TIMEOUT": "2",
                                      "CONVOY_STREAM_BRIDGES": "0"}).start()
    try:
        yield worker.wait_healthy()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def setup(limited: Worker) -> dict[str, Any]:
    http = httpx.Client(base_url=limited.url, timeout=15)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made = {}
    for kind in ("incoming", "outgoing"):
        response = http.post("/api/v1/projects", headers=admin, json={"name": f"lim-{kind}", "type": kind})
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        made[kind] = {"uid": data["project"]["uid"], "auth": {"Authorization": f"Bearer {data['api_key']['key']}"}}
    incoming, outgoing = made["incoming"], made["outgoing"]
    source = http.post(f"/api/v1/projects/{incoming['uid']}/sources", headers=incoming["auth"],
                       json={"name": "open", "type": "http"}).json()["data"]
    signed = http.post(f"/api/v1/projects/{incoming['uid']}/sources", headers=incoming["auth"], json={
        "name": "signed", "type": "http",
        "verifier": {"type": "hmac", "hmac": {"header": "X-Sig", "hash": "SHA256", "secret": "k", "encoding": "hex"}}}).json()["data"]
    endpoint = http.post(f"/api/v1/projects/{outgoing['uid']}/endpoints", headers=outgoing["auth"],
                         json={"name": "e", "url": "https://example.com/e"}).json()["data"]
    return {"http": http, "admin": admin, "incoming": incoming, "outgoing": outgoing, "source": source, "signed": signed,
            "endpoint": endpoint}


def wait_for_full_bucket() -> None:
    time.sleep(1.2)  # the bucket holds one second's worth of tokens


def test_webhooks_and_rest_events_share_the_instance_rate_limit(setup: dict[str, Any], limited: Worker) -> None:
    http, source, outgoing = setup["http"], setup["source"], setup["outgoing"]
    wait_for_full_bucket()
    started = time.monotonic()
    answers = []
    for i in range(3 * RATE):
        if i % 2:
            answers.append(http.post(f"/ingest/{source['mask_id']}", json={"i": i}))
        else:
            answers.append(http.post(f"/api/v1/projects/{outgoing['uid']}/events", headers=outgoing["auth"],
                                     json={"endpoint_id": setup["endpoint"]["uid"], "event_type": "t", "data": {"i": i}}))
    elapsed = time.monotonic() - started
    accepted = [r for r in answers if r.status_code in (200, 201)]
    refused = [r for r in answers if r.status_code == 429]
    assert len(accepted) + len(refused) == len(answers), [r.status_code for r in answers]
    assert RATE <= len(accepted) <= RATE + RATE * elapsed + 1
    assert refused, "nothing was rate limited"
    for r in refused:
        assert r.json() == {"status": False, "message": "exceeded rate limit", "data": None}
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["X-RateLimit-Limit"] == str(RATE) and r.headers["X-RateLimit-Remaining"] == "0"
    assert all("X-RateLimit-Remaining" in r.headers for r in accepted)
    # a refused request stored nothing: the ingest topic, read to its end once every answer is
    # in, holds exactly the accepted requests (nothing is answered before it is durable)
    projects = {setup["incoming"]["uid"], outgoing["uid"]}
    stored = [r["data"]["i"] for r in read_to_end(limited.bootstrap, f"{limited.app_id}-ingest")
              if r.get("project_id") in projects and isinstance(r.get("data"), dict) and "i" in r["data"]]
    sent = [(i, r.status_code) for i, r in enumerate(answers)]
    assert sorted(stored) == [i for i, status in sent if status in (200, 201)], sent
    wait_for_full_bucket()
    assert http.post(f"/ingest/{source['mask_id']}", json={"after": "wait"}).status_code == 200


def test_reads_and_config_writes_are_not_rate_limited(setup: dict[str, Any]) -> None:
    http, incoming = setup["http"], setup["incoming"]
    for _ in range(4 * RATE):
        assert http.get(f"/api/v1/projects/{incoming['uid']}/sources", headers=incoming["auth"]).status_code == 200
    assert http.get("/health").status_code == 200


def test_a_flood_is_logged_within_the_request_logs_bound_per_source(setup: dict[str, Any]) -> None:
    """Turned-away requests (here rate limited, and badly signed) are in the request log, at
    most `BURST` plus `RATE_PER_SECOND` a second of them per source (`request_log.py`)."""
    from convoy_stream import request_log

    http, incoming, signed = setup["http"], setup["incoming"], setup["signed"]
    wait_for_full_bucket()
    started = time.monotonic()
    statuses = [http.post(f"/ingest/{signed['mask_id']}", content=b'{"bad": "signature"}', headers={"X-Sig": "00"}).status_code
                for _ in range(60)]
    elapsed = time.monotonic() - started
    assert set(statuses) == {400, 429}, statuses

    def logged() -> list[dict[str, Any]]:
        return http.get(f"/api/v1/projects/{incoming['uid']}/requests", headers=incoming["auth"],
                        params={"sourceId": signed["uid"], "perPage": 100}).json()["data"]["content"]

    entries = eventually(lambda: (found := logged()) and {e["cause"] for e in found} == {"verification_failed", "rate_limited"}
                         and found, timeout=30)
    assert len(entries) <= request_log.BURST + request_log.RATE_PER_SECOND * elapsed + 1, (len(entries), elapsed)
    assert len(entries) < len(statuses)


def raw_socket(worker: Worker) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", worker.port), timeout=10)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


def test_a_stalled_body_is_answered_408_while_other_clients_are_served(limited: Worker, setup: dict[str, Any]) -> None:
    http, source, outgoing = setup["http"], setup["source"], setup["outgoing"]
    wait_for_full_bucket()
    stalled = []
    for path, extra in ((f"/ingest/{source['mask_id']}", ""),
                        (f"/api/v1/projects/{outgoing['uid']}/endpoints", f"Authorization: {outgoing['auth']['Authorization']}\r\n")):
        sock = raw_socket(limited)
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
                     f"Content-Length: 100\r\n\r\n{{\"a\":".encode())
        stalled.append((sock, time.monotonic()))
    # meanwhile the worker answers everyone else: before the stalled requests are answered
    for _ in range(3):
        assert http.get("/health").status_code == 200
        assert not select.select([sock for sock, _ in stalled], [], [], 0)[0], "answered only after the stalled bodies"
    for sock, started in stalled:
        answer = read_answer(sock)
        took = time.monotonic() - started
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 <= took < 3, took


def test_a_trickling_body_is_cut_off_by_the_total_body_timeout(limited: Worker, setup: dict[str, Any]) -> None:
    wait_for_full_bucket()
    sock = raw_socket(limited)
    started = time.monotonic()
    sock.sendall(f"POST /ingest/{setup['source']['mask_id']} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
    sock.settimeout(0.3)
    answer = b""
    for _ in range(40):  # a byte every 0.3 s: no single read times out, the whole body never arrives in time
        try:
            sock.sendall(b" ")
            answer += sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionError:
            break
        if answer:
            break
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 2.5 <= time.monotonic() - started < 5


def test_slow_headers_are_dropped_after_the_keepalive_timeout(limited: Worker, setup: dict[str, Any]) -> None:
    """Slowloris: many connections sending headers a few bytes at a time; none holds on."""
    http = setup["http"]
    socks = [raw_socket(limited) for _ in range(50)]
    started = time.monotonic()
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.05)
    closed_at: dict[int, float] = {}
    while len(closed_at) < len(socks) and time.monotonic() - started < 8:
        for i, sock in enumerate(socks):
            if i in closed_at:
                continue
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                if sock.recv(1) == b"":
                    closed_at[i] = time.monotonic() - started
            except TimeoutError:
                pass
            except ConnectionError:
                closed_at[i] = time.monotonic() - started
        assert http.get("/health").status_code == 200  # everyone else is still served
        time.sleep(0.2)
    for sock in socks:
        sock.close()
    assert len(closed_at) == len(socks), f"{len(socks) - len(closed_at)} slow connections still open"
    assert max(closed_at.values()) < 5


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_need_the_admin_token_and_count_what_happened(limited: Worker, setup: dict[str, Any]) -> None:
    http, admin, signed, source = setup["http"], setup["admin"], setup["signed"], setup["source"]
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=setup["incoming"]["auth"]).status_code == 403
    before = http.get("/metrics", headers=admin)
    assert before.status_code == 200 and before.headers["Content-Type"].startswith("text/plain")
    app_id = limited.app_id

    wait_for_full_bucket()
    for _ in range(3):
        assert http.post(f"/ingest/{signed['mask_id']}", json={"a": 1}, headers={"X-Sig": "00"}).status_code == 400
    assert http.post(f"/ingest/{source['mask_id']}", json={"counted": True}).status_code == 200
    http.post(f"/ingest/{source['mask_id']}/", json={})  # unmatched: trailing slash

    def after() -> str | None:
        text = http.get("/metrics", headers=admin).text
        consumed = metric(text, "convoy_stream_records_consumed_total", topic=f"{app_id}-ingest")
        return text if consumed >= metric(before.text, "convoy_stream_records_consumed_total", topic=f"{app_id}-ingest") + 1 else None

    text = eventually(after)
    old = before.text
    assert metric(text, "convoy_stream_webhook_verification_failures_total", source_id=signed["uid"]) == \
        metric(old, "convoy_stream_webhook_verification_failures_total", source_id=signed["uid"]) + 3
    assert metric(text, "convoy_stream_http_requests_total", method="POST", route="/ingest/{maskID}", status="400") >= 3
    assert metric(text, "convoy_stream_http_requests_total", route="/metrics", status="401") >= 1
    assert metric(text, "convoy_stream_records_produced_total", topic=f"{app_id}-ingest") >= \
        metric(old, "convoy_stream_records_produced_total", topic=f"{app_id}-ingest") + 1
    assert metric(text, "convoy_stream_ingest_rate_limited_total") >= 1  # from the rate-limit test
    assert "convoy_stream_bridge_reconnects_total" in text and "convoy_stream_dead_letters_total" in text
    assert signed["mask_id"] not in text and source["mask_id"] not in text  # routes by template only
    # consumer lag: one gauge per ingest partition this worker owns, and it drains to zero
    lag_lines = [line for line in text.splitlines() if line.startswith("convoy_stream_consumer_lag{")]
    assert lag_lines and all(f'topic="{app_id}-ingest"' in line for line in lag_lines)
    eventually(lambda: metric(http.get("/metrics", headers=admin).text, "convoy_stream_consumer_lag") == 0, timeout=10)
    assert re.search(r"^process_resident_memory_bytes \d", text, re.M)
