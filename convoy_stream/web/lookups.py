"""Answer a query from the worker that owns the data, or from all of them.

Tables are partitioned across workers. A point lookup (event id, delivery
id, idempotency key) goes to the worker that owns the key's partition; a
query not keyed by partition (broker message id, lists) asks every worker
and merges. Workers talk over `/_internal/query/{name}`, authenticated by the
deployment's cluster secret (`cluster.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from typing import Any, Callable

import orjson
from aiohttp import ClientError, ClientTimeout, web
from yarl import URL

from tables import counts
from tables import events as queries

from .. import request_log
from ..cluster import cluster_secret
from ..ids import partition_for, partition_of, scoped
from .context import ctx
from .envelope import ApiError, json_response

HEADER = "X-Convoy-Stream-Internal"


def _page_and_filter(arg: dict[str, Any], filter_type: type) -> tuple[queries.Page, Any]:
    page = queries.Page(**arg["page"])
    fields = {k: (frozenset(v) if isinstance(v, list) else v) for k, v in arg["filter"].items()}
    return page, filter_type(**fields)


def encode_list_arg(page: queries.Page, filter_: Any) -> str:
    as_lists = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(filter_).items()}
    return orjson.dumps({"page": dataclasses.asdict(page), "filter": as_lists}).decode()


def _active_keys(request: web.Request) -> Callable[[str], bool]:
    return ctx(request).app.active_keys()


def _local(request: web.Request, name: str, project_id: str, key: str) -> Any:
    t = ctx(request).app.event_tables

    def list_events() -> Any:
        page, f = _page_and_filter(orjson.loads(key), queries.EventFilter)
        return queries.list_events(t.events, project_id, f, page, _active_keys(request))

    def list_deliveries() -> Any:
        page, f = _page_and_filter(orjson.loads(key), queries.DeliveryFilter)
        return queries.list_deliveries(t.events, project_id, f, page, _active_keys(request))

    def list_dead_letters() -> Any:
        page = queries.Page(**orjson.loads(key)["page"])
        return queries.list_rows(ctx(request).app.dead_letters, project_id, lambda row: True, page, _active_keys(request))

    def list_requests() -> Any:
        page, f = _page_and_filter(orjson.loads(key), request_log.RequestFilter)
        rows = queries.list_rows(ctx(request).app.request_log, project_id, f.accepts, page, _active_keys(request))
        return [request_log.summary(row) for row in rows]

    local: dict[str, Callable[[], Any]] = {
        "event": lambda: queries.event(t.events, project_id, key),
        "events_by_dedup": lambda: queries.events_by_dedup_key(t.events, t.idempotency, project_id, key),
        "events_by_broker_id": lambda: queries.events_by_broker_id(t.events, t.broker_ids, project_id, key,
                                                                   _active_keys(request)),
        "deliveries_of_event": lambda: queries.deliveries_of_event(t.events, project_id, key),
        "deliveries_by_broker_id": lambda: queries.deliveries_by_broker_id(t.events, t.broker_ids, project_id, key,
                                                                           _active_keys(request)),
        "deliveries_by_dedup": lambda: queries.deliveries_by_dedup_key(t.events, t.idempotency, project_id, key),
        "delivery": lambda: queries.delivery(t.events, project_id, key),
        "list_events": list_events,
        "list_deliveries": list_deliveries,
        "list_dead_letters": list_dead_letters,
        "request": lambda: ctx(request).app.request_log.get(scoped(project_id, key)),
        "list_requests": list_requests,
        "event_counts": lambda: _counts(request, t.events, project_id, key, counts.event_class),
        "request_counts": lambda: _counts(request, ctx(request).app.request_log, project_id, key, counts.request_class),
    }
    if name not in local:
        raise ApiError(404, "unknown query")
    return local[name]()


def _counts(request: web.Request, table: Any, project_id: str, key: str, classify: Any) -> Any:
    """The dashboard's chart counts (`tables/counts.py`); `key` is `{"lower": uid, "bucket_ms": n}`."""
    arg = orjson.loads(key)
    found = counts.count(table, project_id, lower=str(arg["lower"]), bucket_ms=int(arg["bucket_ms"]),
                         active=_active_keys(request), classify=classify)
    # JSON object keys are strings: buckets travel as such between workers.
    return {"buckets": {str(b): v for b, v in found["buckets"].items()},
            "by_source": {s: {str(b): v for b, v in per.items()} for s, per in found["by_source"].items()},
            "capped": found["capped"]}


def _is_self(request: web.Request, url: URL) -> bool:
    settings = ctx(request).settings
    return (url.host, int(url.port or 80)) == (settings.host, settings.port)


async def _remote(request: web.Request, url: URL, name: str, project_id: str, key: str) -> Any:
    c = ctx(request)
    target = url.with_path(f"/_internal/query/{name}").with_query({"project": project_id, "key": key})
    try:
        async with c.app.http_client.get(
            target, headers={HEADER: cluster_secret(c.config)}, timeout=ClientTimeout(total=5),
        ) as response:
            if response.status != 200:
                raise ApiError(503, "a worker could not answer, retry later", {"Retry-After": "1"})
            return orjson.loads(await response.read())["result"]
    except (OSError, asyncio.TimeoutError, ClientError) as exc:  # also: it stopped mid-answer
        raise ApiError(503, "a worker could not answer, retry later", {"Retry-After": "1"}) from exc


def _owner(request: web.Request, table_name: str, route_key: str) -> URL:
    """The worker whose active partitions hold `route_key`.

    Computed from the assignment Faust shares between workers rather than
    `app.router.key_store`, which needs the producer to have seen the
    changelog topic's metadata and fails until it has. Event keys name their
    partition (`ids`); idempotency keys go where Kafka's hash sent them.
    """
    app = ctx(request).app
    locate = partition_of if table_name == "events" else partition_for
    partition = locate(route_key, app.settings.partitions)
    for host, topics in app.router.table_metadata(table_name).items():
        if any(partition in partitions for partitions in topics.values()):
            return URL(host)
    raise ApiError(503, "partitions are being assigned, retry later", {"Retry-After": "1"})


async def ask_owner(request: web.Request, table_name: str, route_key: str, name: str, project_id: str, key: str) -> Any:
    """Run query `name` on the worker that owns `route_key` in `table_name`."""
    url = _owner(request, table_name, route_key)
    if _is_self(request, url):
        return _local(request, name, project_id, key)
    return await _remote(request, url, name, project_id, key)


async def ask_all(request: web.Request, table_name: str, name: str, project_id: str, key: str) -> list[Any]:
    """Run query `name` on every worker that owns partitions; one result per worker."""
    app = ctx(request).app
    hosts = [URL(h) for h, topics in app.router.table_metadata(table_name).items() if any(topics.values())]
    if not hosts:
        raise ApiError(503, "partitions are being assigned, retry later", {"Retry-After": "1"})

    async def one(host: URL) -> Any:
        if _is_self(request, host):
            return _local(request, name, project_id, key)
        return await _remote(request, host, name, project_id, key)

    return list(await asyncio.gather(*(one(h) for h in hosts)))


async def internal_query(request: web.Request) -> web.Response:
    c = ctx(request)
    secret = cluster_secret(c.config)
    if not secret or not hmac.compare_digest(request.headers.get(HEADER, ""), secret):
        raise ApiError(401, "authorization failed")
    result = _local(request, request.match_info["name"], request.query.get("project", ""), request.query.get("key", ""))
    return json_response({"result": result})
