"""The answer to an exception no handler expected: 503 while the worker stops, else 500.

A worker that is stopping closes what its handlers use (the producer, the HTTP client that
asks other workers) while requests are still in flight; they fail with `ProducerClosed` or
`RuntimeError('Session is closed')`. That is no fault of the client and says nothing about
the request: 503 with `Retry-After` tells it to retry, on another worker. A Kafka error
that escaped a handler is Kafka being unavailable, 503 too, as `KafkaUnavailable` is.

Anything else is a bug: 500 in Convoy's envelope, nothing of the exception in the body,
and one log line naming the route, the exception and where it was raised.
"""

from __future__ import annotations

import logging
import traceback

from aiohttp import web
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

RETRY = {"Retry-After": "1"}


def unexpected_outcome(request: web.Request, exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    """(status, message, headers) of the answer to `exc`, raised by the handler of `request`
    and handled by nobody; `envelope.enveloped` (in `front.front_middleware`) turns it into Convoy's envelope."""
    route = _route(request)
    if _stopping(request) or _closed(exc):
        log.warning("%s %s answered 503: the worker is stopping (%s)", request.method, route, _brief(exc))
        return 503, "worker is stopping, retry later", RETRY
    if isinstance(exc, KafkaError):
        log.warning("%s %s answered 503: kafka unavailable (%s)", request.method, route, _brief(exc))
        return 503, "event store unavailable, retry later", RETRY
    log.error("%s %s answered 500: unhandled %s", request.method, route, _brief(exc))
    return 500, "internal server error", None


def _stopping(request: web.Request) -> bool:
    """Whether this worker's app is stopping (or crashed, and so about to)."""
    convoy = request.app.get("convoy")
    return bool(getattr(getattr(convoy, "app", None), "should_stop", False))


def _closed(exc: Exception) -> bool:
    """A resource the worker closes when it stops: its Kafka producer or its HTTP client."""
    from aiokafka.errors import ProducerClosed

    return isinstance(exc, ProducerClosed) or (isinstance(exc, RuntimeError) and "Session is closed" in str(exc))


def _route(request: web.Request) -> str:
    resource = getattr(getattr(request.match_info, "route", None), "resource", None)
    return str(resource.canonical) if resource is not None else request.path


def _brief(exc: Exception) -> str:
    """`Type('message') at file:line in function`: the exception and its innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{exc!r}{where}"
