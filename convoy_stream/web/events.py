"""REST event API for outgoing projects, and event/delivery lookups.

POST answers 201 only after Kafka acknowledged the ingest record (503
otherwise) and, unlike Convoy, returns the event so a client can look it up.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tables.events import DeliveryFilter, EventFilter, within

from ..ids import mask_id, new_ulid, scoped
from ..records import IngestRecord
from ..routing import catch_all_subscription, event_uid_of
from ..validation import ValidationError, validate_event
from . import search
from .config_api import now, refuse_internal_url
from .context import Context, ctx
from .body import read_json
from .envelope import ApiError, ok
from .listing import many, merge, page_of
from .lookups import ask_all, ask_owner, encode_list_arg

MESSAGES = {
    "single": "Event queued successfully",
    "fanout": "Endpoint fanout event queued successfully",
    "broadcast": "Broadcast event created successfully",
    "dynamic": "Dynamic event created successfully",
}
DUPLICATE = "Duplicate event received, but will not be sent"


def dedup_key(project_id: str, idempotency_key: str) -> str:
    return f"{project_id}:{idempotency_key}" if idempotency_key else ""


async def is_known_duplicate(request: web.Request, project_id: str, key: str) -> bool:
    """Best-effort answer for the response message; the agent decides for real."""
    if not key:
        return False
    try:
        return bool(await ask_owner(request, "idempotency", key, "events_by_dedup", project_id, key))
    except ApiError:
        return False


async def _ensure_subscription(c: Context, endpoint: dict[str, Any], event_types: list[str] | None = None) -> None:
    """Convoy gives an endpoint with no subscription a catch-all one (stored, so it is listed).

    Its uid is the endpoint's catch-all uid, not a new one: the first events for an endpoint,
    arriving together on several workers (or on one, while the first write is in flight),
    each find no subscription and store one; with a new uid each, every later event of the
    endpoint had two deliveries.
    """
    if not c.config.subscriptions_for_endpoint(endpoint["uid"]):
        stamp = now()
        subscription = catch_all_subscription(endpoint) | {"created_at": stamp, "updated_at": stamp, "deleted_at": None}
        subscription["filter_config"]["event_types"] = event_types or ["*"]
        await c.config.put("subscription", subscription["uid"], subscription)


async def _dynamic_endpoint(c: Context, project: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    endpoint = c.config.endpoint_by_url(project["uid"], fields["url"])
    if endpoint is None:
        stamp = now()
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
        duplicate = await is_known_duplicate(request, project["uid"], key)
        headers = {k.lower(): str(v) for k, v in (fields.get("custom_headers") or {}).items()}
        record = IngestRecord.build(
            uid=c.publisher.mint_event_id(project["uid"], key), project_id=project["uid"], kind=record_kind,
            event_type=fields["event_type"], data=fields["data"], created_at=now(),
            endpoint_id=endpoint_id, owner_id=fields.get("owner_id") or "",
            idempotency_key=idempotency_key, dedup_key=key, headers=headers, forward_headers=headers,
        )
        await c.publisher.publish(record)
        event = {"uid": record.uid, "event_type": record.event_type, "project_id": record.project_id,
                 "endpoint_id": record.endpoint_id, "owner_id": record.owner_id, "data": record.data,
                 "headers": {k: [v] for k, v in headers.items()}, "idempotency_key": idempotency_key,
                 "is_duplicate_event": duplicate, "status": "Pending", "created_at": record.created_at}
        return ok(event, DUPLICATE if duplicate else MESSAGES[kind], 201)

    return handler


async def get_event(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    uid = request.match_info["eventID"]
    event = await ask_owner(request, "events", scoped(project["uid"], uid), "event", project["uid"], uid)
    if event is None:
        raise ApiError(404, "event not found")
    return ok(event, "Event fetched successfully")


async def _list(request: web.Request, query: Any, project_id: str, table: str, name: str, filter_: Any) -> dict[str, Any]:
    """A page from a scan of every worker's partitions."""
    page, size = page_of(query)
    results = await ask_all(request, table, name, project_id, encode_list_arg(page, filter_))
    return merge(results, page, size, cursor_given=_cursor_given(query))


async def _indexed(query: Any, lookups: list[Any], filter_: Any) -> dict[str, Any]:
    """A page from index lookups (idempotency key, broker message id, event id): no scan.

    A bad query parameter (400) closes the lookups it will not run: never a coroutine left
    unawaited.
    """
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


async def _everywhere(request: web.Request, name: str, project_id: str, key: str) -> list[dict[str, Any]]:
    return [row for part in await ask_all(request, "events", name, project_id, key) for row in part]


async def list_events(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    return ok(await events_page(request, project["uid"], request.query), "Events fetched successfully")


async def events_page(request: web.Request, pid: str, q: Any) -> dict[str, Any]:
    """A page of a project's events for the query parameters `q` (the API's and the dashboard's)."""
    f = EventFilter(
        source_ids=many(q, "sourceId"), endpoint_ids=many(q, "endpointId"), owner_id=q.get("ownerId", ""),
        idempotency_key=q.get("idempotencyKey", ""), broker_message_id=q.get("brokerMessageId", ""),
        query=q.get("query", ""), query_source_ids=search.sources_named(ctx(request).config, pid, q.get("query", "")),
        body=search.body_param(q), event_types=many(q, "eventType"),
    )
    if f.idempotency_key:
        key = dedup_key(pid, f.idempotency_key)
        return await _indexed(q, [ask_owner(request, "idempotency", key, "events_by_dedup", pid, key)], f)
    if f.broker_message_id:
        return await _indexed(q, [_everywhere(request, "events_by_broker_id", pid, f.broker_message_id)], f)
    return await _list(request, q, pid, "events", "list_events", f)


async def list_deliveries(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    return ok(await deliveries_page(request, project["uid"], request.query), "Event deliveries fetched successfully")


async def deliveries_page(request: web.Request, pid: str, q: Any) -> dict[str, Any]:
    """A page of a project's deliveries for the query parameters `q` (the API's and the dashboard's)."""
    f = DeliveryFilter(
        event_ids=many(q, "eventId"), endpoint_ids=many(q, "endpointId"), subscription_ids=many(q, "subscriptionId"),
        event_types=many(q, "eventType"), statuses=many(q, "status"), idempotency_key=q.get("idempotencyKey", ""),
        broker_message_id=q.get("brokerMessageId", ""), source_ids=many(q, "sourceId"),
    )
    if f.event_ids:
        lookups = [ask_owner(request, "events", scoped(pid, uid), "deliveries_of_event", pid, uid) for uid in f.event_ids]
        return await _indexed(q, lookups, f)
    if f.idempotency_key:
        key = dedup_key(pid, f.idempotency_key)
        return await _indexed(q, [ask_owner(request, "idempotency", key, "deliveries_by_dedup", pid, key)], f)
    if f.broker_message_id:
        return await _indexed(q, [_everywhere(request, "deliveries_by_broker_id", pid, f.broker_message_id)], f)
    return await _list(request, q, pid, "events", "list_deliveries", f)


async def list_dead_letters(request: web.Request) -> web.Response:
    """Broker messages that could never become events, with the reason (newest first)."""
    project = await ctx(request).project(request)
    return ok(await _list(request, request.query, project["uid"], "dead-letters", "list_dead_letters", DeliveryFilter()),
              "Dead letters fetched successfully")


async def get_delivery(request: web.Request) -> web.Response:
    project = await ctx(request).project(request)
    uid = request.match_info["deliveryID"]
    delivery = await ask_owner(request, "events", scoped(project["uid"], event_uid_of(uid)), "delivery", project["uid"], uid)
    if delivery is None:
        raise ApiError(404, "event delivery not found")
    return ok(delivery, "Event Delivery fetched successfully")


def install(router: web.UrlDispatcher) -> None:
    base = "/api/v1/projects/{projectID}"
    router.add_post(base + "/events", create_event("single"))
    for kind in ("fanout", "broadcast", "dynamic"):
        router.add_post(f"{base}/events/{kind}", create_event(kind))
    router.add_get(base + "/events", list_events)
    router.add_get(base + "/events/{eventID}", get_event)
    router.add_get(base + "/eventdeliveries", list_deliveries)
    router.add_get(base + "/eventdeliveries/{deliveryID}", get_delivery)
    router.add_get(base + "/dead-letters", list_dead_letters)
