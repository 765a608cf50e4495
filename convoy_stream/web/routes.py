"""Every HTTP route, in one place: a newcomer finds where a request goes here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import config_api, events, ingest
from .context import Context
from .envelope import error_middleware
from .health import health
from .lookups import internal_query

if TYPE_CHECKING:
    from ..app import ConvoyApp


def install(app: "ConvoyApp", web_app: web.Application) -> None:
    web_app["convoy"] = Context.of(app)
    web_app.middlewares.append(error_middleware)
    router = web_app.router
    router.add_get("/health", health)
    config_api.install(router)
    events.install(router)
    ingest.install(router)
    router.add_get("/_internal/query/{name}", internal_query)
