"""The app's own cluster over SASL_SSL (SCRAM) and mutual TLS, and start failures in one line.

One embedded broker with a SASL_SSL listener (SCRAM-SHA-512 user `alice`) and an SSL listener
that requires client certificates (`tests.support.secure_kafka`); certificates are made at test
time. Every worker here reaches Kafka only through those listeners: Faust's clients, the
publisher, the config view, topic creation and the own-cluster Kafka bridge all authenticate.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from devkafka.embedded_kafka import free_port
from convoy_stream.kafka_connection import KafkaConnection
from tests.support.secure_kafka import ELSEWHERE_HOST, USER, SecureKafka, secure_kafka
from tests.support.workers import Worker, eventually, read_topic

pytestmark = pytest.mark.integration

ADMIN = "test-admin-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    yield from secure_kafka(tmp_path_factory.mktemp("secure-kafka"))


def start_failure(env: dict[str, str], tmp: Path, timeout: float = 45) -> tuple[int, list[str], float]:
    """Run `convoy-stream worker` expecting it to stop: (exit code, output lines, seconds)."""
    full = {**os.environ, "CONVOY_STREAM_PORT": str(free_port()), "CONVOY_STREAM_DATA_DIR": str(tmp),
            "CONVOY_STREAM_APP_ID": "cs-fail-" + secrets.token_hex(3), "CONVOY_STREAM_ADMIN_TOKEN": ADMIN,
            "CONVOY_STREAM_BRIDGES": "0", **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "convoy_stream.cli", "worker"], env=full, timeout=timeout,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = [line for line in done.stdout.decode(errors="replace").splitlines() if line.strip()]
    return done.returncode, lines, time.monotonic() - started


def assert_one_line(code: int, lines: list[str], seconds: float, *expected: str) -> str:
    assert code != 0, lines
    assert seconds < 30, f"took {seconds:.1f}s"
    assert len(lines) == 1 and lines[0].startswith("convoy-stream: "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def project(worker: Worker) -> tuple[httpx.Client, str]:
    """A new project's API client (bearer: its key) and an endpoint id."""
    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=15)
    created = admin.post("/api/v1/projects", json={"name": "p", "type": "outgoing"})
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    api = httpx.Client(base_url=f"{worker.url}/api/v1/projects/{data['project']['uid']}",
                       headers={"Authorization": f"Bearer {data['api_key']['key']}"}, timeout=15)
    endpoint = api.post("/endpoints", json={"name": "e", "url": "https://example.com/hook", "owner_id": "o"})
    assert endpoint.status_code == 201, endpoint.text
    return api, endpoint.json()["data"]["uid"]


def delivered(kafka: KafkaConnection, app_id: str, event_id: str) -> dict[str, Any]:
    records = read_topic(kafka, f"{app_id}-deliveries", until=lambda rs: any(r["event_id"] == event_id for r in rs),
                         timeout=30)
    return next(r for r in records if r["event_id"] == event_id)


def test_sasl_ssl_scram_worker_takes_events_from_rest_and_direct_kafka_production(secure, tmp_path) -> None:
    kafka = secure.sasl_ssl()
    app_id = "cs-scram-" + secrets.token_hex(3)
    worker = Worker(kafka.bootstrap, tmp_path / "w", app_id, ADMIN, kafka=kafka).start()
    try:
        worker.wait_healthy(90)
        api, endpoint = project(worker)
        sent = api.post("/events", json={"endpoint_id": endpoint, "event_type": "a.b", "data": {"n": 1}})
        assert sent.status_code == 201, sent.text
        assert delivered(kafka, app_id, sent.json()["data"]["uid"])["endpoint_id"] == endpoint

        # A Kafka source on the app's own cluster consumes over the same SASL_SSL settings.
        topic = "orders-" + secrets.token_hex(3)
        source = api.post("/sources", json={"name": "orders", "type": "pub_sub", "pub_sub": {
            "type": "kafka", "workers": 1, "kafka": {"brokers": [], "topic_name": topic}}})
        assert source.status_code == 201, source.text

        async def produce() -> None:
            producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
            await producer.start()
            try:
                body = {"endpoint_id": endpoint, "event_type": "order.placed", "data": {"id": 7}}
                await producer.send_and_wait(topic, orjson.dumps(body), key=b"order-7")
            finally:
                await producer.stop()

        asyncio.run(produce())
        found = eventually(lambda: api.get("/events", params={"brokerMessageId": "order-7"}).json()["data"]["content"],
                           timeout=60)
        assert delivered(kafka, app_id, found[0]["uid"])["event_type"] == "order.placed"
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert kafka.sasl_password not in log


def test_wrong_scram_password_stops_the_worker_with_one_line(secure, tmp_path) -> None:
    env = secure.sasl_ssl(password="not-the-password").to_env()
    line = assert_one_line(*start_failure(env, tmp_path), f"authentication failed for user {USER}")
    assert "not-the-password" not in line


def test_mutual_tls_worker_takes_an_event(secure, tmp_path) -> None:
    kafka = secure.mutual_tls()
    app_id = "cs-mtls-" + secrets.token_hex(3)
    worker = Worker(kafka.bootstrap, tmp_path / "w", app_id, ADMIN, kafka=kafka,
                    env={"CONVOY_STREAM_BRIDGES": "0"}).start()
    try:
        worker.wait_healthy(90)
        api, endpoint = project(worker)
        sent = api.post("/events", json={"endpoint_id": endpoint, "event_type": "a.b", "data": {}})
        assert sent.status_code == 201, sent.text
        assert delivered(kafka, app_id, sent.json()["data"]["uid"])["endpoint_id"] == endpoint
    finally:
        worker.stop()


def test_untrusted_broker_certificate_stops_the_worker_with_one_line(secure, tmp_path) -> None:
    env = secure.mutual_tls(ca=secure.pki.other_ca).to_env()
    assert_one_line(*start_failure(env, tmp_path), "not trusted", "KAFKA_SSL_CA_FILE")


def test_missing_client_certificate_stops_the_worker_with_one_line(secure, tmp_path) -> None:
    env = secure.mutual_tls(client_cert=False).to_env()
    assert_one_line(*start_failure(env, tmp_path), "client certificate")


def test_unreachable_cluster_stops_the_worker_with_one_line(tmp_path) -> None:
    port = free_port()
    assert_one_line(*start_failure({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, tmp_path),
                    f"no Kafka broker reachable at 127.0.0.1:{port}")


def test_brokers_advertised_at_an_unreachable_address_stop_the_worker_with_one_line(secure, tmp_path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{secure.elsewhere_port}"}
    assert_one_line(*start_failure(env, tmp_path), f"advertises broker {ELSEWHERE_HOST}:{secure.elsewhere_port}",
                    "host name not resolved", "advertised.listeners")


@pytest.mark.parametrize("env, expected", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"},
     "KAFKA_SSL_CA_FILE=/nonexistent/ca.pem: no such file"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL=TLS is not one of"),
])
def test_a_wrong_setting_stops_the_worker_with_one_line(env, expected, tmp_path) -> None:
    assert_one_line(*start_failure({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", **env}, tmp_path), expected)
