"""The dashboard's replay: one event from its page, or every event the event log's filters select.

Both go through the API's own code (`web/events.py`: `replay_one`, `batch_selection`,
`replay_many`), so a button replays exactly what `PUT .../events/{eventID}/replay` and
`POST .../events/batchreplay` would. Forms are POSTs checked against the session's CSRF token;
`pages.page` has already refused a signed-out browser and another project's key.

A replay is a command in Kafka; the pipeline emits its deliveries moments later. The event page
is told the replay's id (`?replayed=`), finds the deliveries that replay emitted by their uids
(`replay.progress`), and says "queued" (reloading itself) until they are there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from ..ids import new_ulid
from ..publisher import KafkaUnavailable
from ..web import events as api
from ..web.envelope import ApiError
from .pages import EVENT_FILTERS, View, form_expired, page
from .render import redirect

#: The event log's names for its filters.
LABELS = {"query": "Search", "brokerMessageId": "Broker message id", "idempotencyKey": "Idempotency key",
          "eventType": "Event type", "sourceId": "Source", "endpointId": "Endpoint", "startDate": "From (UTC)",
          "endDate": "To (UTC)"}


def _filters(q: Any) -> MultiDictProxy[str]:
    """The event log's filters in `q` (the query string or the form), without paging."""
    return MultiDictProxy(MultiDict([(name, v) for name in EVENT_FILTERS for v in q.getall(name, []) if v]))


@page
async def replay_event(request: web.Request, view: View) -> web.StreamResponse:
    """The event page's Replay button: the replay is queued in Kafka, then the event page again."""
    form = await request.post()
    if not view.csrf_ok(form):
        return form_expired(view)
    uid = request.match_info["eventID"]
    replay_id = new_ulid()
    try:
        await api.replay_one(view.c, view.pid, uid, replay_id)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return view.render("error.html", status=exc.status, title="Replay refused", message=exc.message)
    except KafkaUnavailable:
        return view.render("error.html", status=503, title="Replay not queued",
                           message="Kafka did not acknowledge the replay, so nothing was replayed. Try again in a moment.")
    return redirect(f"/ui/projects/{quote(view.pid)}/events/{quote(uid)}?replayed={quote(replay_id)}")


async def _selection(view: View, filters: MultiDictProxy[str]) -> tuple[list[str], str]:
    """The events a batch replay with these filters sends again, or none and why it refuses."""
    try:
        return await api.batch_selection(view.request, view.pid, filters), ""
    except ApiError as exc:
        if exc.status != 400:
            raise
        return [], exc.message


def _render(view: View, filters: MultiDictProxy[str], uids: list[str], problem: str, **context: Any) -> web.Response:
    back = f"/ui/projects/{quote(view.pid)}/events" + ("?" + urlencode(list(filters.items())) if filters else "")
    return view.render("replay.html", title="Replay events", tab="events", filters=list(filters.items()), back=back,
                       count=len(uids), capped=len(uids) >= api.MAX_BATCH_REPLAY, limit=api.MAX_BATCH_REPLAY,
                       problem=problem, status=400 if problem else 200, labels=LABELS, sources=view.sources(),
                       endpoints=view.endpoints(), **context)


@page
async def confirm(request: web.Request, view: View) -> web.StreamResponse:
    """How many events "Replay all that match" would send again, and the form that does it."""
    filters = _filters(request.query)
    uids, problem = await _selection(view, filters)
    return _render(view, filters, uids, problem)


@page
async def replay_all(request: web.Request, view: View) -> web.StreamResponse:
    """The confirmed batch replay: the selection is made again now, and "n successful, m failed"."""
    form = await request.post()
    if not view.csrf_ok(form):
        return form_expired(view)
    filters = _filters(form)
    uids, problem = await _selection(view, filters)
    if problem:
        return _render(view, filters, uids, problem)
    try:
        done, failed = await api.replay_many(view.c, view.pid, uids)
    except KafkaUnavailable:
        done, failed = 0, len(uids)
    return _render(view, filters, uids, "", result=f"{done} successful, {failed} failed", failed=failed)
