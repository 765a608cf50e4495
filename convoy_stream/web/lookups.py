"""Answer a query from the worker that owns the data, or from all of them.

Tables are partitioned across workers. A point lookup (event id, delivery id,
idempotency key) goes to the worker that owns the key's partition; a lookup
that is not keyed by partition (broker message id, lists) asks every worker
and merges. Workers talk over `/_internal/query/{name}`, authenticated by
the deployment's cluster secret (`cluster.py`).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, Callable

import orjson
from aiohttp import ClientTimeout, web
from yarl import URL

from tables import events as queries

from ..cluster import cluster_secret
from .context import ctx
from .envelope import ApiError, json_response

HEADER = "X-Convoy-Stream-Internal"


def _local(request: web.Request, name: str, project_id: str, key: str) -> Any:
    t = ctx(request).app.event_tables
    local: dict[str, Callable[[], Any]] = {
        "event": lambda: queries.event(t.events, project_id, key),
        "events_by_dedup": lambda: queries.events_by_dedup_key(t.events, t.idempotency, project_id, key),
        "events_by_broker_id": lambda: queries.events_by_broker_id(t.events, t.broker_ids, project_id, key),
        "deliveries_of_event": lambda: queries.deliveries_of_events(
            t.deliveries, [e for e in [queries.event(t.events, project_id, key)] if e]),
        "deliveries_by_broker_id": lambda: queries.deliveries_of_events(
            t.deliveries, queries.events_by_broker_id(t.events, t.broker_ids, project_id, key)),
        "delivery": lambda: queries.delivery(t.deliveries, project_id, key),
    }
    if name not in local:
        raise ApiError(404, "unknown query")
    return local[name]()


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
                raise ApiError(503, "a worker could not answer, retry later")
            return orjson.loads(await response.read())["result"]
    except (OSError, asyncio.TimeoutError) as exc:
        raise ApiError(503, "a worker could not answer, retry later") from exc


async def ask_owner(request: web.Request, table_name: str, name: str, project_id: str, key: str) -> Any:
    """Run query `name` on the worker that owns `key` in `table_name`."""
    app = ctx(request).app
    try:
        url = app.router.key_store(table_name, key)
    except KeyError as exc:
        raise ApiError(503, "partitions are being assigned, retry later", {"Retry-After": "1"}) from exc
    if _is_self(request, url):
        return _local(request, name, project_id, key)
    return await _remote(request, url, name, project_id, key)


async def ask_all(request: web.Request, table_name: str, name: str, project_id: str, key: str) -> list[Any]:
    """Run query `name` on every worker that owns partitions; one result per worker."""
    app = ctx(request).app
    hosts = [URL(h) for h, topics in app.router.table_metadata(table_name).items() if any(topics.values())]
    if not hosts:
        raise ApiError(503, "partitions are being assigned, retry later", {"Retry-After": "1"})
    return list(await asyncio.gather(*(
        asyncio.sleep(0, _local(request, name, project_id, key)) if _is_self(request, h) else _remote(request, h, name, project_id, key)
        for h in hosts
    )))


async def internal_query(request: web.Request) -> web.Response:
    c = ctx(request)
    secret = cluster_secret(c.config)
    if not secret or not hmac.compare_digest(request.headers.get(HEADER, ""), secret):
        raise ApiError(401, "authorization failed")
    result = _local(request, request.match_info["name"], request.query.get("project", ""), request.query.get("key", ""))
    return json_response({"result": result})
