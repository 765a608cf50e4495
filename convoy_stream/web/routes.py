"""Every HTTP route, in one place: a newcomer finds where a request goes here.

Middlewares (run as one, `front.py`), outermost first: metrics (counts every answer by route template
and status), the request log (records turned-away webhooks, `request_log_api.py`),
the instance ingest rate limit (429 before any work), the error
envelope (`envelope.py`). Every route except `/_internal/*` and the dashboard's `/ui` is described in
`openapi.py`, served at `/openapi.json`; `tests/unit/test_openapi.py` fails
when a route is added here without being documented there.
"""

from __future__ import annotations

from aiohttp import web

from ..ui import routes as ui
from . import config_api, events, metrics, openapi, protocol_errors, ratelimit, request_log_api, webhooks
from .context import Context, Worker
from .front import front_middleware
from .health import health
from .internal import internal_query


def install(app: Worker, web_app: web.Application) -> None:
    web_app["convoy"] = Context.of(app)
    web_app[ratelimit.LIMITER_KEY] = ratelimit.limiter_for(app.settings.ingest_rate)
    metrics.install(app, app.publisher.ingest_topic)
    web_app[request_log_api.RECORDER] = request_log_api.Recorder()
    web_app.middlewares.append(front_middleware)  # metrics, request log, rate limit, envelope
    protocol_errors.install()
    add_routes(web_app.router)


def add_routes(router: web.UrlDispatcher) -> None:
    """The routes alone (no worker needed), so tests can list them."""
    router.add_get("/health", health)
    router.add_get("/openapi.json", openapi.serve)
    router.add_get("/metrics", metrics.serve_metrics)
    # The ways in first: aiohttp tries the routes under one prefix in the order added.
    events.install(router)
    webhooks.install(router)
    config_api.install(router)
    request_log_api.install(router)
    router.add_get("/_internal/query/{name}", internal_query)
    ui.install(router)  # the dashboard: HTML pages for people, not in the API's description
