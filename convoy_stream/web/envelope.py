"""Convoy's response envelope and the one place errors become HTTP answers.

Every answer is `{"status": bool, "message": str, "data": ...}`. Handlers
raise `ApiError` for the client's mistakes (4xx); `KafkaUnavailable` and a
query no worker can answer now (`tables.queries.Unavailable`) become 503;
anything else is answered by `failures.unexpected_outcome`.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from tables.queries import Unavailable

from ..publisher import KafkaUnavailable, RecordTooLarge
from .failures import unexpected_outcome

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Convoy's 413 message (PR #2095), for a body over the project's limit or too large for Kafka.
TOO_LARGE = "request body too large"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=status,
        content_type="application/json", headers=headers,
    )


def ok(data: Any, message: str, status: int = 200) -> web.Response:
    return json_response({"status": True, "message": message, "data": data}, status)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"status": False, "message": message, "data": None}, status, headers)


#: Headers of aiohttp's own error answers that the client needs (405's `Allow`).
_KEPT_HEADERS = ("Allow", "Retry-After")


def _http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx (404, 405, 413, 415 ...) in the envelope, with the reason phrase only."""
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    message = TOO_LARGE if exc.status == 413 else (exc.reason or "request failed")
    return error(exc.status, message, headers)


async def enveloped(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`handler`'s answer, or its error in the envelope (the innermost layer of
    `front.front_middleware`)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.message, exc.headers)
    except RecordTooLarge:
        return error(413, TOO_LARGE)
    except KafkaUnavailable as exc:
        log.warning("kafka unavailable for %s %s: %s", request.method, request.path, exc)
        return error(503, "event store unavailable, retry later", {"Retry-After": "1"})
    except Unavailable as exc:
        return error(503, str(exc), {"Retry-After": "1"})
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _http_exception(exc)
        raise
    except Exception as exc:
        return error(*unexpected_outcome(request, exc))
