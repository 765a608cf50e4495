"""HTML answers: templates rendered with autoescaping, and the headers every page carries.

Guarantees: every value a template prints is HTML-escaped (Jinja2's autoescape; no template
marks a value safe), and every answer carries a Content-Security-Policy that allows scripts
and styles from this origin's files only (no inline script, no inline style, no `eval`), is
not cached, and cannot be framed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


def _when(stamp: Any) -> str:
    """An RFC 3339 time as `2026-12-07 18:43:25 UTC` (what the API's dates look like, readable)."""
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_short(stamp: Any) -> str:
    """The same, without the zone, for table columns whose heading says UTC."""
    return _when(stamp).removesuffix(" UTC")


def _unix(seconds: Any) -> str:
    if not seconds:
        return ""
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


ENV = Environment(loader=PackageLoader("convoy_stream.ui", "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["pretty"] = _pretty
ENV.filters["when"] = _when
ENV.filters["unix"] = _unix
ENV.filters["when_short"] = _when_short


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    html = ENV.get_template(template).render(request_path=request.path, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def redirect(location: str, *, cookies: dict[str, tuple[str, dict[str, Any]]] | None = None) -> web.Response:
    """303 to a path of this dashboard (never elsewhere)."""
    if not location.startswith("/ui") or location.startswith("//"):
        location = "/ui/"
    response = web.Response(status=303, headers={**HEADERS, "Location": location})
    for name, (value, options) in (cookies or {}).items():
        response.set_cookie(name, value, **options)
    return response
