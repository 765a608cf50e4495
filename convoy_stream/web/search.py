"""The event list's search parameters: `query` (text) and `body` (JSON containment).

Both are answered from the tables by `tables.events.EventFilter`, with the list's cursor
rules; this module only turns the parameters into the filter's fields.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from tables.config import ConfigStore

from .envelope import ApiError

#: Longest `body` accepted: a search, not a payload.
MAX_BODY_PARAM = 4096


def sources_named(config: ConfigStore, project_id: str, query: str) -> frozenset[str]:
    """Ids of the project's sources whose name contains `query` (case-insensitive)."""
    if not query:
        return frozenset()
    q = query.lower()
    return frozenset(s["uid"] for s in config.project_entities("source", project_id) if q in str(s.get("name", "")).lower())


def body_param(query: Mapping[str, str]) -> str:
    """`body` as compact JSON text, or "" when absent; 400 unless it is a JSON object."""
    raw = query.get("body", "")
    if not raw:
        return ""
    if len(raw) > MAX_BODY_PARAM:
        raise ApiError(400, f"body must be at most {MAX_BODY_PARAM} characters")
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body must be a JSON object, e.g. {\"customer\":{\"id\":\"cus_1\"}}") from None
    if not isinstance(value, dict) or not value:
        raise ApiError(400, "body must be a non-empty JSON object, e.g. {\"customer\":{\"id\":\"cus_1\"}}")
    return orjson.dumps(value).decode()
