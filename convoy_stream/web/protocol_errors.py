"""Requests aiohttp refuses before any route runs, answered in Convoy's envelope.

A request line or header aiohttp cannot parse (a header over 8190 bytes, a bad method,
bad chunked framing, a `Content-Encoding` it cannot decode such as `br` without Brotli)
never reaches the middlewares: aiohttp answers it from `RequestHandler.handle_error`
with plain text that quotes the offending input. `install()` replaces that answer with
`{"status": false, "message": <fixed text>, "data": null}`: same status, the connection
still closed, nothing the client sent echoed back, no traceback in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import http_exceptions, web_protocol
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from .envelope import error

log = logging.getLogger(__name__)

_MESSAGES: tuple[tuple[type[BaseException], str], ...] = (
    (http_exceptions.LineTooLong, "request line or header too long"),
    (http_exceptions.ContentEncodingError, "unsupported Content-Encoding"),
    (http_exceptions.TransferEncodingError, "malformed request body"),
    (http_exceptions.BadHttpMethod, "malformed request method"),
    (http_exceptions.InvalidHeader, "malformed request header"),
)


def message_for(status: int, exc: BaseException | None) -> str:
    """A fixed text per kind of refusal: never the exception's text, which quotes input."""
    for kind, message in _MESSAGES:
        if isinstance(exc, kind):
            return message
    return "internal server error" if status >= 500 else "malformed request"


def _handle_error(self: web_protocol.RequestHandler, request: BaseRequest, status: int = 500,
                  exc: BaseException | None = None, message: str | None = None) -> StreamResponse:
    if request.writer.output_size > 0:  # an answer already started: the connection is broken
        raise ConnectionError("Response is sent already, cannot send another response with the error message")
    if status >= 500:
        log.error("unhandled error on %s %s: %s", request.method, request.path, type(exc).__name__)
    else:
        log.debug("refused a request aiohttp could not parse: %s", type(exc).__name__)
    response = error(status, message_for(status, exc))
    response.force_close()
    return response


def install() -> None:
    """Answer aiohttp's own refusals in the envelope (idempotent, process-wide)."""
    handler: Any = web_protocol.RequestHandler
    if handler.handle_error is not _handle_error:
        handler.handle_error = _handle_error
