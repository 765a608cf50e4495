"""Read side of the events table: the queries a worker answers from its own partitions.

Each function reads only local table data. `queries.py` decides which worker
answers (the owner of a key, or every worker); the API merges their answers.
An event's row holds its deliveries (`records.event_document`), and a
delivery id starts with its event id, so every query reads events rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import orjson

from convoy_stream.ids import scoped
from convoy_stream.records import deliveries_of, delivery_view, delivery_views, event_view
from convoy_stream.routing import event_uid_of

from .scan import HIGH, LOW, SCAN_BUDGET, Budget, scan


def _row(events: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    return events.get(scoped(project_id, uid))


def event(events: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    row = _row(events, project_id, uid)
    return event_view(row) if row is not None else None


def _rows_by_ids(events: Mapping[str, Any], project_id: str, uids: Iterable[str]) -> list[dict[str, Any]]:
    rows = (_row(events, project_id, uid) for uid in uids)
    return sorted((r for r in rows if r is not None), key=lambda r: r["uid"], reverse=True)


def events_by_dedup_key(events: Mapping[str, Any], idempotency: Mapping[str, Any], project_id: str, dedup_key: str) -> list[dict[str, Any]]:
    return [event_view(r) for r in _rows_by_ids(events, project_id, idempotency.get(dedup_key) or [])]


def _broker_rows(events: Mapping[str, Any], broker_ids: Mapping[str, Any], project_id: str, broker_message_id: str,
                 owned: Callable[[str], bool] | None) -> list[dict[str, Any]]:
    """Rows of the events indexed under a broker message id. Every worker is asked (the
    events may be in any partition) and each holds standby copies of others' partitions:
    ``owned`` keeps the rows of its active partitions only, so no event is listed twice."""
    rows = _rows_by_ids(events, project_id, broker_ids.get(scoped(project_id, broker_message_id)) or [])
    return rows if owned is None else [r for r in rows if owned(scoped(project_id, r["uid"]))]


def events_by_broker_id(events: Mapping[str, Any], broker_ids: Mapping[str, Any], project_id: str, broker_message_id: str,
                        owned: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    return [event_view(r) for r in _broker_rows(events, broker_ids, project_id, broker_message_id, owned)]


def deliveries_by_broker_id(events: Mapping[str, Any], broker_ids: Mapping[str, Any], project_id: str, broker_message_id: str,
                            owned: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    rows = _broker_rows(events, broker_ids, project_id, broker_message_id, owned)
    return sorted((d for r in rows for d in delivery_views(r)), key=lambda d: d["uid"], reverse=True)


def deliveries_of_event(events: Mapping[str, Any], project_id: str, uid: str) -> list[dict[str, Any]]:
    row = _row(events, project_id, uid)
    return sorted(delivery_views(row), key=lambda d: d["uid"], reverse=True) if row is not None else []


def deliveries_by_dedup_key(events: Mapping[str, Any], idempotency: Mapping[str, Any], project_id: str, dedup_key: str) -> list[dict[str, Any]]:
    rows = _rows_by_ids(events, project_id, idempotency.get(dedup_key) or [])
    return sorted((d for r in rows for d in delivery_views(r)), key=lambda d: d["uid"], reverse=True)


def delivery(events: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    return next((d for d in deliveries_of_event(events, project_id, event_uid_of(uid)) if d["uid"] == uid), None)


# -- listing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """Where a page starts and which way it walks.

    `lower`/`upper` are exclusive uid bounds (dates become ULID bounds; a
    cursor narrows one side). Descending = newest first ("next" pages).
    """

    limit: int
    lower: str = LOW
    upper: str = HIGH
    descending: bool = True


@dataclass(frozen=True)
class EventFilter:
    source_ids: frozenset[str] = frozenset()
    endpoint_ids: frozenset[str] = frozenset()
    owner_id: str = ""
    idempotency_key: str = ""
    broker_message_id: str = ""
    query: str = ""
    #: Sources whose name contains `query` (the web layer resolves names from the config).
    query_source_ids: frozenset[str] = frozenset()
    #: A JSON object the payload must contain (`contains`), as its JSON text.
    body: str = ""
    event_types: frozenset[str] = frozenset()

    def needles(self) -> list[list[bytes]]:
        """Values a matching stored row must contain (see `scan`)."""
        return _needles(self.source_ids, self.endpoint_ids, {self.owner_id} - {""}, self.event_types,
                        *_body_scalars(self.body))

    def accepts(self, e: Mapping[str, Any]) -> bool:
        return ((not self.source_ids or e.get("source_id") in self.source_ids)
                and (not self.endpoint_ids or bool(self.endpoint_ids.intersection(e.get("endpoints") or [])))
                and (not self.owner_id or e.get("owner_id") == self.owner_id)
                and (not self.idempotency_key or e.get("idempotency_key") == self.idempotency_key)
                and (not self.broker_message_id or e.get("broker_message_id") == self.broker_message_id)
                and (not self.query or _query_matches(self.query, self.query_source_ids, e))
                and (not self.event_types or e.get("event_type") in self.event_types)
                and (not self.body or contains(e.get("data"), _parsed(self.body))))


def _query_matches(query: str, source_ids: frozenset[str], e: Mapping[str, Any]) -> bool:
    """Text search: an event id prefix, part of the event type, the source's name (resolved to
    `source_ids`), or the whole idempotency key or broker message id (case-insensitive)."""
    q = query.lower()
    return (str(e.get("uid", "")).lower().startswith(q) or q in str(e.get("event_type", "")).lower()
            or q == str(e.get("idempotency_key", "")).lower() or q == str(e.get("broker_message_id", "")).lower()
            or e.get("source_id") in source_ids)


@lru_cache(maxsize=64)
def _parsed(body: str) -> Any:
    return orjson.loads(body)


def contains(value: Any, wanted: Any) -> bool:
    """Whether `value` contains `wanted`, as PostgreSQL's `@>` on JSON: an object contains an
    object whose every key it has with a containing value; an array contains an array whose
    every element one of its elements contains; scalars are equal (1 and 1.0 too)."""
    if isinstance(wanted, dict):
        return isinstance(value, dict) and all(k in value and contains(value[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(value, list) and all(any(contains(item, w) for item in value) for w in wanted)
    if isinstance(wanted, bool) or isinstance(value, bool):
        return type(wanted) is type(value) and wanted == value
    return bool(value == wanted)


def _body_scalars(body: str) -> list[list[str]]:
    """The pre-filter groups of a `body` search: every string it holds must be in the stored row."""
    if not body:
        return []
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, inner in v.items():
                found.append(k)
                walk(inner)
        elif isinstance(v, list):
            for inner in v:
                walk(inner)
        elif isinstance(v, str):
            found.append(v)

    walk(_parsed(body))
    return [[s] for s in found]


@dataclass(frozen=True)
class DeliveryFilter:
    event_ids: frozenset[str] = frozenset()
    endpoint_ids: frozenset[str] = frozenset()
    subscription_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    idempotency_key: str = ""
    broker_message_id: str = ""
    source_ids: frozenset[str] = frozenset()

    def needles(self) -> list[list[bytes]]:
        """Values the stored event row of a matching delivery must contain (see `scan`)."""
        return _needles(self.endpoint_ids, self.subscription_ids, self.event_types, self.statuses, self.source_ids)

    def accepts(self, d: Mapping[str, Any]) -> bool:
        return ((not self.event_ids or d.get("event_id") in self.event_ids)
                and (not self.endpoint_ids or d.get("endpoint_id") in self.endpoint_ids)
                and (not self.subscription_ids or d.get("subscription_id") in self.subscription_ids)
                and (not self.event_types or d.get("event_type") in self.event_types)
                and (not self.statuses or d.get("status") in self.statuses)
                and (not self.idempotency_key or d.get("idempotency_key") == self.idempotency_key)
                and (not self.broker_message_id or d.get("broker_message_id") == self.broker_message_id)
                and (not self.source_ids or d.get("source_id") in self.source_ids))


def _needles(*groups: Iterable[str]) -> list[list[bytes]]:
    # Rows are stored as orjson's JSON, so a string value appears exactly as orjson encodes it.
    return [[orjson.dumps(value) for value in group] for group in groups if group]



#: Marks the last item of a local page whose walk ran out of budget (`scan.Budget`): its
#: "uid" is the bound through which this worker has read every row (see `listing.merge`).
READ_THROUGH = "__read_through"


def _with_stop(found: list[dict[str, Any]], budget: Budget, through: Callable[[str], str]) -> list[dict[str, Any]]:
    if budget.exhausted and budget.stopped_at is not None:
        found.append({"uid": through(budget.stopped_at.split("/", 1)[1]), READ_THROUGH: True})
    return found


def list_rows(table: Any, project_id: str, accepts: Callable[[Mapping[str, Any]], bool], page: Page,
              active: Callable[[str], bool], needles: Sequence[Sequence[bytes]] = ()) -> list[dict[str, Any]]:
    """Up to `page.limit` local rows of one project that pass `accepts`, in page order.

    Reads at most SCAN_BUDGET rows; then the list ends with a READ_THROUGH marker.
    """
    budget = Budget(SCAN_BUDGET)
    rows = (value for _, value in scan(table, project_id + "/", active=active, lower=page.lower,
                                       upper=page.upper, descending=page.descending, needles=needles, budget=budget))
    return _with_stop(list(islice((row for row in rows if accepts(row)), page.limit)), budget, lambda uid: uid)


def list_events(events: Any, project_id: str, f: EventFilter, page: Page, active: Callable[[str], bool]) -> list[dict[str, Any]]:
    return [row if row.get(READ_THROUGH) else event_view(row)
            for row in list_rows(events, project_id, f.accepts, page, active, f.needles())]


def list_deliveries(events: Any, project_id: str, f: DeliveryFilter, page: Page, active: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Deliveries in page order; the page bounds are delivery uids (or ULID date bounds).

    Rows are scanned by event uid, the first 26 characters of a delivery uid,
    so the scan starts at the bound's event and skips its deliveries that lie
    outside the bound.
    """
    lower_event = page.lower[:25] if len(page.lower) > 26 else page.lower  # include the bound's own event
    upper_event = page.upper[:26] + HIGH if len(page.upper) > 26 else page.upper
    budget = Budget(SCAN_BUDGET)
    rows = scan(events, project_id + "/", active=active, lower=lower_event, upper=upper_event, descending=page.descending,
                needles=f.needles(), budget=budget)

    def in_page() -> Iterator[dict[str, Any]]:
        for _, row in rows:
            for d in sorted(deliveries_of(row), key=lambda d: d["uid"], reverse=page.descending):
                if page.lower < d["uid"] < page.upper and f.accepts(d):
                    yield d

    # Walking up, every delivery of the last event read lies below `<event uid>~`.
    through = (lambda uid: uid) if page.descending else (lambda uid: uid + "~")
    return _with_stop([delivery_view(d) for d in islice(in_page(), page.limit)], budget, through)


def within(rows: Iterable[dict[str, Any]], accepts: Callable[[Mapping[str, Any]], bool], page: Page) -> list[dict[str, Any]]:
    """A page of rows found by an index rather than a scan: same bounds, order and limit."""
    inside = (r for r in rows if page.lower < r["uid"] < page.upper and accepts(r))
    return sorted(inside, key=lambda r: r["uid"], reverse=page.descending)[: page.limit]
