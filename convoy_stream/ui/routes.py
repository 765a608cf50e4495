"""The dashboard's routes, under `/ui/` (HTML for people; the API stays at `/api/v1`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from . import pages, replay, signin
from .render import HEADERS, redirect

STATIC = Path(__file__).parent / "static"
#: The only files served from `static/` (no directory listing, no path walking).
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript"}


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.Response(body=(STATIC / name).read_bytes(), content_type=STATIC_FILES[name], charset="utf-8",
                        headers={**HEADERS, "Cache-Control": "public, max-age=300"})


async def root(request: web.Request) -> web.StreamResponse:
    return redirect("/ui/projects")


def install(router: web.UrlDispatcher) -> None:
    router.add_get("/ui", root)
    router.add_get("/ui/", root)
    router.add_get("/ui/static/{name}", static)
    router.add_get("/ui/signin", signin.signin_form)
    router.add_post("/ui/signin", signin.signin)
    router.add_post("/ui/signout", signin.signout)
    router.add_get("/ui/projects", pages.home)
    base = "/ui/projects/{projectID}"
    router.add_get(base + "/events", pages.events)
    router.add_get(base + "/events/{eventID}", pages.event)
    router.add_post(base + "/events/{eventID}/replay", replay.replay_event)
    router.add_get(base + "/replay", replay.confirm)
    router.add_post(base + "/replay", replay.replay_all)
    router.add_get(base + "/deliveries", pages.deliveries)
    router.add_get(base + "/sources", pages.sources)
    router.add_get(base + "/requests", pages.requests)
    router.add_get(base + "/requests/{requestID}", pages.request_detail)
    router.add_post(base + "/requests/{requestID}/retry", pages.retry_request)
