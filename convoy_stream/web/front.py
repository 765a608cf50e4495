"""The one middleware in front of every route: metrics, request log, rate limit, error envelope.

Its layers, outermost first, each from its own module: the metrics (`metrics.py`) see the
final status, including errors raised past the envelope; the request log
(`request_log_api.note_answer`) sees the enveloped answer (and a 429) of every `/ingest/`
request; the rate limit (`ratelimit.limited`) refuses before any work; the envelope
(`envelope.enveloped`) turns errors into Convoy's answers. One frame, not a middleware per
layer: each middleware costs a coroutine and a call on every request, a share of a small
request's cost.
"""

from __future__ import annotations

import time

from aiohttp import web

from .. import metrics
from .envelope import Handler, enveloped
from .metrics import route_template
from .ratelimit import LIMITER_KEY, is_limited, limited
from .request_log_api import INGEST_PREFIX, note_answer


@web.middleware
async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        bucket = request.app.get(LIMITER_KEY)
        if bucket is not None and is_limited(request.method, route_template(request)):
            response = await limited(request, lambda r: enveloped(r, handler), bucket)
        else:
            response = await enveloped(request, handler)
        if request.path.startswith(INGEST_PREFIX):
            note_answer(request, response)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.record_http(request.method, route_template(request), status, time.perf_counter() - started)
