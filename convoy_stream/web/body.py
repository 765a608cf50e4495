"""Reading a request body without letting a client hold the worker.

One function for every body the API reads (REST JSON bodies and webhook
bodies): streamed, so a size limit holds whether or not Content-Length was
sent (413), and timed, so a slow client (slowloris) cannot keep a handler
waiting forever (408):

- every read must receive some bytes within `body_read_timeout` (default 10 s);
- the whole body must arrive within `body_total_timeout` (default 60 s).

A body the HTTP parser cannot decode (bad chunked framing, a Content-Encoding
that does not decompress, a Content-Length the client never fills before
closing) is a 400. Slow or endless *headers* are not seen here: aiohttp closes
a connection that has not sent a complete request within the keep-alive timeout
(`CONVOY_STREAM_KEEPALIVE_TIMEOUT`, default 75 s), and caps header lines (8190
bytes) and count (128) on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..validation import ValidationError, decode_json_body
from .envelope import TOO_LARGE, ApiError

CHUNK = 64 * 1024
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_TOTAL_TIMEOUT = 60.0

TOO_SLOW = "request body not received in time"
MALFORMED = "malformed request body"


def _timeouts(request: web.Request) -> tuple[float, float]:
    settings = getattr(request.app.get("convoy"), "settings", None)
    return (
        float(getattr(settings, "body_read_timeout", DEFAULT_READ_TIMEOUT)),
        float(getattr(settings, "body_total_timeout", DEFAULT_TOTAL_TIMEOUT)),
    )


async def read_body(request: web.Request, limit: int, *, read_timeout: float | None = None,
                    total_timeout: float | None = None) -> bytes:
    """The body, at most `limit` bytes (413 beyond), arriving in time (408 otherwise)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, TOO_LARGE)
    if request.content.is_eof():
        # The whole body already arrived with the headers (the usual case for small
        # bodies): take it without arming timers, which cost more than the request.
        try:
            body = request.content.read_nowait()
        except (RequestPayloadError, HttpProcessingError, ConnectionError) as exc:
            raise ApiError(400, MALFORMED, {"Connection": "close"}) from exc
        if len(body) > limit:
            raise ApiError(413, TOO_LARGE)
        return body
    default_read, default_total = _timeouts(request)
    per_read = default_read if read_timeout is None else read_timeout
    total = default_total if total_timeout is None else total_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise ApiError(408, TOO_SLOW, {"Connection": "close"})
        try:
            chunk = await asyncio.wait_for(request.content.read(CHUNK), timeout=min(per_read, left))
        except asyncio.TimeoutError:
            raise ApiError(408, TOO_SLOW, {"Connection": "close"}) from None
        except (RequestPayloadError, HttpProcessingError, ConnectionError) as exc:
            raise ApiError(400, MALFORMED, {"Connection": "close"}) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ApiError(413, TOO_LARGE)
        chunks.append(chunk)


async def read_json(request: web.Request) -> Any:
    """Body as JSON with Convoy's decode messages; 415 for non-JSON content types.

    Read within the app's `client_max_size` (413) and the body timeouts (408), see `read_body`.
    """
    content_type = request.headers.get("Content-Type", "")
    if content_type and not content_type.lower().startswith("application/json"):
        raise web.HTTPUnsupportedMediaType()
    raw = await read_body(request, request.client_max_size)
    try:
        return decode_json_body(raw)
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from exc
