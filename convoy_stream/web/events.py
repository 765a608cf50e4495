"""REST event API for outgoing projects, and event/delivery lookups.

POST answers 201 only after Kafka acknowledged the ingest record (503
otherwise) and, unlike Convoy, returns the event so a client can look it up.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from aiohttp import web

from tables import queries
from tables.events import DeliveryFilter, EventFilter, Page, within

from ..answers.deliveries import delivery_answer
from ..answers.events import event_answer
from ..clock import timestamp
from ..ids import dedup_key, mask_id, new_ulid
from ..publisher import KafkaUnavailable
from ..records import IngestRecord
from ..replay import replay_commands
from ..routing import catch_all_subscription
from ..validation import ValidationError, validate_event
from . import search
from .config_api import refuse_internal_url
from .context import Context, ctx
from .body import read_json
from .envelope import ApiError, ok
from .listing import many, merge, page_of

MESSAGES = {
    "single": "Event queued successfully",
    "fanout": "Endpoint fanout event queued successfully",
    "broadcast": "Broadcast event created successfully",
    "dynamic": "Dynamic event created successfully",
}
DUPLICATE = "Duplicate event received, but will not be sent"


async def is_known_duplicate(c: Context, project_id: str, idempotency_key: str) -> bool:
    """Best-effort answer for the response message; the agent decides for real."""
    if not idempotency_key:
        return False
    try:
        return bool(await queries.events_by_idempotency_key(c, project_id, idempotency_key))
    except queries.Unavailable:
        return False


async def _ensure_subscription(c: Context, endpoint: dict[str, Any], event_types: list[str] | None = None) -> None:
    """Convoy gives an endpoint with no subscription a catch-all one (stored, so it is listed).

    Its uid is the endpoint's catch-all uid, not a new one: the first events for an endpoint,
    arriving together on several workers (or on one, while the first write is in flight),
    each find no subscription and store one; with a new uid each, every later event of the
    endpoint had two deliveries.
    """
    cache = getattr(c, "cache", None)
    if cache is not None and cache.get(("subscribed", endpoint["uid"])):
        return  # seen with a subscription since the config last changed
    if not c.config.subscriptions_for_endpoint(endpoint["uid"]):
        stamp = timestamp()
        subscription = catch_all_subscription(endpoint) | {"created_at": stamp, "updated_at": stamp, "deleted_at": None}
        subscription["filter_config"]["event_types"] = event_types or ["*"]
        await c.config.put("subscription", subscription["uid"], subscription)
    elif cache is not None:
        cache.put(("subscribed", endpoint["uid"]), True)


async def _dynamic_endpoint(c: Context, project: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    endpoint = c.config.endpoint_by_url(project["uid"], fields["url"])
    if endpoint is None:
        stamp = timestamp()
        endpoint = {"uid": new_ulid(), "project_id": project["uid"], "name": fields["url"], "url": fields["url"],
                    "secret": fields.get("secret") or mask_id(32), "owner_id": "", "description": "", "status": "active",
                    "created_at": stamp, "updated_at": stamp, "deleted_at": None}
        await c.config.put("endpoint", endpoint["uid"], endpoint)
    await _ensure_subscription(c, endpoint, fields.get("event_types"))
    return endpoint


def create_event(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        c = ctx(request)
        project = await c.project(request)
        if project.get("type") != "outgoing":
            raise ApiError(400, "events can only be pushed to outgoing projects; incoming projects receive webhooks on their sources' ingest URLs")
        body = await read_json(request)
        try:
            fields = validate_event(kind, body)
        except ValidationError as exc:
            raise ApiError(400, str(exc)) from exc
        endpoint_id = fields.get("endpoint_id") or fields.get("app_id") or ""
        record_kind = kind
        if kind == "single":
            endpoint = c.config.endpoint(project["uid"], endpoint_id)
            if endpoint is None:
                await c.config.sync()
                endpoint = c.config.endpoint(project["uid"], endpoint_id)
            if endpoint is None:
                raise ApiError(400, "endpoint not found")
            await _ensure_subscription(c, endpoint)
        elif kind == "dynamic":
            refuse_internal_url(c, fields["url"], "url")
            endpoint_id = (await _dynamic_endpoint(c, project, fields))["uid"]
            record_kind = "single"
        idempotency_key = fields.get("idempotency_key") or ""
        key = dedup_key(project["uid"], idempotency_key)
        duplicate = bool(idempotency_key) and await is_known_duplicate(c, project["uid"], idempotency_key)
        headers = {k: str(v) for k, v in (fields.get("custom_headers") or {}).items()}  # the sender's names, as Convoy
        record = IngestRecord.build(
            uid=c.publisher.mint_event_id(project["uid"], key), project_id=project["uid"], kind=record_kind,
            event_type=fields["event_type"], data=fields["data"], created_at=timestamp(),
            endpoint_id=endpoint_id, owner_id=fields.get("owner_id") or "",
            idempotency_key=idempotency_key, dedup_key=key, headers=headers, forward_headers=headers,
        )
        await c.publisher.publish(record)
        event = {"uid": record.uid, "event_type": record.event_type, "project_id": record.project_id,
                 "endpoint_id": record.endpoint_id, "owner_id": record.owner_id, "data": record.data,
                 "headers": headers, "idempotency_key": idempotency_key,
                 "is_duplicate_event": duplicate, "status": "Pending", "created_at": record.created_at}
        return ok(event_answer(event, c.config), DUPLICATE if duplicate else MESSAGES[kind], 201)

    return handler


async def get_event(request: web.Request) -> web.Response:
    c = ctx(request)
    project = await c.project(request)
    event = await queries.event_by_id(c, project["uid"], request.match_info["eventID"])
    if event is None:
        raise ApiError(404, "event not found")
    return ok(event_answer(event, c.config), "Endpoint event fetched successfully")


def _shaped(c: Context, page: dict[str, Any], shape: Any) -> dict[str, Any]:
    """A page whose rows are Convoy's answers (`answers/`)."""
    return {**page, "content": [shape(row, c.config) for row in page["content"]]}


async def _list(request: web.Request, pages: Callable[[Page], Awaitable[queries.Pages]], query: Any = None) -> dict[str, Any]:
    """A page from a scan of every worker's partitions (`query`: the request's, unless given)."""
    query = request.query if query is None else query
    page, size = page_of(query)
    return merge(await pages(page), page, size, cursor_given=_cursor_given(query))


async def _indexed(request: web.Request, lookups: list[Any], filter_: Any, query: Any = None) -> dict[str, Any]:
    """A page from index lookups (idempotency key, broker message id, event id): no scan.

    A bad query parameter (400) closes the lookups it will not run: never a coroutine left
    unawaited.
    """
    query = request.query if query is None else query
    try:
        page, size = page_of(query)
    except ApiError:
        for lookup in lookups:
            lookup.close()
        raise
    rows = [row for found in await asyncio.gather(*lookups) for row in found]
    return merge([within(rows, filter_.accepts, page)], page, size, cursor_given=_cursor_given(query))


def _cursor_given(query: Any) -> bool:
    return bool(query.get("next_page_cursor") or query.get("prev_page_cursor"))


def _event_filter(c: Context, pid: str, q: Any) -> EventFilter:
    return EventFilter(
        source_ids=many(q, "sourceId"), endpoint_ids=many(q, "endpointId"), owner_id=q.get("ownerId", ""),
        idempotency_key=q.get("idempotencyKey", ""), broker_message_id=q.get("brokerMessageId", ""),
        query=q.get("query", ""), query_source_ids=search.sources_named(c.config, pid, q.get("query", "")),
        body=search.body_param(q), event_types=many(q, "eventType"),
    )


async def events_page(request: web.Request, pid: str, q: Any) -> dict[str, Any]:
    """A page of a project's stored events for the query parameters `q` (the API's and the dashboard's)."""
    return await _events_page(request, pid, _event_filter(ctx(request), pid, q), q)


async def _events_page(request: web.Request, pid: str, f: EventFilter, query: Any = None) -> dict[str, Any]:
    """One page of stored events (rows, not yet answers) for the filter."""
    c = ctx(request)
    if f.idempotency_key:
        return await _indexed(request, [queries.events_by_idempotency_key(c, pid, f.idempotency_key)], f, query)
    if f.broker_message_id:
        return await _indexed(request, [queries.events_by_broker_id(c, pid, f.broker_message_id)], f, query)
    return await _list(request, lambda page: queries.event_pages(c, pid, f, page), query)


async def list_events(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    data = await events_page(request, project["uid"], request.query)
    return ok(_shaped(ctx(request), data, event_answer), "App events fetched successfully")


#: Most events one batch replay sends again (Convoy: all that match); a narrower
#: `startDate`/`endDate` or filter replays the rest.
MAX_BATCH_REPLAY = 10_000


async def _publish_replay(c: Context, project_id: str, uids: list[str], replay_id: str) -> tuple[int, int]:
    """Replay commands for `uids`, durable in Kafka: (events whose command is durable, events whose is not)."""
    done = failed = 0
    commands = replay_commands(project_id, uids, replay_id=replay_id, now=timestamp(), partitions=c.publisher.partitions)
    for command, outcome in zip(commands, await c.publisher.publish_many(commands)):
        if outcome is None:
            done += len(command.data["events"])
        else:
            failed += len(command.data["events"])
    return done, failed


async def replay_one(c: Context, project_id: str, uid: str, replay_id: str) -> dict[str, Any]:
    """Replay one stored event of the project (the API's route and the dashboard's button): its row.

    Answers once Kafka holds the command; its deliveries' uids end with the replay id's
    8 characters (`replay.replay_delivery_uid`). Raises `ApiError` (404, or 400 for a
    duplicate) and `KafkaUnavailable`.
    """
    event = await queries.event_by_id(c, project_id, uid)
    if event is None:
        raise ApiError(404, "event not found")
    if event.get("is_duplicate_event"):
        raise ApiError(400, "a duplicate event is not replayed; replay its original")
    done, failed = await _publish_replay(c, project_id, [uid], replay_id)
    if failed:
        raise KafkaUnavailable("the replay was not acknowledged")
    return event


async def replay_event(request: web.Request) -> web.Response:
    """Convoy's replay: the event goes again to the subscriptions that match it now (`replay.py`)."""
    c = ctx(request)
    project = await c.project(request)
    event = await replay_one(c, project["uid"], request.match_info["eventID"], new_ulid())
    return ok(event_answer({**event, "acknowledged_at": timestamp()}, c.config), "Endpoint event replayed successfully")


async def batch_selection(request: web.Request, project_id: str, q: Any) -> list[str]:
    """The events a batch replay with the list filters `q` sends again (the API's and the dashboard's).

    Newest first, duplicates skipped, without `query` or `body` (400). Without `perPage` or a
    cursor, all of them (at most MAX_BATCH_REPLAY); with one, that page.
    """
    if q.get("query") or q.get("body"):
        raise ApiError(400, "batch replay does not support search filters")
    f = _event_filter(ctx(request), project_id, q)
    one_page = any(q.get(name) for name in ("perPage", "next_page_cursor", "prev_page_cursor"))
    query: dict[str, str] = {k: v for k, v in q.items() if k in ("startDate", "endDate", "direction", "perPage",
                                                                   "next_page_cursor", "prev_page_cursor")}
    if not one_page:
        query["perPage"] = "100"
    uids: list[str] = []
    while True:
        page = await _events_page(request, project_id, f, query)
        uids.extend(e["uid"] for e in page["content"] if not e.get("is_duplicate_event"))
        cursor = page["pagination"]["next_page_cursor"]
        if (one_page or not page["pagination"]["has_next_page"] or not cursor or cursor == query.get("next_page_cursor")
                or len(uids) >= MAX_BATCH_REPLAY):
            break
        query["next_page_cursor"] = cursor
    return uids[:MAX_BATCH_REPLAY]


async def replay_many(c: Context, project_id: str, uids: list[str]) -> tuple[int, int]:
    """Replay the events `uids` of the project: (n successful, m failed: not acknowledged by Kafka)."""
    return await _publish_replay(c, project_id, uids, new_ulid()) if uids else (0, 0)


async def batch_replay(request: web.Request) -> web.Response:
    """Convoy's batch replay: every event the list filters select (`batch_selection`).

    Answers `"<n> successful, <m> failed"`: m events whose replay Kafka did not acknowledge.
    """
    c = ctx(request)
    project = await c.project(request)
    done, failed = await replay_many(c, project["uid"], await batch_selection(request, project["uid"], request.query))
    message = f"{done} successful, {failed} failed"
    return ok(message, message)


async def list_deliveries(request: web.Request) -> web.Response:
    c = ctx(request)
    project = await c.project(request)
    data = await deliveries_page(request, project["uid"], request.query)
    return ok(_shaped(c, data, delivery_answer), "Event deliveries fetched successfully")


async def deliveries_page(request: web.Request, pid: str, q: Any) -> dict[str, Any]:
    """A page of a project's stored deliveries for the query parameters `q` (the API's and the dashboard's)."""
    c = ctx(request)
    f = DeliveryFilter(
        event_ids=many(q, "eventId"), endpoint_ids=many(q, "endpointId"), subscription_ids=many(q, "subscriptionId"),
        event_types=many(q, "eventType"), statuses=many(q, "status"), idempotency_key=q.get("idempotencyKey", ""),
        broker_message_id=q.get("brokerMessageId", ""), source_ids=many(q, "sourceId"),
    )
    if f.event_ids:
        return await _indexed(request, [queries.deliveries_of_event(c, pid, uid) for uid in f.event_ids], f, q)
    if f.idempotency_key:
        return await _indexed(request, [queries.deliveries_by_idempotency_key(c, pid, f.idempotency_key)], f, q)
    if f.broker_message_id:
        return await _indexed(request, [queries.deliveries_by_broker_id(c, pid, f.broker_message_id)], f, q)
    return await _list(request, lambda page: queries.delivery_pages(c, pid, f, page), q)


async def list_dead_letters(request: web.Request) -> web.Response:
    """Broker messages that could never become events, with the reason (newest first)."""
    c = ctx(request)
    project = await c.project(request)
    data = await _list(request, lambda page: queries.dead_letter_pages(c, project["uid"], page))
    return ok(data, "Dead letters fetched successfully")


async def get_delivery(request: web.Request) -> web.Response:
    c = ctx(request)
    project = await c.project(request)
    delivery = await queries.delivery_by_id(c, project["uid"], request.match_info["deliveryID"])
    if delivery is None:
        raise ApiError(404, "event delivery not found")
    return ok(delivery_answer(delivery, c.config), "Event Delivery fetched successfully")


def install(router: web.UrlDispatcher) -> None:
    base = "/api/v1/projects/{projectID}"
    router.add_post(base + "/events", create_event("single"))
    for kind in ("fanout", "broadcast", "dynamic"):
        router.add_post(f"{base}/events/{kind}", create_event(kind))
    router.add_get(base + "/events", list_events)
    router.add_get(base + "/events/{eventID}", get_event)
    router.add_put(base + "/events/{eventID}/replay", replay_event)
    router.add_post(base + "/events/batchreplay", batch_replay)
    router.add_get(base + "/eventdeliveries", list_deliveries)
    router.add_get(base + "/eventdeliveries/{deliveryID}", get_delivery)
    router.add_get(base + "/dead-letters", list_dead_letters)
