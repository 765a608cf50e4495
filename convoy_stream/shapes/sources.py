"""A source's create and update bodies, and its verifier (Convoy ``api/models/source.go``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..broker_config import MAX_SOURCE_WORKERS, PUB_SUB, validate_pub_sub
from ..limits import MAX_CUSTOM_RESPONSE_SIZE, is_header_value, is_token
from ..verifiers.base import ENCODINGS, HASH_ALGORITHMS
from ..verifiers.factory import PROVIDERS, VERIFIER_TYPES
from ..webhook_payload import LocationError, validate_event_type_location, validate_idempotency_locations
from .fields import (API_KEY, NULLABLE, REQUIRED, Field, FieldErrors, Shape, ValidationError, as_object, blank,
                     check_header_name, opt_bool, opt_int, opt_object, opt_str, opt_str_list, required_strings, text)

SOURCE_TYPES = ("http", "rest_api", "pub_sub", "db_change_stream")

#: Besides Convoy's four fields: ``tolerance_seconds`` (replay window for timestamped
#: schemes, docs/decisions.md#decision-10; ``None`` = the verifier's 300 s default) and
#: ``previous_secret`` / ``previous_secret_expires_at`` (secret rotation). The four are
#: required unless the source has a provider (then only the secret is).
HMAC = Shape((
    Field("header", required=REQUIRED, schema_required=False),
    Field("hash", required=REQUIRED, schema_required=False, enum=HASH_ALGORITHMS, fold="upper",
          enum_message="{value} does not validate as supported_hash"),
    Field("secret", required=REQUIRED, schema_required=False),
    Field("encoding", required=REQUIRED, schema_required=False, enum=ENCODINGS, fold="lower",
          enum_message="please provide a valid encoding type"),
    Field("tolerance_seconds", "integer", minimum=1, bound_message="please provide a positive number of seconds",
          extra=NULLABLE),
    Field("previous_secret", extra=NULLABLE),
    Field("previous_secret_expires_at", extra={"format": "date-time", "nullable": True}),
), description="Secrets are shown once, at creation; reads answer `[REDACTED]`.")
BASIC_AUTH = Shape((Field("username", required=REQUIRED), Field("password", required=REQUIRED)))
VERIFIER = Shape((
    Field("type", enum=VERIFIER_TYPES, enum_message="please provide a valid verifier type"),
    Field("hmac", "object", shape=HMAC),
    Field("basic_auth", "object", shape=BASIC_AUTH),
    Field("api_key", "object", shape=API_KEY),
))
CUSTOM_RESPONSE = Shape((Field("body"), Field("content_type")))
SOURCE = Shape((
    Field("name", required="please provide a source name", blank_is_missing=True),
    Field("type", required="please provide a type", enum=SOURCE_TYPES, enum_message="unsupported source type"),
    Field("provider", enum=PROVIDERS, enum_message="unsupported source provider", extra={"enum": ["", *PROVIDERS]}),
    Field("verifier", "object", shape=VERIFIER),
    Field("custom_response", "object", shape=CUSTOM_RESPONSE),
    Field("idempotency_keys", "array", items=Field("", extra={"example": "request.body.id"})),
    Field("event_type_location", extra={"example": "request.body.type"}),
    Field("body_function", extra=NULLABLE),
    Field("header_function", extra=NULLABLE),
    Field("pub_sub", "object", shape=PUB_SUB),
    Field("is_disabled", "boolean"),
    Field("forward_headers", "array"),
))


def validate_source(
    body: Any,
    *,
    update: bool = False,
    current: Mapping[str, Any] | None = None,
    max_custom_response_size: int = MAX_CUSTOM_RESPONSE_SIZE,
    max_workers: int = MAX_SOURCE_WORKERS,
) -> dict[str, Any]:
    """Validate a source create (``update=False``) or update body.

    Returns ``{name, type, provider, verifier, custom_response, idempotency_keys,
    event_type_location, body_function, header_function, pub_sub}``, plus
    ``is_disabled`` / ``forward_headers`` when sent. On update, absent optional fields
    are left out (see `convoy_stream.validation`); ``verifier`` is always present because
    an update replaces it.

    Decisions beyond Convoy:

    * ``provider`` may be any of :data:`PROVIDERS`
      (docs/decisions.md#decision-18); another value is
      rejected here instead of failing every request at ingest. Provider sources need
      only ``verifier.hmac.secret``; header/hash/encoding are checked when sent.
    * ``hmac.hash`` and ``hmac.encoding`` are accepted in any case and stored as
      ``SHA256`` / ``hex``.
    * ``custom_response.body`` size is also checked on update (Convoy: create only).
    * ``pub_sub`` is validated only for ``type: pub_sub`` and dropped for other types;
      no live broker connection is made here (that is the bridge's job).
    * On update, pass the stored source as ``current``: a ``provider`` or
      ``event_type_location`` left out of the body is taken from it for the cross-field
      checks (provider secret, payload-signature rule), though only sent fields are
      returned. Convoy's update model has no ``provider`` at all, so clients rarely
      resend it. Ingest checks the location rule again regardless.
    """
    obj = as_object(body)
    errors = FieldErrors()
    name = text(obj, "name")
    source_type = text(obj, "type")
    errors.check(SOURCE["name"], name)
    errors.check(SOURCE["type"], source_type)
    errors.raise_if_any()

    stored = current if update and current is not None else {}
    provider = text(obj, "provider") if obj.get("provider") is not None else str(stored.get("provider") or "")
    if provider and provider not in SOURCE["provider"].enum:
        raise ValidationError(f"provider:{SOURCE['provider'].enum_message}")
    verifier = _validate_verifier(obj.get("verifier"), provider)

    result: dict[str, Any] = {"name": name.strip(), "type": source_type, "verifier": verifier}
    present = (lambda key: obj.get(key) is not None) if update else (lambda key: True)

    if present("provider"):
        result["provider"] = provider
    if present("idempotency_keys"):
        keys = opt_str_list(obj, "idempotency_keys") or []
        try:
            validate_idempotency_locations(keys)
        except LocationError as exc:
            raise ValidationError(exc.message) from None
        result["idempotency_keys"] = keys
    location = (text(obj, "event_type_location") if obj.get("event_type_location") is not None
                else str(stored.get("event_type_location") or ""))
    try:
        validate_event_type_location(location, payload_signature=bool(provider) or verifier["type"] == "hmac")
    except LocationError as exc:
        raise ValidationError(exc.message) from None
    if present("event_type_location"):
        result["event_type_location"] = location
    if present("custom_response"):
        result["custom_response"] = _validate_custom_response(obj, max_custom_response_size)
    for key in ("body_function", "header_function"):
        if present(key):
            result[key] = opt_str(obj, key) or None
    if source_type == "pub_sub":
        result["pub_sub"] = validate_pub_sub(obj.get("pub_sub"), max_workers=max_workers)
    elif not update:
        result["pub_sub"] = None
    # Convoy accepts these on update only; a user creating a source expects them to work
    # at once, so convoy-stream accepts them on create too.
    if obj.get("is_disabled") is not None:
        result["is_disabled"] = opt_bool(obj, "is_disabled")
    if obj.get("forward_headers") is not None:
        result["forward_headers"] = _validate_forward_headers(obj)
    return result


def _validate_forward_headers(obj: Mapping[str, Any]) -> list[str]:
    names = opt_str_list(obj, "forward_headers") or []
    if any(blank(name) for name in names):
        raise ValidationError("forward_headers:please provide non-empty header names")
    for name in names:
        check_header_name(name.strip(), "forward_headers")
    return [name.strip() for name in names]


def _validate_custom_response(obj: Mapping[str, Any], max_size: int) -> dict[str, str]:
    raw = opt_object(obj, "custom_response") or {}
    response = {"body": text(raw, "body", "custom_response"),
                "content_type": text(raw, "content_type", "custom_response")}
    if len(response["body"].encode("utf-8")) > max_size:
        raise ValidationError("source custom response too large")
    if not is_header_value(response["content_type"]):
        raise ValidationError("custom_response.content_type:please provide a valid content type")
    return response


def _validate_verifier(raw: Any, provider: str) -> dict[str, Any]:
    """``verifier`` -> ``{type, hmac|basic_auth|api_key}``; an absent one is ``noop``."""
    verifier = {} if raw is None else as_object(raw, "verifier")
    verifier_type = text(verifier, "type", "verifier")
    if verifier_type and verifier_type not in VERIFIER["type"].enum:
        raise ValidationError(VERIFIER["type"].enum_message)

    if provider:
        hmac_raw = opt_object(verifier, "hmac", "verifier") or {}
        secret = text(hmac_raw, "secret", "verifier.hmac")
        if not secret:
            raise ValidationError(f"hmac secret is required for {provider} source")
        return {"type": verifier_type or "hmac", "hmac": _validate_hmac(hmac_raw, secret_only=True)}

    verifier_type = verifier_type or "noop"
    if verifier_type == "noop":
        return {"type": "noop"}
    key, label, check = {
        "hmac": ("hmac", "hmac", lambda o: _validate_hmac(o, secret_only=False)),
        "basic_auth": ("basic_auth", "basic auth", _validate_basic_auth),
        "api_key": ("api_key", "api key", _validate_api_key),
    }[verifier_type]
    config = opt_object(verifier, key, "verifier")
    if config is None:
        raise ValidationError(f"invalid verifier config for {label}")
    return {"type": verifier_type, key: check(config)}


def _validate_hmac(raw: Mapping[str, Any], *, secret_only: bool) -> dict[str, Any]:
    """HMAC settings (:data:`HMAC`); with ``secret_only`` (provider sources) the rest is optional."""
    parent = "verifier.hmac"
    values = {spec.name: text(raw, spec.name, parent) for spec in HMAC.fields[:4]}
    errors = FieldErrors()
    for spec in HMAC.fields[:4]:
        value = values[spec.name]
        if spec.name == "secret" or value or not secret_only:
            errors.check(spec, value)
        if spec.name == "header" and value and not is_token(value):
            errors.add("header", "please provide a valid header name")

    tolerance = opt_int(raw, "tolerance_seconds", parent)
    errors.check(HMAC["tolerance_seconds"], tolerance)
    previous_secret = opt_str(raw, "previous_secret", parent) or None
    expires_at = opt_str(raw, "previous_secret_expires_at", parent) or None
    if expires_at is not None and _parse_timestamp(expires_at) is None:
        errors.add("previous_secret_expires_at", "please provide an RFC 3339 timestamp")
    errors.raise_if_any()

    out: dict[str, Any] = {"header": values["header"], "hash": values["hash"].upper(), "secret": values["secret"],
                           "encoding": values["encoding"].lower()}
    out.update(tolerance_seconds=tolerance, previous_secret=previous_secret,
               previous_secret_expires_at=expires_at)
    return out


def _parse_timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _validate_basic_auth(raw: Mapping[str, Any]) -> dict[str, str]:
    return required_strings(raw, BASIC_AUTH, "verifier.basic_auth")


def _validate_api_key(raw: Mapping[str, Any]) -> dict[str, str]:
    values = required_strings(raw, API_KEY, "verifier.api_key")
    check_header_name(values["header_name"], "header_name")
    return {"header_name": values["header_name"], "header_value": values["header_value"]}
