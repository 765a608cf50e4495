"""A subscription as Convoy answers it (`datastore.Subscription`), with its endpoint and source."""

from __future__ import annotations

from typing import Any

from . import Lookup, with_defaults
from .endpoints import endpoint_answer
from .sources import source_answer

DEFAULTS: dict[str, Any] = {
    "type": "api", "function": None, "device_metadata": None, "delivery_mode": "at_least_once", "deleted_at": None,
}


def filter_config(stored: Any) -> dict[str, Any]:
    """Convoy's filter configuration: every filter scope written, `{}` matching everything."""
    stored = stored if isinstance(stored, dict) else {}
    filters = stored.get("filter") if isinstance(stored.get("filter"), dict) else {}
    return {
        "event_types": list(stored.get("event_types") or ["*"]),
        "filter": {"is_flattened": bool(filters.get("is_flattened", False)),
                   **{scope: filters.get(scope) or {} for scope in ("headers", "body", "query", "path")}},
    }


def subscription_answer(subscription: dict[str, Any], config: Lookup) -> dict[str, Any]:
    answer = with_defaults(subscription, DEFAULTS)
    answer["filter_config"] = filter_config(subscription.get("filter_config"))
    endpoint = config.get("endpoint", subscription.get("endpoint_id") or "")
    source = config.get("source", subscription.get("source_id") or "") if subscription.get("source_id") else None
    answer["endpoint_metadata"] = endpoint_answer(endpoint) if endpoint else None
    answer["source_metadata"] = source_answer(source) if source else None
    return answer
