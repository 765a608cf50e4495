"""The dashboard's pages: server-rendered HTML over the same queries as the API.

Every page's state is in its URL (filters use the API's parameter names), so a link can be
shared. Pages read through the functions the API uses (`web/events.py`,
`web/request_log_api.py`, `web/lookups.py`): a page shows what the API would answer.

Guarantees (with `session.py` and `render.py`): signed out, a page shows no data and
redirects to sign-in; a project key sees its own project only (another project's pages are
"not found"); every value is escaped by the template engine; state-changing forms check a
CSRF token.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from tables import queries

from .. import clock, replay
from ..ids import lowest_uid_at
from ..web import request_log_api
from ..web.context import Context, ctx
from ..web.envelope import ApiError
from ..web.events import deliveries_page, events_page
from ..web.metrics import ingest_lag
from . import session as sessions
from .chart import Chart, merge_counts
from .render import redirect, render

Page = Callable[[web.Request, "View"], Awaitable[web.StreamResponse]]

EVENT_FILTERS = ("query", "brokerMessageId", "idempotencyKey", "eventType", "sourceId", "endpointId", "startDate",
                 "endDate")
DELIVERY_FILTERS = ("eventId", "endpointId", "eventType", "status", "sourceId", "brokerMessageId", "startDate", "endDate")
REQUEST_FILTERS = ("sourceId", "cause", "startDate", "endDate")
PAGING = ("next_page_cursor", "prev_page_cursor", "direction")
HOUR_MS = 3600 * 1000


class View:
    """What a page handler gets: the session, the project (if any) and rendering helpers."""

    def __init__(self, request: web.Request, c: Context, session: sessions.Session, project: dict[str, Any] | None):
        self.request, self.c, self.session, self.project = request, c, session, project

    @property
    def pid(self) -> str:
        return self.project["uid"] if self.project else ""

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        projects = ([p for p in self.c.config.all("project")] if self.session.admin
                    else [p for p in [self.c.config.get("project", self.session.project_id)] if p])
        return render(self.request, template, status=status, session=self.session, project=self.project,
                      projects=sorted(projects, key=lambda p: p.get("name", "")),
                      csrf=sessions.csrf_token(self.c.config, self.session), **context)

    def csrf_ok(self, form: Any) -> bool:
        """Whether a posted form carries this session's CSRF token."""
        return sessions.csrf_ok(self.c.config, self.session, str(form.get("csrf", "")))

    def sources(self) -> dict[str, dict[str, Any]]:
        return {s["uid"]: s for s in self.c.config.project_entities("source", self.pid)}

    def endpoints(self) -> dict[str, dict[str, Any]]:
        return {e["uid"]: e for e in self.c.config.project_entities("endpoint", self.pid)}


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page that needs a session (and, with `{projectID}` in its path, that project)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        c = ctx(request)
        if not c.config.ready.is_set():
            return render(request, "error.html", status=503, title="Starting",
                          message="This worker is starting. Reload in a moment.")
        session = sessions.check(c.config, c.admin_digest, request.cookies.get(sessions.COOKIE))
        if session is None:
            return redirect("/ui/signin?" + urlencode({"next": request.path_qs}))
        project = None
        if "projectID" in request.match_info:
            pid = request.match_info["projectID"]
            project = c.config.get("project", pid) if session.may_see(pid) else None
            if project is None:
                return View(request, c, session, None).render("error.html", status=404, title="Not found",
                                                              message="There is no such project, or it is not yours.")
        view = View(request, c, session, project)
        try:
            return await handler(request, view)
        except ApiError as exc:
            status = exc.status if 400 <= exc.status < 600 else 500
            return view.render("error.html", status=status, title="Could not load this page", message=exc.message)

    return wrapped


def form_expired(view: View) -> web.Response:
    """The answer to a form posted without the session's CSRF token: nothing was changed."""
    return view.render("error.html", status=403, title="Form expired",
                       message="This form is out of date (its CSRF token does not match). Go back and try again.")


def _kept(query: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: query.get(name, "") for name in names}


def _link(path: str, params: dict[str, str]) -> str:
    used = {k: v for k, v in params.items() if v}
    return path + ("?" + urlencode(used) if used else "")


def _pager(path: str, query: Any, names: tuple[str, ...], pagination: dict[str, Any]) -> dict[str, str]:
    """Links to the newer and older pages, keeping the filters (Convoy's cursors)."""
    base = {name: query.get(name, "") for name in names if name not in PAGING}
    if query.get("live"):
        base["live"] = query["live"]
    links = {}
    if pagination.get("has_prev_page"):
        links["newer"] = _link(path, {**base, "direction": "prev", "prev_page_cursor": pagination["prev_page_cursor"]})
    if pagination.get("has_next_page"):
        links["older"] = _link(path, {**base, "next_page_cursor": pagination["next_page_cursor"]})
    return links


async def _listing(fetch: Awaitable[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """A page of rows, or no rows and the reason a filter was refused (shown above the table)."""
    try:
        return await fetch, ""
    except ApiError as exc:
        if exc.status != 400:
            raise
        return {"content": [], "pagination": {}}, exc.message


async def _chart(view: View, hours: int = 24) -> dict[str, Any]:
    """Counts per hour over every worker; empty (never an error page) while a worker cannot answer."""
    since = clock.now() - timedelta(hours=hours)
    lower = lowest_uid_at(since)
    try:
        found = [*await queries.event_counts(view.c, view.pid, lower=lower, bucket_ms=HOUR_MS),
                 *await queries.request_counts(view.c, view.pid, lower=lower, bucket_ms=HOUR_MS)]
    except (ApiError, queries.Unavailable):
        found = []
    return merge_counts(found, start_ms=int(since.timestamp() * 1000) // HOUR_MS * HOUR_MS,
                        buckets=hours + 1, bucket_ms=HOUR_MS)


def _lag(view: View) -> int | None:
    try:
        return sum(lag for _, _, lag in ingest_lag(view.c.app, view.c.publisher.ingest_topic))
    except Exception:  # a worker between assignments has no lag to tell
        return None


# -- pages ------------------------------------------------------------------------------------

@page
async def home(request: web.Request, view: View) -> web.StreamResponse:
    if not view.session.admin:
        return redirect(f"/ui/projects/{quote(view.session.project_id)}/events")
    return view.render("projects.html", title="Projects")


@page
async def events(request: web.Request, view: View) -> web.StreamResponse:
    q = request.query
    listing, problem = await _listing(events_page(request, view.pid, q))
    path = f"/ui/projects/{view.pid}/events"
    filters = _kept(q, EVENT_FILTERS)
    counts = await _chart(view)
    return view.render(
        "events.html", title="Events", tab="events", filters=filters, rows=listing["content"], problem=problem,
        pager=_pager(path, q, EVENT_FILTERS, listing.get("pagination") or {}),
        live=bool(q.get("live")) and not any(q.get(k) for k in PAGING),
        live_on=_link(path, {**filters, "live": "1"}), live_off=_link(path, filters),
        replay_all=_link(f"/ui/projects/{view.pid}/replay", filters),
        filtered=any(filters.values()), sources=view.sources(), endpoints=view.endpoints(),
        chart=Chart.of(counts["total"]), capped=counts["capped"], lag=_lag(view))


@page
async def event(request: web.Request, view: View) -> web.StreamResponse:
    uid = request.match_info["eventID"]
    found = await queries.event_by_id(view.c, view.pid, uid)
    if found is None:
        return view.render("error.html", status=404, title="Event not found",
                           message="No event with this id in this project (it may be past the retention period).")
    deliveries = await queries.deliveries_of_event(view.c, view.pid, uid)
    original = None
    if found.get("is_duplicate_event") and found.get("idempotency_key"):
        same = await queries.events_by_idempotency_key(view.c, view.pid, found["idempotency_key"])
        original = next((e for e in sorted(same, key=lambda e: e["uid"]) if not e.get("is_duplicate_event")), None)
    payload = found.get("data") if found.get("data") is not None else found.get("raw")
    replayed = replay.progress(request.query.get("replayed", ""), deliveries, now=clock.seconds())
    return view.render("event.html", title=f"Event {uid}", tab="events", event=found, deliveries=deliveries,
                       retried=request.query.get("retried", ""), replayed=replayed, live=bool(replayed and replayed["waiting"]),
                       is_replay=replay.is_replay_delivery,
                       original=original, payload=payload, source=view.sources().get(found.get("source_id") or ""),
                       endpoints=view.endpoints())


@page
async def deliveries(request: web.Request, view: View) -> web.StreamResponse:
    q = request.query
    listing, problem = await _listing(deliveries_page(request, view.pid, q))
    path = f"/ui/projects/{view.pid}/deliveries"
    return view.render("deliveries.html", title="Deliveries", tab="deliveries", filters=_kept(q, DELIVERY_FILTERS),
                       rows=listing["content"], problem=problem, sources=view.sources(), endpoints=view.endpoints(),
                       pager=_pager(path, q, DELIVERY_FILTERS, listing.get("pagination") or {}))


@page
async def sources(request: web.Request, view: View) -> web.StreamResponse:
    bridges = getattr(getattr(view.c.app, "bridges", None), "manager", None)
    status = bridges.status() if bridges is not None else {}
    counts = await _chart(view)
    charts = {sid: Chart.of(per, small=True) for sid, per in counts["by_source"].items()}
    subscriptions = [s for s in view.c.config.project_entities("subscription", view.pid)]
    return view.render("sources.html", title="Sources", tab="sources",
                       source_list=sorted(view.sources().values(), key=lambda s: s.get("name", "")),
                       endpoint_list=sorted(view.endpoints().values(), key=lambda e: e.get("name", "")),
                       subscriptions=sorted(subscriptions, key=lambda s: s.get("name", "")), endpoints=view.endpoints(),
                       sources=view.sources(), bridges=status, charts=charts, empty_chart=Chart.of({}, small=True),
                       base_url=view.c.settings.base_url, now=clock.seconds())


@page
async def requests(request: web.Request, view: View) -> web.StreamResponse:
    q = request.query
    listing, problem = await _listing(request_log_api.requests_page(request, view.pid, q))
    path = f"/ui/projects/{view.pid}/requests"
    return view.render("requests.html", title="Request log", tab="requests", filters=_kept(q, REQUEST_FILTERS),
                       rows=listing["content"], problem=problem, sources=view.sources(),
                       causes=request_log_api.request_log.CAUSES,
                       pager=_pager(path, q, REQUEST_FILTERS, listing.get("pagination") or {}))


async def _request_page(view: View, uid: str, *, problem: str = "", status: int = 200) -> web.Response:
    found = await request_log_api.find(view.request, view.pid, uid)
    body = found.get("body") or ""
    if found.get("body_encoding") != "base64":
        try:
            body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass
    return view.render("request.html", status=status, title=f"Request {uid}", tab="requests", entry=found, body=body,
                       problem=problem, source=view.sources().get(found.get("source_id") or ""))


@page
async def request_detail(request: web.Request, view: View) -> web.StreamResponse:
    return await _request_page(view, request.match_info["requestID"])


@page
async def retry_request(request: web.Request, view: View) -> web.StreamResponse:
    form = await request.post()
    uid = request.match_info["requestID"]
    if not view.csrf_ok(form):
        return form_expired(view)
    try:
        event_id = await request_log_api.retry(view.project or {}, request, uid)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return await _request_page(view, uid, problem=f"Retry refused: {exc.message}", status=exc.status)
    return redirect(f"/ui/projects/{quote(view.pid)}/events/{quote(event_id)}?retried={quote(uid)}")
