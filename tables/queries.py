"""The read side: one typed function per question the API asks, answered where the data lives.

Tables are partitioned across workers, and each worker answers only for the partitions it is
active for. A point lookup (event id, delivery id, idempotency key) is answered by the worker
that owns the key's partition; a question not keyed by partition (broker message id, lists) is
put to every worker that owns partitions, one answer each. This module decides who answers and
runs the local question (`tables.events`) when that worker is this one. Another worker is asked
through the caller's `ask_worker` (an HTTP call, `convoy_stream/cluster.py`, answered by the
internal query endpoint with `answer_locally`), so `tables/` holds no HTTP code.

While no worker owns a key (partitions being assigned), or the owner does not answer,
`Unavailable` is raised: the API answers 503 with `Retry-After`, never a wrong "not found".
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlsplit

import orjson

from convoy_stream import request_log
from convoy_stream.ids import dedup_key, partition_for, partition_of, scoped
from convoy_stream.ingestion import Tables
from convoy_stream.routing import event_uid_of
from convoy_stream.settings import Settings

from . import counts
from . import events as local
from .events import DeliveryFilter, EventFilter, Page

#: Faust's names of the tables a question reads, as `router.table_metadata` knows them.
EVENTS = "events"
IDEMPOTENCY = "idempotency"
DEAD_LETTERS = "dead-letters"
REQUESTS = "requests"
#: Tables whose keys are "<project>/<uid>" with a uid naming its partition (`ids.mint_id`).
BY_UID = (EVENTS, REQUESTS)

Row = dict[str, Any]
#: One list page per worker, each in page order, for `web/listing.merge`.
Pages = list[list[Row]]


class Unavailable(Exception):
    """No worker can answer now; the client should retry in a second."""


class UnknownQuery(LookupError):
    """A question name this worker does not know (only a misdirected internal call sends one)."""


class Worker(Protocol):
    """What a question reads from the worker it runs on (`app.ConvoyApp`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def event_tables(self) -> Tables: ...

    @property
    def dead_letters(self) -> Any: ...  # the dead-letter table: "<project>/<uid>" -> document

    @property
    def request_log(self) -> Any: ...  # turned-away webhook requests: "<project>/<uid>" -> document

    @property
    def router(self) -> Any: ...  # Faust's router: `table_metadata(table)` -> {worker url: {topic: partitions}}

    def active_keys(self) -> Callable[[str], bool]: ...


class Reader(Protocol):
    """Who asks: this worker, and a way to put a question to another one (`web.context.Context`)."""

    @property
    def app(self) -> Worker: ...

    async def ask_worker(self, worker: str, name: str, project_id: str, key: str) -> Any:
        """`answer_locally(name, project_id, key)` on the worker at URL `worker`; `Unavailable` if it cannot."""
        ...


# -- the questions -------------------------------------------------------------------------

async def event_by_id(c: Reader, project_id: str, uid: str) -> Row | None:
    return await _ask_owner(c, EVENTS, scoped(project_id, uid), "event", project_id, uid)


async def delivery_by_id(c: Reader, project_id: str, uid: str) -> Row | None:
    owner_key = scoped(project_id, event_uid_of(uid))  # a delivery lives in its event's row
    return await _ask_owner(c, EVENTS, owner_key, "delivery", project_id, uid)


async def deliveries_of_event(c: Reader, project_id: str, event_uid: str) -> list[Row]:
    return await _ask_owner(c, EVENTS, scoped(project_id, event_uid), "deliveries_of_event", project_id, event_uid)


async def events_by_idempotency_key(c: Reader, project_id: str, idempotency_key: str) -> list[Row]:
    """The original event of an idempotency key and its stored duplicates, newest first."""
    key = dedup_key(project_id, idempotency_key)
    return await _ask_owner(c, IDEMPOTENCY, key, "events_by_dedup", project_id, key)


async def deliveries_by_idempotency_key(c: Reader, project_id: str, idempotency_key: str) -> list[Row]:
    key = dedup_key(project_id, idempotency_key)
    return await _ask_owner(c, IDEMPOTENCY, key, "deliveries_by_dedup", project_id, key)


async def events_by_broker_id(c: Reader, project_id: str, broker_message_id: str) -> list[Row]:
    """Events carrying a broker message id, from every worker (the id does not name a partition)."""
    return _flat(await _ask_all(c, EVENTS, "events_by_broker_id", project_id, broker_message_id))


async def deliveries_by_broker_id(c: Reader, project_id: str, broker_message_id: str) -> list[Row]:
    return _flat(await _ask_all(c, EVENTS, "deliveries_by_broker_id", project_id, broker_message_id))


async def event_pages(c: Reader, project_id: str, filter_: EventFilter, page: Page) -> Pages:
    """Each worker's page of the project's events that pass `filter_` (a scan; see `local.list_rows`)."""
    return await _ask_all(c, EVENTS, "list_events", project_id, _list_arg(page, filter_))


async def delivery_pages(c: Reader, project_id: str, filter_: DeliveryFilter, page: Page) -> Pages:
    return await _ask_all(c, EVENTS, "list_deliveries", project_id, _list_arg(page, filter_))


async def dead_letter_pages(c: Reader, project_id: str, page: Page) -> Pages:
    return await _ask_all(c, DEAD_LETTERS, "list_dead_letters", project_id, _list_arg(page, DeliveryFilter()))


async def request_by_id(c: Reader, project_id: str, uid: str) -> Row | None:
    """One turned-away webhook request of the request log (`convoy_stream/request_log.py`)."""
    return await _ask_owner(c, REQUESTS, scoped(project_id, uid), "request", project_id, uid)


async def request_pages(c: Reader, project_id: str, filter_: request_log.RequestFilter, page: Page) -> Pages:
    return await _ask_all(c, REQUESTS, "list_requests", project_id, _list_arg(page, filter_))


async def event_counts(c: Reader, project_id: str, *, lower: str, bucket_ms: int) -> list[Row]:
    """Each worker's counts of accepted and duplicate events since `lower`, per bucket (`counts.py`)."""
    return await _ask_all(c, EVENTS, "event_counts", project_id, _counts_arg(lower, bucket_ms))


async def request_counts(c: Reader, project_id: str, *, lower: str, bucket_ms: int) -> list[Row]:
    """Each worker's counts of turned-away requests since `lower`, per bucket (`counts.py`)."""
    return await _ask_all(c, REQUESTS, "request_counts", project_id, _counts_arg(lower, bucket_ms))


def _flat(parts: Pages) -> list[Row]:
    return [row for part in parts for row in part]


# -- answering on this worker --------------------------------------------------------------

def answer_locally(app: Worker, name: str, project_id: str, key: str) -> Any:
    """The answer to question `name` from this worker's own active partitions.

    `name` and `key` are the wire form of a question (what `ask_worker` sends): a uid, a dedup
    key, a broker message id, or a list's page and filter as JSON (`_list_arg`).
    """
    try:
        question = _LOCAL[name]
    except KeyError:
        raise UnknownQuery(name) from None
    return question(app, project_id, key)


def _list_arg(page: Page, filter_: EventFilter | DeliveryFilter) -> str:
    as_lists = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(filter_).items()}
    return orjson.dumps({"page": dataclasses.asdict(page), "filter": as_lists}).decode()


def _page_and_filter(arg: str, filter_type: type) -> tuple[Page, Any]:
    parsed = orjson.loads(arg)
    fields = {k: (frozenset(v) if isinstance(v, list) else v) for k, v in parsed["filter"].items()}
    return Page(**parsed["page"]), filter_type(**fields)


def _list_events(app: Worker, project_id: str, arg: str) -> list[Row]:
    page, f = _page_and_filter(arg, EventFilter)
    return local.list_events(app.event_tables.events, project_id, f, page, app.active_keys())


def _list_deliveries(app: Worker, project_id: str, arg: str) -> list[Row]:
    page, f = _page_and_filter(arg, DeliveryFilter)
    return local.list_deliveries(app.event_tables.events, project_id, f, page, app.active_keys())


def _list_dead_letters(app: Worker, project_id: str, arg: str) -> list[Row]:
    page = Page(**orjson.loads(arg)["page"])
    return local.list_rows(app.dead_letters, project_id, lambda row: True, page, app.active_keys())


def _list_requests(app: Worker, project_id: str, arg: str) -> list[Row]:
    page, f = _page_and_filter(arg, request_log.RequestFilter)
    rows = local.list_rows(app.request_log, project_id, f.accepts, page, app.active_keys())
    return [request_log.summary(row) for row in rows]


def _counts_arg(lower: str, bucket_ms: int) -> str:
    return orjson.dumps({"lower": lower, "bucket_ms": bucket_ms}).decode()


def _counts(table_of: Callable[[Worker], Any], classify: Callable[[dict[str, Any]], str]) -> Callable[[Worker, str, str], Row]:
    """A local counts question; buckets travel as string keys, as JSON objects have them."""
    def question(app: Worker, project_id: str, arg: str) -> Row:
        parsed = orjson.loads(arg)
        found = counts.count(table_of(app), project_id, lower=str(parsed["lower"]), bucket_ms=int(parsed["bucket_ms"]),
                             active=app.active_keys(), classify=classify)
        return {"buckets": {str(b): v for b, v in found["buckets"].items()},
                "by_source": {s: {str(b): v for b, v in per.items()} for s, per in found["by_source"].items()},
                "capped": found["capped"]}
    return question


_LOCAL: Mapping[str, Callable[[Worker, str, str], Any]] = {
    "event": lambda app, pid, uid: local.event(app.event_tables.events, pid, uid),
    "events_by_dedup": lambda app, pid, key: local.events_by_dedup_key(
        app.event_tables.events, app.event_tables.idempotency, pid, key),
    "events_by_broker_id": lambda app, pid, bid: local.events_by_broker_id(
        app.event_tables.events, app.event_tables.broker_ids, pid, bid, app.active_keys()),
    "deliveries_of_event": lambda app, pid, uid: local.deliveries_of_event(app.event_tables.events, pid, uid),
    "deliveries_by_broker_id": lambda app, pid, bid: local.deliveries_by_broker_id(
        app.event_tables.events, app.event_tables.broker_ids, pid, bid, app.active_keys()),
    "deliveries_by_dedup": lambda app, pid, key: local.deliveries_by_dedup_key(
        app.event_tables.events, app.event_tables.idempotency, pid, key),
    "delivery": lambda app, pid, uid: local.delivery(app.event_tables.events, pid, uid),
    "list_events": _list_events,
    "list_deliveries": _list_deliveries,
    "list_dead_letters": _list_dead_letters,
    "request": lambda app, pid, uid: app.request_log.get(scoped(pid, uid)),
    "list_requests": _list_requests,
    "event_counts": _counts(lambda app: app.event_tables.events, counts.event_class),
    "request_counts": _counts(lambda app: app.request_log, counts.request_class),
}


# -- who answers ---------------------------------------------------------------------------

def _owner(app: Worker, table: str, route_key: str) -> str:
    """The URL of the worker whose active partitions hold `route_key` in `table`.

    Computed from the assignment Faust shares between workers rather than
    `app.router.key_store`, which needs the producer to have seen the
    changelog topic's metadata and fails until it has. Event keys name their
    partition (`ids`); dedup keys go where Kafka's hash sent them.
    """
    locate = partition_of if table in BY_UID else partition_for
    partition = locate(route_key, app.settings.partitions)
    for worker, topics in app.router.table_metadata(table).items():
        if any(partition in partitions for partitions in topics.values()):
            return str(worker)
    raise Unavailable("partitions are being assigned, retry later")


def _is_self(app: Worker, worker: str) -> bool:
    url = urlsplit(worker)
    return (url.hostname, url.port or 80) == (app.settings.host, app.settings.port)


async def _ask(c: Reader, worker: str, name: str, project_id: str, key: str) -> Any:
    if _is_self(c.app, worker):
        return answer_locally(c.app, name, project_id, key)
    return await c.ask_worker(worker, name, project_id, key)


async def _ask_owner(c: Reader, table: str, route_key: str, name: str, project_id: str, key: str) -> Any:
    """Question `name` answered by the worker that owns `route_key` in `table`."""
    return await _ask(c, _owner(c.app, table, route_key), name, project_id, key)


async def _ask_all(c: Reader, table: str, name: str, project_id: str, key: str) -> list[Any]:
    """Question `name` answered by every worker that owns partitions of `table`; one answer each."""
    workers = [str(w) for w, topics in c.app.router.table_metadata(table).items() if any(topics.values())]
    if not workers:
        raise Unavailable("partitions are being assigned, retry later")
    return list(await asyncio.gather(*(_ask(c, w, name, project_id, key) for w in workers)))
