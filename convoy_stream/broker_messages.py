"""A broker message as Convoy defines it (docs/convoy-behaviour.md#broker-message), turned into an ingest record.

Pure: the bridges' handle calls `to_record`, then publishes. Anything that
makes a message invalid forever raises `InvalidMessage`, so the shared loop
dead-letters and acks it (docs/decisions.md#decision-12). The message's own
rules are here (`validate_broker_message`, `message_type`); a source's broker
config is `broker_config`'s.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from bridges.base import BrokerMessage, InvalidMessage

from . import transforms
from .ids import dedup_key as dedup_key_of
from .limits import forwardable, header_map_problem
from .records import IngestRecord
from .routing import ConfigView
from .webhook_payload import loads_json

BROKER_MESSAGE_ID = "x-broker-message-id"
MESSAGE_TYPE_HEADER = "x-convoy-message-type"
MESSAGE_TYPES = ("single", "fanout", "broadcast")


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


# ------------------------------------------------------------------------ the message's rules


_BROKER_FIELDS = ("endpoint_id", "owner_id", "event_type", "data", "custom_headers", "idempotency_key")


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_broker_message(body: bytes) -> dict[str, Any]:
    """Validate a broker message body (docs/convoy-behaviour.md#broker-message,
    steps 1, 3 and 4).

    Apply the source's ``body_function`` before calling this. The body must be a JSON
    object with only ``endpoint_id, owner_id, event_type, data, custom_headers,
    idempotency_key`` (Go's ``DisallowUnknownFields``: an unknown field is named in the
    reason); ``event_type`` must be non-empty and ``data`` present and not ``null``.
    Returns all six fields; absent strings are ``None``, ``custom_headers`` ``{}``.
    Raises :class:`InvalidMessage` - such a message can never succeed, so it is
    dead-lettered rather than retried.
    """
    try:
        value = loads_json(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"message body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidMessage(f"json: cannot unmarshal {_json_type_name(value)} into a Convoy event object")
    for key in value:
        if key not in _BROKER_FIELDS:
            raise InvalidMessage(f'json: unknown field "{key}"')
    for key in ("endpoint_id", "owner_id", "event_type", "idempotency_key"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise InvalidMessage(f'json: cannot unmarshal {_json_type_name(item)} into field "{key}" of type string')
    headers = value.get("custom_headers")
    if headers is not None:
        if not isinstance(headers, dict):
            raise InvalidMessage(f'json: cannot unmarshal {_json_type_name(headers)} into field "custom_headers" '
                                 "of type map[string]string")
        for name, item in headers.items():
            if not isinstance(item, str):
                raise InvalidMessage(f'json: cannot unmarshal {_json_type_name(item)} into field '
                                     f'"custom_headers.{name}" of type string')
        problem = header_map_problem(headers)
        if problem:
            raise InvalidMessage(f"custom_headers: {problem}")
    if not (value.get("event_type") or "").strip():
        raise InvalidMessage("the payload doesn't include an event type")
    if value.get("data") is None:
        raise InvalidMessage("the payload doesn't include any data")
    return {
        "endpoint_id": value.get("endpoint_id") or None,
        "owner_id": value.get("owner_id") or None,
        "event_type": value["event_type"],
        "data": value["data"],
        "custom_headers": dict(headers or {}),
        "idempotency_key": value.get("idempotency_key") or None,
    }


def merge_broker_headers(headers: Mapping[str, str], custom_headers: Mapping[str, str]) -> dict[str, str]:
    """One header map with lower-case names (docs/decisions.md#decision-13): broker headers win.

    Convoy kept both the original and a lower-cased copy of every name; we keep only
    the lower-cased one. A ``custom_headers`` entry is used when the broker did not set
    that name.
    """
    merged = {name.lower(): value for name, value in custom_headers.items()}
    merged.update({name.lower(): value for name, value in headers.items()})
    return merged


def message_type(headers: Mapping[str, str], custom_headers: Mapping[str, str]) -> str:
    """The routing of a broker message: ``single`` (default), ``fanout`` or ``broadcast``.

    Read from ``x-convoy-message-type`` in the broker headers, else in the message's
    ``custom_headers`` (names case-insensitive). Any other value raises
    :class:`InvalidMessage` with Convoy's text.
    """
    value = merge_broker_headers(headers, custom_headers).get(MESSAGE_TYPE_HEADER, "single")
    if value not in MESSAGE_TYPES:
        raise InvalidMessage(f"{value} isn't a valid pubsub message type, it should be one of single, "
                             "fanout or broadcast")
    return value
