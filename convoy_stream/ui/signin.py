"""Signing in and out of the dashboard (`session.py` says what a session guarantees)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ..web.context import ctx
from . import session as sessions
from .render import redirect, render

#: How long the sign-in form's double-submit token lives.
SIGNIN_SECONDS = 3600


def _next(target: str) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else ""


def _form(request: web.Request, *, error: str = "", status: int = 200, next_path: str = "") -> web.Response:
    token = sessions.new_signin_token()
    response = render(request, "signin.html", status=status, title="Sign in", error=error, csrf=token,
                      next_path=next_path, session=None, project=None, projects=[])
    response.set_cookie(sessions.SIGNIN_COOKIE, token,
                        **sessions.cookie_options(ctx(request).settings.base_url, SIGNIN_SECONDS))
    return response


async def signin_form(request: web.Request) -> web.Response:
    return _form(request, next_path=_next(request.query.get("next", "")))


async def signin(request: web.Request) -> web.Response:
    c = ctx(request)
    form = await request.post()
    next_path = _next(str(form.get("next", "")))
    expected = request.cookies.get(sessions.SIGNIN_COOKIE, "")
    if not expected or str(form.get("csrf", "")) != expected:
        return _form(request, error="The form expired. Please sign in again.", status=403, next_path=next_path)
    if not c.config.ready.is_set():
        return _form(request, error="This worker is starting. Try again in a moment.", status=503, next_path=next_path)
    await c.config.sync()  # a key created through another worker a moment ago
    try:
        made = sessions.sign_in(c.config, c.admin_digest, str(form.get("token", "")))
    except LookupError:  # the deployment's cluster secret is being created (first start)
        return _form(request, error="This worker is starting. Try again in a moment.", status=503, next_path=next_path)
    if made is None:
        return _form(request, error="That API key or admin token was not accepted.", status=401, next_path=next_path)
    session, cookie = made
    default = "/ui/projects" if session.admin else f"/ui/projects/{quote(session.project_id)}/events"
    options = sessions.cookie_options(c.settings.base_url, sessions.SESSION_SECONDS)
    response = redirect(next_path or default, cookies={sessions.COOKIE: (cookie, options)})
    response.del_cookie(sessions.SIGNIN_COOKIE, path="/ui")
    return response


async def signout(request: web.Request) -> web.Response:
    c = ctx(request)
    form = await request.post()
    session = sessions.check(c.config, c.admin_digest, request.cookies.get(sessions.COOKIE))
    if session is not None and not sessions.csrf_ok(c.config, session, str(form.get("csrf", ""))):
        return render(request, "error.html", status=403, title="Form expired", session=None, project=None,
                      projects=[], message="This form is out of date. Go back, reload, and sign out again.")
    response = redirect("/ui/signin")
    response.del_cookie(sessions.COOKIE, path="/ui")
    return response
