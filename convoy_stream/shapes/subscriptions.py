"""A subscription's create and update bodies (Convoy ``api/models/subscription.go``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..filters import FilterError, validate_filter
from .fields import (NULLABLE, Field, FieldErrors, Shape, ValidationError, as_object, blank, opt_object, opt_str,
                     opt_str_list, text)

FILTER_SCOPES = ("headers", "body", "query", "path")

FILTER_CONFIG = Shape((
    Field("event_types", "array"),
    Field("filter", "object", shape=Shape(tuple(Field(scope, "object") for scope in FILTER_SCOPES))),
))
SUBSCRIPTION = Shape((
    Field("name", required="please provide a valid subscription name", blank_is_missing=True),
    Field("endpoint_id", required="please provide a valid endpoint id", blank_is_missing=True),
    Field("source_id", extra=NULLABLE),
    Field("function", extra=NULLABLE),
    Field("filter_config", "object", shape=FILTER_CONFIG),
))


def validate_subscription(body: Any, *, project_type: str, update: bool = False) -> dict[str, Any]:
    """Validate a subscription create/update body.

    Returns ``{name, endpoint_id, source_id, function, filter_config}`` where
    ``filter_config = {event_types, filter: {headers, body[, query, path]}}``;
    ``event_types`` defaults to ``["*"]`` (an empty list too), ``headers``/``body``
    default to ``{}`` (match everything); ``query``/``path`` filters (Convoy 26.3.7) are
    kept only when sent. Every filter is checked with
    :func:`convoy_stream.filters.validate_filter`; its error comes back as
    ``filter_config.filter.<scope>:<message>``. On update, a required field is checked
    only when sent.

    In an incoming project a subscription is bound to its source, so ``source_id`` is
    required (``source_id is required for incoming projects``).
    """
    obj = as_object(body)
    name = text(obj, "name")
    endpoint_id = text(obj, "endpoint_id")
    source_id = opt_str(obj, "source_id")
    errors = FieldErrors()
    for key, value in (("name", name), ("endpoint_id", endpoint_id)):
        if not update or obj.get(key) is not None:
            errors.check(SUBSCRIPTION[key], value)
    errors.raise_if_any()
    if project_type == "incoming" and blank(source_id) and (not update or source_id is not None):
        raise ValidationError("source_id is required for incoming projects")

    result: dict[str, Any] = {}
    present = (lambda key: obj.get(key) is not None) if update else (lambda key: True)
    if present("name"):
        result["name"] = name.strip()
    if present("endpoint_id"):
        result["endpoint_id"] = endpoint_id
    if present("source_id"):
        result["source_id"] = source_id or None
    if present("function"):
        result["function"] = opt_str(obj, "function") or None
    if present("filter_config"):
        result["filter_config"] = _validate_filter_config(opt_object(obj, "filter_config") or {})
    return result


def _validate_filter_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    event_types = opt_str_list(raw, "event_types", "filter_config") or ["*"]
    if any(blank(t) for t in event_types):
        raise ValidationError("event_types:please provide non-empty event types")
    filters_raw = opt_object(raw, "filter", "filter_config") or {}
    filters: dict[str, Any] = {}
    for scope in FILTER_SCOPES:
        value = opt_object(filters_raw, scope, "filter_config.filter")
        if value is None and scope in ("query", "path"):
            continue
        value = value or {}
        try:
            validate_filter(value)
        except FilterError as exc:
            raise ValidationError(f"filter_config.filter.{scope}:{exc.message}") from None
        filters[scope] = value
    return {"event_types": [t.strip() for t in event_types], "filter": filters}
