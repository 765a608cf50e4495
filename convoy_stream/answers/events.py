"""An event as Convoy answers it (`datastore.Event`), with its endpoints and source."""

from __future__ import annotations

from typing import Any

from . import Lookup, header_map, with_defaults
from .endpoints import endpoint_answer
from .sources import source_answer

#: Why an event has status Failure (Convoy's text).
NO_MATCH = "no subscription matched this event"

DEFAULTS: dict[str, Any] = {
    "source_id": "", "url_query_params": "", "url_path": "", "idempotency_key": "", "is_duplicate_event": False,
    "acknowledged_at": None, "deleted_at": None,
}


def event_status(stored: dict[str, Any]) -> str:
    """Convoy's status: a duplicate (stored as `Duplicate`, which Convoy's enum lacks) answers
    `Success`: it was handled as intended, and `is_duplicate_event` says how."""
    status = stored.get("status") or "Pending"
    return "Success" if status == "Duplicate" else status


def event_answer(stored: dict[str, Any], config: Lookup) -> dict[str, Any]:
    answer = with_defaults(stored, DEFAULTS)
    answer["status"] = event_status(stored)
    answer["headers"] = header_map(stored.get("headers"))
    answer["endpoints"] = list(stored.get("endpoints") or [])
    answer["updated_at"] = stored.get("updated_at") or stored.get("created_at", "")
    if answer["status"] == "Failure":
        answer.setdefault("failure_reason", NO_MATCH)
    if not answer.get("raw"):
        answer.pop("raw", None)  # Convoy omits an empty raw body
    endpoints = [config.get("endpoint", uid) for uid in answer["endpoints"]]
    answer["endpoint_metadata"] = [endpoint_answer(e) for e in endpoints if e]
    source = config.get("source", answer["source_id"]) if answer["source_id"] else None
    if source:
        answer["source_metadata"] = source_answer(source)
    return answer
