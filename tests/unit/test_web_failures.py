"""Exceptions no handler expected (`web/failures.py`): 503 while the worker stops, else 500.

The same error middleware the worker mounts, on a tiny aiohttp app whose handlers raise
what a stopping worker's handlers raise (issue 19: these answered 500 with a traceback).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaTimeoutError, ProducerClosed

from convoy_stream.web.front import front_middleware

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


class FaustApp:
    should_stop = False


class Convoy:
    def __init__(self) -> None:
        self.app = FaustApp()


def raising(exc: Exception) -> Any:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    return handler


def fetch(path: str, *, stopping: bool = False) -> tuple[int, dict[str, Any], dict[str, str]]:
    async def scenario() -> tuple[int, dict[str, Any], dict[str, str]]:
        app = web.Application(middlewares=[front_middleware])
        app["convoy"] = convoy = Convoy()
        convoy.app.should_stop = stopping
        app.router.add_get("/api/v1/projects/{projectID}/events/{eventID}", raising(RuntimeError("Session is closed")))
        app.router.add_post("/api/v1/projects/{projectID}/events", raising(ProducerClosed()))
        app.router.add_post("/api/v1/projects/{projectID}/endpoints", raising(KafkaTimeoutError()))
        app.router.add_get("/api/v1/projects/{projectID}/sources", raising(KeyError("secret-looking detail")))
        async with TestClient(TestServer(app)) as client:
            method = client.post if path.endswith(("/events", "/endpoints")) else client.get
            response = await method(path)
            return response.status, await response.json(), dict(response.headers)

    return asyncio.run(scenario())


@pytest.mark.parametrize("path", ["/api/v1/projects/p1/events/e1", "/api/v1/projects/p1/events"])
def test_what_a_stopping_worker_closed_answers_503_with_convoys_envelope(path: str) -> None:
    status, body, headers = fetch(path)
    assert (status, body) == (503, {"status": False, "message": "worker is stopping, retry later", "data": None})
    assert headers["Retry-After"] == "1"


def test_any_unexpected_error_while_the_worker_stops_answers_503() -> None:
    status, body, _ = fetch("/api/v1/projects/p1/sources", stopping=True)
    assert (status, body["message"]) == (503, "worker is stopping, retry later")


def test_a_kafka_error_a_handler_let_through_answers_503() -> None:
    status, body, headers = fetch("/api/v1/projects/p1/endpoints")
    assert (status, body["message"], headers["Retry-After"]) == (503, "event store unavailable, retry later", "1")


def test_a_bug_answers_500_without_detail_and_logs_one_line_with_the_route(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="convoy_stream"):
        status, body, _ = fetch("/api/v1/projects/p1/sources")
    assert (status, body) == (500, {"status": False, "message": "internal server error", "data": None})
    [line] = [r for r in caplog.records if r.name.startswith("convoy_stream")]
    message = line.getMessage()
    assert line.levelno == logging.ERROR and line.exc_info is None and "\n" not in message
    assert "GET /api/v1/projects/{projectID}/sources" in message and "KeyError" in message
    assert "test_web_failures.py" in message  # where it was raised
