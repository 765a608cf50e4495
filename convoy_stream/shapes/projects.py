"""A project's create and update bodies and its config (Convoy ``api/models/project.go``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..durations import parse_go_duration
from ..limits import DEFAULT_MAX_PAYLOAD_READ_SIZE, MAX_PAYLOAD_READ_SIZE
from ..verifiers.base import ENCODINGS, HASH_ALGORITHMS
from .fields import (OPTIONAL_URL_SCHEMA, Field, FieldErrors, Shape, ValidationError, as_object, check_header_name,
                     is_http_url, opt_bool, opt_int, opt_object, text, type_error)

PROJECT_TYPES = ("incoming", "outgoing")
STRATEGY_TYPES = ("linear", "exponential")

DEFAULT_PROJECT_CONFIG: dict[str, Any] = {
    "max_payload_read_size": DEFAULT_MAX_PAYLOAD_READ_SIZE,
    "replay_attacks_prevention_enabled": False,
    "retention_policy_enabled": False,
    "disable_endpoint": False,
    # docs/decisions.md#decision-15: dedup window and retention default to 7 days
    "retention_policy": {"policy": "168h"},
    "ratelimit": {"count": 1000, "duration": 60},
    "strategy": {"type": "linear", "duration": 100, "retry_count": 10},
    "signature": {"header": "X-Convoy-Signature", "versions": [{"hash": "SHA256", "encoding": "hex"}]},
    "request_id_header": "X-Convoy-Idempotency-Key",
}

SIGNATURE_VERSION = Shape((
    Field("hash", required="please provide a valid hash", enum=HASH_ALGORITHMS, enum_message="unsupported hash type",
          fold="upper"),
    Field("encoding", required="please provide a valid encoding type", enum=ENCODINGS,
          enum_message="please provide a valid encoding type", fold="lower"),
))
PROJECT_CONFIG = Shape((
    Field("max_payload_read_size", "integer", minimum=0,
          bound_message="please provide a valid max payload read size", extra={"maximum": MAX_PAYLOAD_READ_SIZE}),
    Field("replay_attacks_prevention_enabled", "boolean"),
    Field("retention_policy_enabled", "boolean"),
    Field("disable_endpoint", "boolean"),
    Field("retention_policy", "object", shape=Shape((Field("policy", extra={"example": "168h"}),))),
    Field("ratelimit", "object", shape=Shape((
        Field("count", "integer", minimum=0, bound_message="please provide a valid count"),
        Field("duration", "integer", minimum=0, bound_message="please provide a valid duration"),
    ), description="Convoy's pacing of deliveries to endpoints: convoy-stream sends none, so only "
                   "Convoy's default (count 1000, duration 60) is accepted.")),
    Field("strategy", "object", shape=Shape((
        Field("type", enum=STRATEGY_TYPES, enum_message="unsupported strategy type"),
        Field("duration", "integer", minimum=0, bound_message="please provide a valid duration"),
        Field("retry_count", "integer", minimum=0, bound_message="please provide a valid retry count"),
    ))),
    Field("signature", "object", shape=Shape((Field("header"), Field("versions", "array", shape=SIGNATURE_VERSION)))),
    Field("request_id_header"),
))
PROJECT = Shape((
    Field("name", required="please provide a valid name", blank_is_missing=True),
    Field("type", required="please provide a valid type", enum=PROJECT_TYPES,
          enum_message="please provide a valid type"),
    Field("logo_url", extra=OPTIONAL_URL_SCHEMA),
    Field("config", "object", shape=PROJECT_CONFIG),
))
#: ``type`` is set at create only, as in Convoy.
PROJECT_UPDATE = PROJECT.without("type")


def validate_project(body: Any, *, update: bool = False) -> dict[str, Any]:
    """Validate a project create/update body.

    Returns ``{name, type, logo_url, config}``; ``type`` (``incoming|outgoing``) is set
    at create only, as in Convoy. ``config`` is normalised over
    :data:`DEFAULT_PROJECT_CONFIG` (``max_payload_read_size`` 51200, retention
    ``168h`` ...); on update it is included only when sent. ``retention_policy`` is
    ``{"policy": "<Go duration>"}`` (Convoy's name); ``{"retention_policy": ...}`` is
    accepted as an alias. A policy is read with `durations.parse_go_duration`, the parser
    the retention sweep uses, so the policy accepted is the policy applied.
    """
    obj = as_object(body)
    name = text(obj, "name")
    project_type = text(obj, "type")
    logo_url = text(obj, "logo_url")
    errors = FieldErrors()
    errors.check(PROJECT["name"], name)
    if not update:
        errors.check(PROJECT["type"], project_type)
    if logo_url and not is_http_url(logo_url):
        errors.add("logo_url", "please provide a valid logo url")
    errors.raise_if_any()

    result: dict[str, Any] = {"name": name.strip()}
    if not update:
        result["type"] = project_type
    if not update or obj.get("logo_url") is not None:
        result["logo_url"] = logo_url or None
    if not update or obj.get("config") is not None:
        result["config"] = _validate_project_config(opt_object(obj, "config") or {})
    return result


def _validate_project_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    defaults = DEFAULT_PROJECT_CONFIG
    config: dict[str, Any] = {}
    size = opt_int(raw, "max_payload_read_size", "config")
    _raise(PROJECT_CONFIG["max_payload_read_size"], size)
    if size is not None and size > MAX_PAYLOAD_READ_SIZE:
        raise ValidationError(f"max_payload_read_size:must be at most {MAX_PAYLOAD_READ_SIZE} bytes "
                              "(what an event can store)")
    config["max_payload_read_size"] = size or defaults["max_payload_read_size"]
    for flag in ("replay_attacks_prevention_enabled", "retention_policy_enabled", "disable_endpoint"):
        config[flag] = bool(opt_bool(raw, flag, "config"))

    retention = opt_object(raw, "retention_policy", "config") or {}
    policy = (text(retention, "policy", "config.retention_policy")
              or text(retention, "retention_policy", "config.retention_policy")
              or defaults["retention_policy"]["policy"])
    try:
        valid = parse_go_duration(policy) > 0
    except ValueError:
        valid = False
    if not valid:
        raise ValidationError("policy:please provide a valid retention policy")
    config["retention_policy"] = {"policy": policy}

    rate = opt_object(raw, "ratelimit", "config") or {}
    rate_shape = PROJECT_CONFIG["ratelimit"].shape
    assert rate_shape is not None
    config["ratelimit"] = {key: _positive(rate_shape[key], rate, "config.ratelimit", defaults["ratelimit"][key])
                           for key in ("count", "duration")}
    if config["ratelimit"] != defaults["ratelimit"]:
        # Convoy's ratelimit paces deliveries to endpoints (its dispatcher; it never limits
        # ingest), and convoy-stream sends nothing: a value that cannot be applied is refused
        # rather than stored and ignored. Convoy's default is accepted, so clients that send
        # it, or send back what a read shows, keep working.
        raise ValidationError("ratelimit:config.ratelimit paces deliveries to endpoints, which convoy-stream "
                              "does not send; only Convoy's default {\"count\": 1000, \"duration\": 60} is accepted")

    strategy = opt_object(raw, "strategy", "config") or {}
    strategy_shape = PROJECT_CONFIG["strategy"].shape
    assert strategy_shape is not None
    strategy_type = text(strategy, "type", "config.strategy") or defaults["strategy"]["type"]
    _raise(strategy_shape["type"], strategy_type)
    retry_count = opt_int(strategy, "retry_count", "config.strategy")
    _raise(strategy_shape["retry_count"], retry_count)
    config["strategy"] = {
        "type": strategy_type,
        "duration": _positive(strategy_shape["duration"], strategy, "config.strategy",
                              defaults["strategy"]["duration"]),
        "retry_count": defaults["strategy"]["retry_count"] if retry_count is None else retry_count,
    }

    config["signature"] = _validate_signature_config(opt_object(raw, "signature", "config") or {})
    config["request_id_header"] = (text(raw, "request_id_header", "config").strip()
                                   or defaults["request_id_header"])
    check_header_name(config["request_id_header"], "request_id_header")
    return config


def _raise(spec: Field, value: Any) -> None:
    errors = FieldErrors()
    errors.check(spec, value)
    errors.raise_if_any()


def _positive(spec: Field, raw: Mapping[str, Any], parent: str, default: int) -> int:
    """The field's value; ``default`` when absent or 0 (Go's zero value)."""
    value = opt_int(raw, spec.name, parent)
    if value is None or value == 0:
        return default
    _raise(spec, value)
    return value


def _validate_signature_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    default = DEFAULT_PROJECT_CONFIG["signature"]
    header = text(raw, "header", "config.signature").strip() or default["header"]
    check_header_name(header, "header")
    versions_raw = raw.get("versions")
    if versions_raw is None or versions_raw == []:
        return {"header": header, "versions": [dict(v) for v in default["versions"]]}
    if not isinstance(versions_raw, list):
        raise type_error("config.signature.versions")
    versions = []
    for index, item in enumerate(versions_raw):
        parent = f"config.signature.versions.{index}"
        version = as_object(item, parent)
        hash_name = text(version, "hash", parent)
        encoding = text(version, "encoding", parent)
        errors = FieldErrors()
        errors.check(SIGNATURE_VERSION["hash"], hash_name)
        errors.check(SIGNATURE_VERSION["encoding"], encoding)
        errors.raise_if_any()
        versions.append({"hash": hash_name.upper(), "encoding": encoding.lower()})
    return {"header": header, "versions": versions}
