"""Typed records that travel on convoy-stream's topics.

Every way in (REST, webhook ingest, broker bridges) produces one
`IngestRecord` onto the ingest topic; the pipeline agent turns it into a
stored event and one `Delivery` per matched subscription.
"""

from __future__ import annotations

from typing import Any, Optional

import faust

from . import codecs  # noqa: F401  (registers the orjson codec)
from .faust_ext.records import assemble, assemble_payload, required_fields
from .limits import MAX_JSON_DEPTH, json_depth_exceeds


class IngestRecord(faust.Record, serializer="orjson"):
    """An accepted event, durable in Kafka before anyone is told "accepted"."""

    uid: str
    project_id: str
    kind: str  # single | fanout | broadcast | webhook
    event_type: str
    data: Any
    created_at: str
    endpoint_id: str = ""
    owner_id: str = ""
    source_id: str = ""
    idempotency_key: str = ""
    dedup_key: str = ""
    #: Stored on the event (credentials already redacted). Names as Convoy stores them: a
    #: webhook's in Go's canonical case, REST custom headers as sent, broker headers lower-case.
    headers: dict[str, str] = {}
    #: Headers forwarded to endpoints with every delivery.
    forward_headers: dict[str, str] = {}
    url_query_params: str = ""
    url_path: str = ""
    broker: str = ""
    broker_message_id: str = ""
    #: Non-JSON webhook bodies are kept as text here and `data` is None.
    raw: Optional[str] = None
    #: The config offset the publishing worker had applied (`tables/config.py`).
    config_offset: int = -1

    @classmethod
    def from_data(cls, data: Any, *, preferred_type: Any = None) -> Any:
        """Decode what our own `Publisher` wrote, without Faust's generic per-field setters.

        Those took a tenth of the pipeline's CPU. The result is the record Faust would
        build: every field in `__dict__`, defaults for absent ones. Anything unusual
        (a missing field, another type, a subclass) takes Faust's own path and its errors.
        """
        if cls is IngestRecord and type(data) is dict and _REQUIRED.issubset(data):
            return assemble_payload(cls, data)
        return super().from_data(data, preferred_type=preferred_type)

    @classmethod
    def build(cls, **fields: Any) -> "IngestRecord":
        """A record from values the way in already validated, without Faust's per-field
        setters, a fifth of a bridge message's CPU (docs/mechanisms.md#hot-path)."""
        return assemble(cls, fields)


_REQUIRED = required_fields(IngestRecord)


class Delivery(faust.Record, serializer="orjson"):
    """One event for one endpoint via one subscription, ready for a dispatcher."""

    uid: str
    event_id: str
    project_id: str
    endpoint_id: str
    subscription_id: str
    event_type: str
    status: str
    headers: dict[str, str]
    data: Any
    created_at: str
    source_id: str = ""
    idempotency_key: str = ""
    broker_message_id: str = ""
    url: str = ""

    @classmethod
    def build(cls, **fields: Any) -> "Delivery":
        """A delivery from trusted values (`routing.build_deliveries`), without Faust's per-field setters."""
        return assemble(cls, fields)


def event_document(record: IngestRecord, *, is_duplicate: bool, deliveries: list[Delivery], status: str) -> dict[str, Any]:
    """The event as stored in the events table (Convoy's shape, plus its deliveries).

    Deliveries live in their event's row (without `data`, which the event
    holds): one table write per event instead of one per delivery.
    """
    headers = {name: [value] for name, value in record.headers.items()}
    if record.broker_message_id:
        headers["x-broker-message-id"] = [record.broker_message_id]
    return {
        "uid": record.uid,
        "event_type": record.event_type,
        "project_id": record.project_id,
        "source_id": record.source_id,
        "endpoints": sorted({d.endpoint_id for d in deliveries}),
        "owner_id": record.owner_id,
        "headers": headers,
        "data": record.data,
        "raw": record.raw or "",
        "url_query_params": record.url_query_params,
        "url_path": record.url_path,
        "idempotency_key": record.idempotency_key,
        "dedup_key": record.dedup_key,
        "broker_message_id": record.broker_message_id,
        "is_duplicate_event": is_duplicate,
        "status": status,
        "deliveries": [{k: v for k, v in d.asdict().items() if k != "data"} for d in deliveries],
        "created_at": record.created_at,
        "updated_at": record.created_at,
        "acknowledged_at": record.created_at,
        "deleted_at": None,
    }


#: Fields of the stored event that are ours, not Convoy's: kept out of API answers.
INTERNAL_EVENT_FIELDS = ("deliveries", "dedup_key")


#: Set on an event or delivery shown without its data, with the reason.
DATA_OMITTED = "data_omitted"
DATA_TOO_DEEP = f"data nested deeper than {MAX_JSON_DEPTH} levels is not shown"


def _unreadable(data: Any) -> bool:
    """Data no answer could encode: nested deeper than the parsers accept (stored before the
    limit existed). Lists show such a row with `DATA_OMITTED` instead of failing the page."""
    return isinstance(data, (dict, list)) and json_depth_exceeds(data)


def event_view(document: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in document.items() if k not in INTERNAL_EVENT_FIELDS}
    if _unreadable(view.get("data")):
        view["data"] = None
        view[DATA_OMITTED] = DATA_TOO_DEEP
    return view


def deliveries_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's delivery documents, each with the event's data, as on the delivery topic."""
    data = document["data"] if document.get("raw") in (None, "") else document["raw"]
    return [{**d, "data": data} for d in document.get("deliveries", [])]


def delivery_view(delivery: dict[str, Any]) -> dict[str, Any]:
    """A delivery as API answers show it: data no answer could encode is omitted."""
    if _unreadable(delivery.get("data")):
        return {**delivery, "data": None, DATA_OMITTED: DATA_TOO_DEEP}
    return delivery


def delivery_views(document: dict[str, Any]) -> list[dict[str, Any]]:
    """`deliveries_of` as API answers show them (`delivery_view`)."""
    return [delivery_view(d) for d in deliveries_of(document)]
