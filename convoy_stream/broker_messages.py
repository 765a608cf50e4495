"""A broker message as Convoy defines it, turned into an ingest record.

Pure: the bridges' handle calls `to_record`, then publishes. Anything that
makes a message invalid forever raises `InvalidMessage`, so the shared loop
dead-letters and acks it (docs/decisions.md#decision-12).
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from bridges.base import BrokerMessage, InvalidMessage

from . import transforms
from .ids import dedup_key as dedup_key_of
from .limits import forwardable
from .records import IngestRecord
from .routing import ConfigView
from .validation import merge_broker_headers, message_type, validate_broker_message
from .webhook_payload import loads_json

BROKER_MESSAGE_ID = "x-broker-message-id"


def to_record(source: Mapping[str, Any], message: BrokerMessage, *, config: ConfigView, event_id: Any, now: str) -> IngestRecord:
    """`event_id(dedup_key)` mints the id (partition-aligned, see `ids`).

    A source with a `body_function` or `header_function` runs it here (`transforms`):
    call this on the script pool then (`uses_transforms`, `transforms.in_script_pool`).
    """
    fields = validate_broker_message(_transformed_body(source, message.body))
    custom = fields.get("custom_headers") or {}
    headers = merge_broker_headers(message.headers, custom)
    headers[BROKER_MESSAGE_ID] = message.message_id
    headers = forwardable(_transformed_headers(source, headers))
    kind = message_type(headers, {})
    project_id = str(source["project_id"])
    endpoint_id = fields.get("endpoint_id") or ""
    owner_id = fields.get("owner_id") or ""
    if kind == "single":
        if not endpoint_id:
            raise InvalidMessage("single message doesn't include an endpoint id")
        if config.endpoint(project_id, endpoint_id) is None:
            raise InvalidMessage(f"single message includes an invalid endpoint id: {endpoint_id}")
    elif kind == "fanout" and not owner_id:
        raise InvalidMessage("fanout message doesn't include an owner id")
    elif kind == "broadcast":
        endpoint_id = owner_id = ""
    idempotency_key = fields.get("idempotency_key") or ""
    dedup_key = dedup_key_of(project_id, idempotency_key) if idempotency_key else redelivery_key(source, message)
    return IngestRecord.build(
        uid=event_id(dedup_key), project_id=project_id, kind=kind, event_type=fields["event_type"],
        data=fields["data"], created_at=now, endpoint_id=endpoint_id, owner_id=owner_id,
        source_id=str(source["uid"]), idempotency_key=idempotency_key, dedup_key=dedup_key,
        headers=headers, forward_headers=headers, broker=str((source.get("pub_sub") or {}).get("type", "")),
        broker_message_id=message.message_id,
    )


def uses_transforms(source: Mapping[str, Any]) -> bool:
    return bool(source.get("body_function") or source.get("header_function"))


def _transformed_body(source: Mapping[str, Any], body: bytes) -> bytes:
    """The body after the source's `body_function` (Convoy: parse, transform, re-marshal)."""
    script = source.get("body_function")
    if not script:
        return body
    try:
        payload = loads_json(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"message body is not valid JSON: {exc}") from None
    try:
        return orjson.dumps(transforms.run(script, payload, project=str(source["project_id"])))
    except transforms.TransformError as exc:
        raise InvalidMessage(f"body_function: {exc}") from None


def _transformed_headers(source: Mapping[str, Any], headers: dict[str, str]) -> dict[str, str]:
    """The merged header map after the source's `header_function`: an object of strings."""
    script = source.get("header_function")
    if not script:
        return headers
    try:
        return header_map(transforms.run(script, headers, project=str(source["project_id"])))
    except transforms.TransformError as exc:
        raise InvalidMessage(f"header_function: {exc}") from None
    except InvalidMessage as exc:
        raise InvalidMessage(f"header_function: {exc.reason}") from None


def header_map(out: Any) -> dict[str, str]:
    """A header function's result as a header map: it must be an object of strings."""
    if not isinstance(out, dict) or not all(isinstance(v, str) for v in out.values()):
        raise InvalidMessage("transform must return an object of string values")
    return {name.lower(): value for name, value in out.items()}


def redelivery_key(source: Mapping[str, Any], message: BrokerMessage) -> str:
    """A dedup key for a message without an idempotency key: the broker's own id.

    A broker redelivers a message whose ack was not seen (a crash, a Kafka
    timeout whose write in fact landed); this key makes the second copy a
    stored, undelivered duplicate instead of a second delivery.
    """
    if not message.delivery_id:
        return ""
    return dedup_key_of(str(source["project_id"]), f"broker:{source['uid']}:{message.delivery_id}")


def dead_letter_document(source: Mapping[str, Any], message: BrokerMessage, reason: str) -> dict[str, Any]:
    """What the dead-letter topic keeps: enough to understand and replay the message."""
    return {
        "reason": reason,
        "source_id": source.get("uid", ""),
        "project_id": source.get("project_id", ""),
        "broker": (source.get("pub_sub") or {}).get("type", ""),
        "broker_message_id": message.message_id,
        "original": message.body.decode("utf-8", "replace"),
        "original_is_utf8": _is_utf8(message.body),
        "headers": dict(message.headers),
    }


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
