"""Session-wide services: Kafka, a worker, and API helpers for integration tests."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.support.brokers import pubsub_emulator, rabbitmq, sqs_server  # noqa: F401
from tests.support.kafka import kafka_broker, kafka_cluster, kafka_factory  # noqa: F401
from tests.support.workers import Worker

ADMIN_TOKEN = "test-admin-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def app_id() -> str:
    return "cs-test-" + secrets.token_hex(4)


@pytest.fixture(scope="session")
def worker(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory, app_id: str) -> Iterator[Worker]:
    w = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("worker"), app_id, ADMIN_TOKEN).start()
    try:
        yield w.wait_healthy()
    finally:
        w.stop()


class Api:
    """A tiny client bound to one worker and one project key."""

    def __init__(self, base: str, token: str, project_id: str = "") -> None:
        self.base = base
        self.project_id = project_id
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=15)

    def p(self, path: str) -> str:
        return f"/api/v1/projects/{self.project_id}{path}"

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.http.post(self.p(path), json=body, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.p(path), **kw)

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.http.put(self.p(path), json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(self.p(path))


@pytest.fixture(scope="session")
def make_project(worker: Worker) -> Callable[..., Api]:
    def make(kind: str = "outgoing", base: str | None = None, **config: Any) -> Api:
        admin = httpx.Client(base_url=base or worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response = admin.post("/api/v1/projects", json={"name": f"p-{secrets.token_hex(3)}", "type": kind, "config": config})
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return Api(base or worker.url, data["api_key"]["key"], data["project"]["uid"])

    return make


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
