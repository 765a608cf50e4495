"""An event delivery as Convoy answers it (`datastore.EventDelivery`).

convoy-stream builds delivery records for a dispatcher and sends nothing itself,
so the fields about sending have Convoy's values for a delivery not yet tried:
latency "" and 0, `metadata.num_trials` 0, no device, no CLI metadata.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import Lookup, header_map, with_defaults
from .endpoints import endpoint_answer
from .sources import source_answer

DEFAULTS: dict[str, Any] = {
    "device_id": "", "url_query_params": "", "idempotency_key": "", "latency": "", "latency_seconds": 0,
    "delivery_mode": "at_least_once", "cli_metadata": None, "deleted_at": None,
}


def metadata(delivery: dict[str, Any]) -> dict[str, Any]:
    """Convoy's delivery metadata: the body to send, and a retry schedule not yet started."""
    data = delivery.get("data")
    raw = data if isinstance(data, str) else orjson.dumps(data).decode() if data is not None else ""
    return {
        "data": data if isinstance(data, dict) else None, "raw": raw, "strategy": "linear",
        "next_send_time": delivery.get("created_at", ""), "num_trials": 0, "interval_seconds": 0,
        "retry_limit": 0, "max_retry_seconds": 0,
    }


def delivery_answer(delivery: dict[str, Any], config: Lookup) -> dict[str, Any]:
    answer = with_defaults(delivery, DEFAULTS)
    answer["headers"] = header_map(delivery.get("headers"))
    answer["target_url"] = delivery.get("target_url") or delivery.get("url") or ""
    answer["metadata"] = metadata(delivery)
    answer["acknowledged_at"] = delivery.get("acknowledged_at") or delivery.get("created_at", "")
    answer["updated_at"] = delivery.get("updated_at") or delivery.get("created_at", "")
    endpoint = config.get("endpoint", delivery.get("endpoint_id") or "")
    answer["endpoint_metadata"] = endpoint_answer(endpoint) if endpoint else None
    source = config.get("source", delivery.get("source_id") or "") if delivery.get("source_id") else None
    if source:
        answer["source_metadata"] = source_answer(source)
    return answer
