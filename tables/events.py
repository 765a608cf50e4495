"""Read side of the event tables: the queries a worker answers from its own partitions.

Each function reads only local table data. `convoy_stream/web/lookups.py`
decides which worker to ask (the owner of a key, or every worker) and merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Mapping

from convoy_stream.ids import scoped

from .scan import HIGH, LOW, scan


def event(events: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    document = events.get(scoped(project_id, uid))
    return dict(document) if document is not None else None


def events_by_ids(events: Mapping[str, Any], project_id: str, uids: Iterable[str]) -> list[dict[str, Any]]:
    found = (event(events, project_id, uid) for uid in uids)
    return sorted((e for e in found if e is not None), key=lambda e: e["uid"], reverse=True)


def events_by_dedup_key(events: Mapping[str, Any], idempotency: Mapping[str, Any], project_id: str, dedup_key: str) -> list[dict[str, Any]]:
    return events_by_ids(events, project_id, idempotency.get(dedup_key) or [])


def events_by_broker_id(events: Mapping[str, Any], broker_ids: Mapping[str, Any], project_id: str, broker_message_id: str) -> list[dict[str, Any]]:
    return events_by_ids(events, project_id, broker_ids.get(scoped(project_id, broker_message_id)) or [])


def delivery(deliveries: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    document = deliveries.get(scoped(project_id, uid))
    return dict(document) if document is not None else None


def deliveries_of_events(deliveries: Mapping[str, Any], project_id: str, event_documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for document in event_documents:
        for uid in document.get("delivery_ids", []):
            stored = deliveries.get(scoped(project_id, uid))
            if stored is not None:
                found.append(dict(stored))
    return sorted(found, key=lambda d: d["uid"], reverse=True)


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

    def accepts(self, e: Mapping[str, Any]) -> bool:
        return ((not self.source_ids or e.get("source_id") in self.source_ids)
                and (not self.endpoint_ids or bool(self.endpoint_ids.intersection(e.get("endpoints") or [])))
                and (not self.owner_id or e.get("owner_id") == self.owner_id)
                and (not self.idempotency_key or e.get("idempotency_key") == self.idempotency_key)
                and (not self.broker_message_id or e.get("broker_message_id") == self.broker_message_id)
                and (not self.query or _query_matches(self.query, e)))


def _query_matches(query: str, e: Mapping[str, Any]) -> bool:
    q = query.lower()
    return (str(e.get("uid", "")).lower().startswith(q) or q in str(e.get("event_type", "")).lower()
            or q == str(e.get("idempotency_key", "")).lower())


@dataclass(frozen=True)
class DeliveryFilter:
    event_ids: frozenset[str] = frozenset()
    endpoint_ids: frozenset[str] = frozenset()
    subscription_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    idempotency_key: str = ""
    broker_message_id: str = ""

    def accepts(self, d: Mapping[str, Any]) -> bool:
        return ((not self.event_ids or d.get("event_id") in self.event_ids)
                and (not self.endpoint_ids or d.get("endpoint_id") in self.endpoint_ids)
                and (not self.subscription_ids or d.get("subscription_id") in self.subscription_ids)
                and (not self.event_types or d.get("event_type") in self.event_types)
                and (not self.statuses or d.get("status") in self.statuses)
                and (not self.idempotency_key or d.get("idempotency_key") == self.idempotency_key)
                and (not self.broker_message_id or d.get("broker_message_id") == self.broker_message_id))


def list_rows(table: Any, project_id: str, accepts: Any, page: Page, active: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Up to `page.limit` local rows of one project that pass `accepts`, in page order."""
    rows = (dict(value) for _, value in scan(table, project_id + "/", active=active, lower=page.lower,
                                             upper=page.upper, descending=page.descending))
    return list(islice((row for row in rows if accepts(row)), page.limit))
