"""The REST event bodies (docs/convoy-behaviour.md#rest-events): single, fanout, broadcast, dynamic."""

from __future__ import annotations

from typing import Any

from ..limits import header_map_problem
from .fields import (INVALID_URL, URL_SCHEMA, Field, FieldErrors, Shape, ValidationError, as_object, blank, is_http_url,
                     missing, opt_str_list, str_map, text)

EVENT_KINDS = ("single", "fanout", "broadcast", "dynamic")

_EVENT_TYPE = Field("event_type", required="please provide an event type", blank_is_missing=True)
_DATA = Field("data", "any", required="please provide your data")
_CUSTOM_HEADERS = Field("custom_headers", "map")
_IDEMPOTENCY_KEY = Field("idempotency_key")

#: Each kind's fields in Convoy's declaration order: the order of its messages, and of the
#: type checks of its strings.
EVENT_SHAPES: dict[str, Shape] = {
    "single": Shape((Field("app_id"), Field("endpoint_id"), Field("owner_id"), _DATA, _EVENT_TYPE, _CUSTOM_HEADERS,
                     _IDEMPOTENCY_KEY),
                    description="`endpoint_id` (or Convoy's older `app_id`) is required."),
    "fanout": Shape((Field("owner_id", required="please provide an owner id", blank_is_missing=True), _EVENT_TYPE,
                     _DATA, _CUSTOM_HEADERS, _IDEMPOTENCY_KEY)),
    "broadcast": Shape((_EVENT_TYPE, _DATA, _CUSTOM_HEADERS, _IDEMPOTENCY_KEY)),
    "dynamic": Shape((Field("url", required="please provide an endpoint url", blank_is_missing=True, extra=URL_SCHEMA),
                      Field("secret"), Field("data", "any", required="please provide your webhook event data"),
                      _EVENT_TYPE, Field("event_types", "array"), _CUSTOM_HEADERS, _IDEMPOTENCY_KEY)),
}


#: Per kind, worked out once: its string fields, and its required fields in declaration order.
_STRING_FIELDS = {kind: tuple(spec.name for spec in shape.fields if spec.kind == "string")
                  for kind, shape in EVENT_SHAPES.items()}
_REQUIRED = {kind: tuple(spec for spec in shape.fields if spec.required) for kind, shape in EVENT_SHAPES.items()}


def validate_event(kind: str, body: Any) -> dict[str, Any]:
    """Validate a REST event body for ``single|fanout|broadcast|dynamic``.

    Returns the kind's fields: ``event_type``, ``data``, ``custom_headers`` (``{}`` when
    absent), ``idempotency_key`` (``None`` when absent or empty) plus
    ``endpoint_id``/``app_id`` (single), ``owner_id`` (fanout) or ``url``, ``secret``,
    ``event_types`` (dynamic, default ``["*"]``). ``data`` may be any JSON value but
    must be present and not ``null`` (a null event has nothing to deliver). Required
    strings that are only whitespace count as missing.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    obj = as_object(body)
    strings = {name: text(obj, name) for name in _STRING_FIELDS[kind]}
    custom_headers = str_map(obj, "custom_headers") if obj.get("custom_headers") is not None else {}
    problem = header_map_problem(custom_headers) if custom_headers else None
    if problem:
        raise ValidationError(f"custom_headers:{problem}")
    event_types = opt_str_list(obj, "event_types") if kind == "dynamic" else None

    if any(missing(spec, obj.get("data") if spec.kind == "any" else strings[spec.name]) for spec in _REQUIRED[kind]):
        errors = FieldErrors()
        for spec in _REQUIRED[kind]:
            if missing(spec, obj.get("data") if spec.kind == "any" else strings[spec.name]):
                errors.add(spec.name, spec.required)
        errors.raise_if_any()

    result: dict[str, Any] = {"event_type": strings["event_type"], "data": obj["data"],
                              "custom_headers": custom_headers,
                              "idempotency_key": strings["idempotency_key"] or None}
    if kind == "single":
        if blank(strings["endpoint_id"]) and blank(strings["app_id"]):
            raise ValidationError("please provide an endpoint ID")
        result["endpoint_id"] = strings["endpoint_id"] or None
        result["app_id"] = strings["app_id"] or None
    elif kind == "fanout":
        result["owner_id"] = strings["owner_id"]
    elif kind == "dynamic":
        if not is_http_url(strings["url"]):
            raise ValidationError(f"url:{INVALID_URL}")
        result["url"] = strings["url"].strip()
        result["secret"] = strings["secret"] or None
        result["event_types"] = [t for t in event_types or [] if t.strip()] or ["*"]
    return result
