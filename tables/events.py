"""Read side of the event tables: the queries a worker answers from its own partitions.

Each function reads only local table data. `convoy_stream/web/lookups.py`
decides which worker to ask: the owner of a key, or every worker (scatter),
then merges.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def event(events: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    document = events.get(uid)
    if document is None or document.get("project_id") != project_id:
        return None
    return dict(document)


def events_by_ids(events: Mapping[str, Any], project_id: str, uids: Iterable[str]) -> list[dict[str, Any]]:
    found = (event(events, project_id, uid) for uid in uids)
    return sorted((e for e in found if e is not None), key=lambda e: e["uid"], reverse=True)


def events_by_dedup_key(events: Mapping[str, Any], idempotency: Mapping[str, Any], project_id: str, dedup_key: str) -> list[dict[str, Any]]:
    return events_by_ids(events, project_id, idempotency.get(dedup_key) or [])


def events_by_broker_id(events: Mapping[str, Any], broker_ids: Mapping[str, Any], project_id: str, broker_message_id: str) -> list[dict[str, Any]]:
    return events_by_ids(events, project_id, broker_ids.get(f"{project_id}/{broker_message_id}") or [])


def delivery(deliveries: Mapping[str, Any], project_id: str, uid: str) -> dict[str, Any] | None:
    document = deliveries.get(uid)
    if document is None or document.get("project_id") != project_id:
        return None
    return dict(document)


def deliveries_of_events(deliveries: Mapping[str, Any], event_documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for document in event_documents:
        for uid in document.get("delivery_ids", []):
            stored = deliveries.get(uid)
            if stored is not None:
                found.append(dict(stored))
    return sorted(found, key=lambda d: d["uid"], reverse=True)
