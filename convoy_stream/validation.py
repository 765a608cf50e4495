"""Request validation for the config and event APIs, with Convoy's messages.

Each ``validate_*`` function takes a decoded JSON body and returns a *normalised* dict
(defaults filled, unknown fields dropped, names and enums canonicalised) or raises
:class:`ValidationError`. The web layer answers 400 ``{"status":false,"message":...}``.

Message shape follows Convoy's ``util.Validate``: failures of plain field rules are
``"<json_field>:<message>"``, every failing field is reported, joined by ``", "`` in the
order the fields are declared in Convoy's model (Convoy ranged over a map, so its order
was random). Cross-field checks that run afterwards (``hmac secret is required for
github source``, ``please provide an endpoint ID`` ...) are bare messages. A field with
the wrong JSON type is rejected first, as Go's decoder would:
``body contains incorrect JSON type for field "verifier.hmac.secret"``.

Where Convoy's model has no message of its own we use govalidator's default text
(``non zero value required``) or a clear one, noted at the constant.

Update semantics (``update=True``): Convoy treats an absent/``null`` optional field as
"leave unchanged", so the normalised dict then only carries the optional fields that
were sent, and the caller merges it over the stored entity. Required fields stay
required, and for sources the verifier is always replaced (as in Convoy).

Broker messages (docs/convoy-behaviour.md#broker-message) are validated by :func:`validate_broker_message` and
:func:`message_type`, which raise :class:`InvalidMessage` - a message that can never be
valid, which the bridge dead-letters with its reason (docs/decisions.md#decision-12).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from convoy_stream.durations import parse_go_duration
from convoy_stream.filters import FilterError, validate_filter
from convoy_stream.limits import (DEFAULT_MAX_SOURCE_WORKERS, MAX_JSON_DEPTH, MAX_PAYLOAD_READ_SIZE, JsonTooDeep,
                                  header_map_problem, is_header_value, is_token, is_uri_text)
from convoy_stream.webhook_payload import (
    LocationError,
    loads_json,
    validate_event_type_location,
    validate_idempotency_locations,
)

__all__ = [
    "DEFAULT_PROJECT_CONFIG",
    "ENCODINGS",
    "HASH_ALGORITHMS",
    "InvalidMessage",
    "MESSAGE_TYPE_HEADER",
    "PROVIDERS",
    "SOURCE_TYPES",
    "ValidationError",
    "VERIFIER_TYPES",
    "decode_json_body",
    "merge_broker_headers",
    "message_type",
    "validate_broker_message",
    "validate_endpoint",
    "validate_event",
    "validate_project",
    "validate_pub_sub",
    "validate_source",
    "validate_subscription",
]

SOURCE_TYPES = ("http", "rest_api", "pub_sub", "db_change_stream")
PROVIDERS = ("github", "shopify", "twitter", "stripe", "slack", "standard_webhooks", "svix",
             "twilio", "convoy")
VERIFIER_TYPES = ("noop", "hmac", "basic_auth", "api_key")
HASH_ALGORITHMS = ("MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512", "SHA3_224", "SHA3_256",
                   "SHA3_384", "SHA3_512", "SHA512_224", "SHA512_256")
ENCODINGS = ("hex", "base64")
PUB_SUB_TYPES = ("sqs", "google", "kafka", "amqp")
ENDPOINT_STATUSES = ("active", "inactive", "paused")
PROJECT_TYPES = ("incoming", "outgoing")
EVENT_KINDS = ("single", "fanout", "broadcast", "dynamic")
MESSAGE_TYPES = ("single", "fanout", "broadcast")
MESSAGE_TYPE_HEADER = "x-convoy-message-type"
MAX_CUSTOM_RESPONSE_SIZE = 51200
MAX_SOURCE_WORKERS = DEFAULT_MAX_SOURCE_WORKERS  # `Settings.max_source_workers` is the instance's

# govalidator's text for a `valid:"required"` tag without a custom message.
REQUIRED = "non zero value required"

DEFAULT_PROJECT_CONFIG: dict[str, Any] = {
    "max_payload_read_size": 51200,
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


class ValidationError(ValueError):
    """A request body the API rejects; ``message`` is the exact 400 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The bridges' loop dead-letters exactly this exception, so validation raises it.
from bridges.base import InvalidMessage  # noqa: E402


# ------------------------------------------------------------------------------ helpers


class _FieldErrors:
    """Collects ``field:message`` failures so all of them are reported at once."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self._items.append(f"{field}:{message}")

    def raise_if_any(self) -> None:
        if self._items:
            raise ValidationError(", ".join(self._items))


def _type_error(path: str) -> ValidationError:
    return ValidationError(f'body contains incorrect JSON type for field "{path}"')


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _object(value: Any, path: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        if path:
            raise _type_error(path)
        raise ValidationError("body contains incorrect JSON type (at character 1)")
    return value


def _opt_object(obj: Mapping[str, Any], key: str, parent: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    return _object(value, _join(parent, key))


def _opt_str(obj: Mapping[str, Any], key: str, parent: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _type_error(_join(parent, key))


def _str(obj: Mapping[str, Any], key: str, parent: str = "") -> str:
    """A string field, ``""`` when absent or null (Go's zero value)."""
    return _opt_str(obj, key, parent) or ""


def _opt_bool(obj: Mapping[str, Any], key: str, parent: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _type_error(_join(parent, key))


def _opt_int(obj: Mapping[str, Any], key: str, parent: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # Go's int64 fields: a number that does not fit is a type error there, and here it could
    # not be stored (orjson encodes 64-bit integers only).
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise _type_error(_join(parent, key))


def _opt_str_list(obj: Mapping[str, Any], key: str, parent: str = "") -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    path = _join(parent, key)
    if not isinstance(value, list):
        raise _type_error(path)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _type_error(f"{path}.{index}")
    return list(value)


def _str_map(obj: Mapping[str, Any], key: str, parent: str = "") -> dict[str, str]:
    """A ``map[string]string`` field; ``{}`` when absent."""
    value = _opt_object(obj, key, parent) or {}
    path = _join(parent, key)
    for name, item in value.items():
        if not isinstance(item, str):
            raise _type_error(f"{path}.{name}")
    return dict(value)


def _header_map(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    """A ``map[string]string`` sent as HTTP headers: RFC 9110 names, no CR/LF, bounded."""
    value = _str_map(obj, key)
    problem = header_map_problem(value)
    if problem:
        raise ValidationError(f"{key}:{problem}")
    return value


def _check_header_name(value: str, field: str) -> None:
    if value and not is_token(value):
        raise ValidationError(f"{field}:please provide a valid header name")


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, only RFC 3986 characters (no spaces or CR/LF)."""
    if not is_uri_text(value):
        return False
    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go ``time.ParseDuration`` string (``durations``, which retention also uses)."""
    try:
        return parse_go_duration(text)
    except ValueError:
        return None


def _location_error(exc: LocationError) -> ValidationError:
    return ValidationError(exc.message)


# ------------------------------------------------------------------------------- sources


def validate_source(
    body: Any,
    *,
    update: bool = False,
    current: Mapping[str, Any] | None = None,
    max_custom_response_size: int = MAX_CUSTOM_RESPONSE_SIZE,
    max_workers: int = MAX_SOURCE_WORKERS,
) -> dict[str, Any]:
    """Validate a source create (``update=False``) or update body (sections 1.1-1.3, 5.1).

    Returns ``{name, type, provider, verifier, custom_response, idempotency_keys,
    event_type_location, body_function, header_function, pub_sub}``, plus
    ``is_disabled`` / ``forward_headers`` on update only (Convoy's create model has
    neither). On update, absent optional fields are left out (see module docstring);
    ``verifier`` is always present because an update replaces it.

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
    obj = _object(body)
    errors = _FieldErrors()
    name = _str(obj, "name")
    source_type = _str(obj, "type")
    if _blank(name):
        errors.add("name", "please provide a source name")
    if not source_type:
        errors.add("type", "please provide a type")
    elif source_type not in SOURCE_TYPES:
        errors.add("type", "unsupported source type")
    errors.raise_if_any()

    stored = current if update and current is not None else {}
    provider = _str(obj, "provider") if obj.get("provider") is not None else str(stored.get("provider") or "")
    if provider and provider not in PROVIDERS:
        raise ValidationError("provider:unsupported source provider")
    verifier = _validate_verifier(obj.get("verifier"), provider)

    result: dict[str, Any] = {"name": name.strip(), "type": source_type, "verifier": verifier}
    present = (lambda key: obj.get(key) is not None) if update else (lambda key: True)

    if present("provider"):
        result["provider"] = provider
    if present("idempotency_keys"):
        keys = _opt_str_list(obj, "idempotency_keys") or []
        try:
            validate_idempotency_locations(keys)
        except LocationError as exc:
            raise _location_error(exc) from None
        result["idempotency_keys"] = keys
    location = (_str(obj, "event_type_location") if obj.get("event_type_location") is not None
                else str(stored.get("event_type_location") or ""))
    try:
        validate_event_type_location(location, payload_signature=bool(provider) or verifier["type"] == "hmac")
    except LocationError as exc:
        raise _location_error(exc) from None
    if present("event_type_location"):
        result["event_type_location"] = location
    if present("custom_response"):
        result["custom_response"] = _validate_custom_response(obj, max_custom_response_size)
    for key in ("body_function", "header_function"):
        if present(key):
            result[key] = _opt_str(obj, key) or None
    if source_type == "pub_sub":
        result["pub_sub"] = validate_pub_sub(obj.get("pub_sub"), max_workers=max_workers)
    elif not update:
        result["pub_sub"] = None
    # Convoy accepts these on update only; a user creating a source expects them to work
    # at once, so convoy-stream accepts them on create too.
    if obj.get("is_disabled") is not None:
        result["is_disabled"] = _opt_bool(obj, "is_disabled")
    if obj.get("forward_headers") is not None:
        result["forward_headers"] = _validate_forward_headers(obj)
    return result


def _validate_forward_headers(obj: Mapping[str, Any]) -> list[str]:
    names = _opt_str_list(obj, "forward_headers") or []
    if any(_blank(name) for name in names):
        raise ValidationError("forward_headers:please provide non-empty header names")
    for name in names:
        _check_header_name(name.strip(), "forward_headers")
    return [name.strip() for name in names]


def _validate_custom_response(obj: Mapping[str, Any], max_size: int) -> dict[str, str]:
    raw = _opt_object(obj, "custom_response") or {}
    response = {"body": _str(raw, "body", "custom_response"),
                "content_type": _str(raw, "content_type", "custom_response")}
    if len(response["body"].encode("utf-8")) > max_size:
        raise ValidationError("source custom response too large")
    if not is_header_value(response["content_type"]):
        raise ValidationError("custom_response.content_type:please provide a valid content type")
    return response


def _validate_verifier(raw: Any, provider: str) -> dict[str, Any]:
    """``verifier`` -> ``{type, hmac|basic_auth|api_key}``; an absent one is ``noop``."""
    verifier = {} if raw is None else _object(raw, "verifier")
    verifier_type = _str(verifier, "type", "verifier")
    if verifier_type and verifier_type not in VERIFIER_TYPES:
        raise ValidationError("please provide a valid verifier type")

    if provider:
        hmac_raw = _opt_object(verifier, "hmac", "verifier") or {}
        secret = _str(hmac_raw, "secret", "verifier.hmac")
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
    config = _opt_object(verifier, key, "verifier")
    if config is None:
        raise ValidationError(f"invalid verifier config for {label}")
    return {"type": verifier_type, key: check(config)}


def _validate_hmac(raw: Mapping[str, Any], *, secret_only: bool) -> dict[str, Any]:
    """HMAC settings; with ``secret_only`` (provider sources) the rest is optional.

    Besides Convoy's four fields we keep ``tolerance_seconds`` (replay window for
    timestamped schemes, docs/decisions.md#decision-10; ``None`` = the verifier's 300 s default) and
    ``previous_secret`` / ``previous_secret_expires_at`` (secret rotation).
    """
    parent = "verifier.hmac"
    header = _str(raw, "header", parent)
    hash_name = _str(raw, "hash", parent)
    secret = _str(raw, "secret", parent)
    encoding = _str(raw, "encoding", parent)
    errors = _FieldErrors()
    if not header and not secret_only:
        errors.add("header", REQUIRED)
    elif header and not is_token(header):
        errors.add("header", "please provide a valid header name")
    if hash_name and hash_name.upper() not in HASH_ALGORITHMS:
        errors.add("hash", f"{hash_name} does not validate as supported_hash")
    elif not hash_name and not secret_only:
        errors.add("hash", REQUIRED)
    if not secret:
        errors.add("secret", REQUIRED)
    if encoding and encoding.lower() not in ENCODINGS:
        errors.add("encoding", "please provide a valid encoding type")
    elif not encoding and not secret_only:
        errors.add("encoding", REQUIRED)

    tolerance = _opt_int(raw, "tolerance_seconds", parent)
    if tolerance is not None and tolerance < 1:
        errors.add("tolerance_seconds", "please provide a positive number of seconds")
    previous_secret = _opt_str(raw, "previous_secret", parent) or None
    expires_at = _opt_str(raw, "previous_secret_expires_at", parent) or None
    if expires_at is not None and _parse_timestamp(expires_at) is None:
        errors.add("previous_secret_expires_at", "please provide an RFC 3339 timestamp")
    errors.raise_if_any()

    out: dict[str, Any] = {"header": header, "hash": hash_name.upper(), "secret": secret,
                           "encoding": encoding.lower()}
    out.update(tolerance_seconds=tolerance, previous_secret=previous_secret,
               previous_secret_expires_at=expires_at)
    return out


def _parse_timestamp(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _validate_basic_auth(raw: Mapping[str, Any]) -> dict[str, str]:
    return _required_strings(raw, ("username", "password"), "verifier.basic_auth")


def _validate_api_key(raw: Mapping[str, Any]) -> dict[str, str]:
    # Convoy declares header_value before header_name; errors follow that order.
    values = _required_strings(raw, ("header_value", "header_name"), "verifier.api_key")
    _check_header_name(values["header_name"], "header_name")
    return {"header_name": values["header_name"], "header_value": values["header_value"]}


def _required_strings(raw: Mapping[str, Any], keys: tuple[str, ...], parent: str,
                      messages: Mapping[str, str] | None = None) -> dict[str, str]:
    values = {key: _str(raw, key, parent) for key in keys}
    errors = _FieldErrors()
    for key in keys:
        if not values[key]:
            errors.add(key, (messages or {}).get(key, REQUIRED))
    errors.raise_if_any()
    return values


# ------------------------------------------------------------------------------- pub/sub


def validate_pub_sub(body: Any, *, max_workers: int = MAX_SOURCE_WORKERS) -> dict[str, Any]:
    """Validate a ``pub_sub`` broker config (docs/convoy-behaviour.md#broker-config) without connecting to it.

    Returns ``{type, workers, <type>: {...}}`` with only the selected broker's block.
    ``workers`` defaults to 1 and must be between 1 and ``max_workers`` (the instance's
    ``CONVOY_STREAM_MAX_SOURCE_WORKERS``: each worker holds broker connections). Kafka
    ``auth.hash`` defaults to ``SHA512`` for SCRAM (Convoy's runtime default); AMQP ``schema`` defaults to
    ``amqp``, ``vhost`` to ``""`` (the default vhost) and ``port`` is stored as a string.
    The Google ``service_account`` stays base64 as sent, after checking it decodes to a
    JSON object (a key file).
    """
    obj = {} if body is None else _object(body, "pub_sub")
    errors = _FieldErrors()
    pub_sub_type = _str(obj, "type", "pub_sub")
    workers = _opt_int(obj, "workers", "pub_sub")
    if not pub_sub_type:
        errors.add("type", "type is required")
    elif pub_sub_type not in PUB_SUB_TYPES:
        errors.add("type", "unsupported pub sub type")
    if workers is not None and workers < 1:
        errors.add("workers", "workers must be at least 1")
    elif workers is not None and workers > max_workers:
        errors.add("workers", f"workers must be at most {max_workers}")
    errors.raise_if_any()

    label = {"sqs": "sqs", "google": "google pub sub", "kafka": "kafka", "amqp": "amqp"}[pub_sub_type]
    config = _opt_object(obj, pub_sub_type, "pub_sub")
    if config is None:
        raise ValidationError(f"{label} config is required")
    check: Callable[[Mapping[str, Any]], dict[str, Any]] = {
        "sqs": _validate_sqs, "google": _validate_google, "kafka": _validate_kafka, "amqp": _validate_amqp,
    }[pub_sub_type]
    return {"type": pub_sub_type, "workers": workers or 1, pub_sub_type: check(config)}


def _validate_sqs(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.sqs"
    out: dict[str, Any] = _required_strings(
        raw, ("access_key_id", "secret_key", "default_region", "queue_name"), parent)
    endpoint = _opt_str(raw, "endpoint", parent) or None
    if endpoint is not None and not _is_http_url(endpoint):
        raise ValidationError("endpoint:please provide a valid url")
    out["endpoint"] = endpoint
    return out


def _validate_google(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = _required_strings(
        raw, ("service_account", "subscription_id", "project_id"), "pub_sub.google",
        messages={"service_account": "service account is required",
                  "subscription_id": "subscription id is required",
                  "project_id": "project id is required"})
    try:
        key_file = json.loads(base64.b64decode(out["service_account"], validate=True))
    except (binascii.Error, ValueError):
        key_file = None
    if not isinstance(key_file, dict):
        raise ValidationError("service_account:service account must be a base64-encoded JSON key file")
    return out


def _validate_kafka(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.kafka"
    brokers = _opt_str_list(raw, "brokers", parent) or []
    topic = _str(raw, "topic_name", parent)
    errors = _FieldErrors()
    # An empty list means convoy-stream's own cluster ("direct Kafka production").
    if any(_blank(b) for b in brokers):
        errors.add("brokers", "brokers list is required")
    if not topic:
        errors.add("topic_name", "topic name is required")
    errors.raise_if_any()
    out: dict[str, Any] = {"brokers": [b.strip() for b in brokers], "topic_name": topic,
                           "consumer_group_id": _str(raw, "consumer_group_id", parent), "auth": None}
    auth = _opt_object(raw, "auth", parent)
    if auth is not None:
        out["auth"] = _validate_kafka_auth(auth)
    return out


def _validate_kafka_auth(auth: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.kafka.auth"
    auth_type = _str(auth, "type", parent)
    if auth_type not in ("plain", "scram"):
        raise ValidationError("unsupported auth type")
    hash_name = _str(auth, "hash", parent).upper()
    if auth_type == "scram":
        hash_name = hash_name or "SHA512"
        if hash_name not in ("SHA256", "SHA512"):
            raise ValidationError("unsupported hashing algorithm")
    credentials = _required_strings(auth, ("username", "password"), parent)
    return {"type": auth_type, "hash": hash_name, **credentials,
            "tls": bool(_opt_bool(auth, "tls", parent))}


def _validate_amqp(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.amqp"
    schema = _str(raw, "schema", parent) or "amqp"
    port_value = raw.get("port")
    if isinstance(port_value, int) and not isinstance(port_value, bool):
        port = str(port_value)
    else:
        port = _str(raw, "port", parent)
    host = _str(raw, "host", parent)
    queue = _str(raw, "queue", parent)
    errors = _FieldErrors()
    if schema not in ("amqp", "amqps"):
        errors.add("schema", "schema must be amqp or amqps")
    if not host:
        errors.add("host", REQUIRED)
    if not port:
        errors.add("port", REQUIRED)
    elif not port.isdigit() or not 1 <= int(port) <= 65535:
        errors.add("port", "please provide a valid port")
    if not queue:
        errors.add("queue", REQUIRED)
    errors.raise_if_any()

    auth = _opt_object(raw, "auth", parent)
    bind = _opt_object(raw, "bindExchange", parent)
    bind_out = None
    # Convoy's dashboard always sends bindExchange; an empty exchange means "no binding"
    # (the queue is fed through the default exchange), not an error.
    if bind is not None and _str(bind, "exchange", f"{parent}.bindExchange"):
        bind_out = {"exchange": _str(bind, "exchange", f"{parent}.bindExchange"),
                    "routingKey": _str(bind, "routingKey", f"{parent}.bindExchange")}
    return {
        "schema": schema, "host": host, "port": port, "queue": queue,
        "vhost": _str(raw, "vhost", parent),
        "auth": None if auth is None else {"user": _str(auth, "user", f"{parent}.auth"),
                                           "password": _str(auth, "password", f"{parent}.auth")},
        "bindExchange": bind_out,
        "deadLetterExchange": _opt_str(raw, "deadLetterExchange", parent) or None,
    }


# ----------------------------------------------------------------------------- endpoints


def validate_endpoint(body: Any, *, update: bool = False) -> dict[str, Any]:
    """Validate an endpoint create/update body (Convoy ``api/models/endpoint.go``).

    Returns ``{name, url, secret, owner_id, description, status, advanced_signatures,
    support_email, slack_webhook_url, http_timeout, rate_limit, rate_limit_duration,
    authentication}``. ``url`` must be http(s) with a host. ``status`` is one of
    ``active|inactive|paused`` (default ``active``; Convoy's older ``is_disabled: true``
    is read as ``inactive``). ``secret`` ``None`` means "generate one". Numeric limits
    ``None`` mean "use the project default".
    """
    obj = _object(body)
    url = _str(obj, "url")
    name = _str(obj, "name")
    email = _str(obj, "support_email")
    errors = _FieldErrors()
    if _blank(url):
        errors.add("url", "please provide a url for your endpoint")
    if _blank(name):
        errors.add("name", "please provide your endpointName")
    if email and not _EMAIL.fullmatch(email):
        errors.add("support_email", "please provide a valid email")
    errors.raise_if_any()
    if not _is_http_url(url):
        raise ValidationError("url:please provide a valid http or https url")

    result: dict[str, Any] = {"name": name.strip(), "url": url.strip()}
    present = (lambda key: obj.get(key) is not None) if update else (lambda key: True)

    status = _opt_str(obj, "status")
    if status is not None and status not in ENDPOINT_STATUSES:
        raise ValidationError("status:please provide a valid endpoint status")
    if status is None and _opt_bool(obj, "is_disabled"):
        status = "inactive"
    if status is not None or not update:
        result["status"] = status or "active"

    for key in ("secret", "owner_id", "description", "slack_webhook_url"):
        if present(key):
            result[key] = _opt_str(obj, key) or None
    if present("support_email"):
        result["support_email"] = email or None
    if present("advanced_signatures"):
        result["advanced_signatures"] = bool(_opt_bool(obj, "advanced_signatures"))
    for key, minimum in (("http_timeout", 1), ("rate_limit", 0), ("rate_limit_duration", 0)):
        if present(key):
            value = _opt_int(obj, key)
            if value is not None and value < minimum:
                raise ValidationError(f"{key}:please provide a valid {key.replace('_', ' ')}")
            result[key] = value
    if present("authentication"):
        result["authentication"] = _validate_endpoint_auth(obj)
    return result


def _validate_endpoint_auth(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    auth = _opt_object(obj, "authentication")
    if auth is None:
        return None
    auth_type = _str(auth, "type", "authentication") or "api_key"
    if auth_type != "api_key":
        raise ValidationError("type:unsupported authentication type")
    api_key = _opt_object(auth, "api_key", "authentication")
    if api_key is None:
        raise ValidationError("api_key:non zero value required")
    values = _required_strings(api_key, ("header_value", "header_name"), "authentication.api_key")
    _check_header_name(values["header_name"], "header_name")
    if not is_header_value(values["header_value"]):
        raise ValidationError("header_value:please provide a valid header value")
    return {"type": "api_key",
            "api_key": {"header_name": values["header_name"], "header_value": values["header_value"]}}


# ------------------------------------------------------------------------- subscriptions


_FILTER_SCOPES = ("headers", "body", "query", "path")


def validate_subscription(body: Any, *, project_type: str, update: bool = False) -> dict[str, Any]:
    """Validate a subscription create/update body (Convoy ``api/models/subscription.go``).

    Returns ``{name, endpoint_id, source_id, function, filter_config}`` where
    ``filter_config = {event_types, filter: {headers, body[, query, path]}}``;
    ``event_types`` defaults to ``["*"]`` (an empty list too), ``headers``/``body``
    default to ``{}`` (match everything); ``query``/``path`` filters (Convoy 26.3.7) are
    kept only when sent. Every filter is checked with
    :func:`convoy_stream.filters.validate_filter`; its error comes back as
    ``filter_config.filter.<scope>:<message>``.

    In an incoming project a subscription is bound to its source, so ``source_id`` is
    required (``source_id is required for incoming projects``).
    """
    obj = _object(body)
    name = _str(obj, "name")
    endpoint_id = _str(obj, "endpoint_id")
    source_id = _opt_str(obj, "source_id")
    errors = _FieldErrors()
    if _blank(name) and (not update or obj.get("name") is not None):
        errors.add("name", "please provide a valid subscription name")
    if _blank(endpoint_id) and (not update or obj.get("endpoint_id") is not None):
        errors.add("endpoint_id", "please provide a valid endpoint id")
    errors.raise_if_any()
    if project_type == "incoming" and _blank(source_id) and (not update or source_id is not None):
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
        result["function"] = _opt_str(obj, "function") or None
    if present("filter_config"):
        result["filter_config"] = _validate_filter_config(_opt_object(obj, "filter_config") or {})
    return result


def _validate_filter_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    event_types = _opt_str_list(raw, "event_types", "filter_config") or ["*"]
    if any(_blank(t) for t in event_types):
        raise ValidationError("event_types:please provide non-empty event types")
    filters_raw = _opt_object(raw, "filter", "filter_config") or {}
    filters: dict[str, Any] = {}
    for scope in _FILTER_SCOPES:
        value = _opt_object(filters_raw, scope, "filter_config.filter")
        if value is None and scope in ("query", "path"):
            continue
        value = value or {}
        try:
            validate_filter(value)
        except FilterError as exc:
            raise ValidationError(f"filter_config.filter.{scope}:{exc.message}") from None
        filters[scope] = value
    return {"event_types": [t.strip() for t in event_types], "filter": filters}


# ------------------------------------------------------------------------------ projects


def validate_project(body: Any, *, update: bool = False) -> dict[str, Any]:
    """Validate a project create/update body (Convoy ``api/models/project.go``).

    Returns ``{name, type, logo_url, config}``; ``type`` (``incoming|outgoing``) is set
    at create only, as in Convoy. ``config`` is normalised over
    :data:`DEFAULT_PROJECT_CONFIG` (``max_payload_read_size`` 51200, retention
    ``168h`` ...); on update it is included only when sent. ``retention_policy`` is
    ``{"policy": "<Go duration>"}`` (Convoy's name); ``{"retention_policy": ...}`` is
    accepted as an alias.
    """
    obj = _object(body)
    name = _str(obj, "name")
    project_type = _str(obj, "type")
    logo_url = _str(obj, "logo_url")
    errors = _FieldErrors()
    if _blank(name):
        errors.add("name", "please provide a valid name")
    if not update and project_type not in PROJECT_TYPES:
        errors.add("type", "please provide a valid type")
    if logo_url and not _is_http_url(logo_url):
        errors.add("logo_url", "please provide a valid logo url")
    errors.raise_if_any()

    result: dict[str, Any] = {"name": name.strip()}
    if not update:
        result["type"] = project_type
    if not update or obj.get("logo_url") is not None:
        result["logo_url"] = logo_url or None
    if not update or obj.get("config") is not None:
        result["config"] = _validate_project_config(_opt_object(obj, "config") or {})
    return result


def _validate_project_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    defaults = DEFAULT_PROJECT_CONFIG
    config: dict[str, Any] = {}
    size = _opt_int(raw, "max_payload_read_size", "config")
    if size is not None and size < 0:
        raise ValidationError("max_payload_read_size:please provide a valid max payload read size")
    if size is not None and size > MAX_PAYLOAD_READ_SIZE:
        raise ValidationError(f"max_payload_read_size:must be at most {MAX_PAYLOAD_READ_SIZE} bytes "
                              "(what an event can store)")
    config["max_payload_read_size"] = size or defaults["max_payload_read_size"]
    for flag in ("replay_attacks_prevention_enabled", "retention_policy_enabled", "disable_endpoint"):
        config[flag] = bool(_opt_bool(raw, flag, "config"))

    retention = _opt_object(raw, "retention_policy", "config") or {}
    policy = (_str(retention, "policy", "config.retention_policy")
              or _str(retention, "retention_policy", "config.retention_policy")
              or defaults["retention_policy"]["policy"])
    seconds = _go_duration_seconds(policy)
    if seconds is None or seconds <= 0:
        raise ValidationError("policy:please provide a valid retention policy")
    config["retention_policy"] = {"policy": policy}

    rate = _opt_object(raw, "ratelimit", "config") or {}
    config["ratelimit"] = {
        key: _positive(rate, key, "config.ratelimit", defaults["ratelimit"][key])
        for key in ("count", "duration")
    }
    if config["ratelimit"] != defaults["ratelimit"]:
        # Convoy's ratelimit paces deliveries to endpoints (its dispatcher; it never limits
        # ingest), and convoy-stream sends nothing: a value that cannot be applied is refused
        # rather than stored and ignored. Convoy's default is accepted, so clients that send
        # it, or send back what a read shows, keep working.
        raise ValidationError("ratelimit:config.ratelimit paces deliveries to endpoints, which convoy-stream "
                              "does not send; only Convoy's default {\"count\": 1000, \"duration\": 60} is accepted")

    strategy = _opt_object(raw, "strategy", "config") or {}
    strategy_type = _str(strategy, "type", "config.strategy") or defaults["strategy"]["type"]
    if strategy_type not in ("linear", "exponential"):
        raise ValidationError("type:unsupported strategy type")
    retry_count = _opt_int(strategy, "retry_count", "config.strategy")
    if retry_count is not None and retry_count < 0:
        raise ValidationError("retry_count:please provide a valid retry count")
    config["strategy"] = {
        "type": strategy_type,
        "duration": _positive(strategy, "duration", "config.strategy", defaults["strategy"]["duration"]),
        "retry_count": defaults["strategy"]["retry_count"] if retry_count is None else retry_count,
    }

    config["signature"] = _validate_signature_config(_opt_object(raw, "signature", "config") or {})
    config["request_id_header"] = (_str(raw, "request_id_header", "config").strip()
                                   or defaults["request_id_header"])
    _check_header_name(config["request_id_header"], "request_id_header")
    return config


def _positive(raw: Mapping[str, Any], key: str, parent: str, default: int) -> int:
    value = _opt_int(raw, key, parent)
    if value is None or value == 0:
        return default
    if value < 0:
        raise ValidationError(f"{key}:please provide a valid {key.replace('_', ' ')}")
    return value


def _validate_signature_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    default = DEFAULT_PROJECT_CONFIG["signature"]
    header = _str(raw, "header", "config.signature").strip() or default["header"]
    _check_header_name(header, "header")
    versions_raw = raw.get("versions")
    if versions_raw is None or versions_raw == []:
        return {"header": header, "versions": [dict(v) for v in default["versions"]]}
    if not isinstance(versions_raw, list):
        raise _type_error("config.signature.versions")
    versions = []
    for index, item in enumerate(versions_raw):
        version = _object(item, f"config.signature.versions.{index}")
        parent = f"config.signature.versions.{index}"
        hash_name = _str(version, "hash", parent)
        encoding = _str(version, "encoding", parent)
        errors = _FieldErrors()
        if not hash_name:
            errors.add("hash", "please provide a valid hash")
        elif hash_name.upper() not in HASH_ALGORITHMS:
            errors.add("hash", "unsupported hash type")
        if encoding.lower() not in ENCODINGS:
            errors.add("encoding", "please provide a valid encoding type")
        errors.raise_if_any()
        versions.append({"hash": hash_name.upper(), "encoding": encoding.lower()})
    return {"header": header, "versions": versions}


# -------------------------------------------------------------------------------- events


_WS = " \t\r\n"


def decode_json_body(raw: bytes, *, expect_object: bool = True) -> Any:
    """Decode a REST request body with the errors Convoy's ``util.ReadJSON`` gives.

    * empty (or whitespace-only) body: ``body must not be empty``
    * a syntax error: ``body contains badly-formed JSON (at character N)``, N being the
      1-based byte offset of the offending byte, as Go's ``SyntaxError.Offset``
    * a truncated document: ``body contains badly-formed JSON``
    * with ``expect_object`` a non-object document:
      ``body contains incorrect JSON type (at character N)``

    Trailing data after the value is a syntax error (Go's ``Unmarshal`` rule).
    ``NaN``/``Infinity`` are rejected, and so is nesting deeper than ``MAX_JSON_DEPTH``
    (``body contains JSON nested deeper than 128 levels``). Invalid UTF-8 and lone
    ``\\uD800`` escapes inside strings become U+FFFD, as in Go, so the result is always
    re-encodable.
    """
    if not raw.strip(_WS.encode()):
        raise ValidationError("body must not be empty")
    text = raw.decode("utf-8", errors="replace")
    try:
        value = loads_json(text)
    except json.JSONDecodeError as exc:
        rest = text[exc.pos:]
        if exc.msg.startswith("Unterminated string") or not rest.strip(_WS):
            raise ValidationError("body contains badly-formed JSON") from None
        offset = len(text[:exc.pos].encode("utf-8")) + 1
        raise ValidationError(f"body contains badly-formed JSON (at character {offset})") from None
    except (JsonTooDeep, RecursionError):
        raise ValidationError(f"body contains JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise ValidationError("body contains badly-formed JSON") from None
    if expect_object and not isinstance(value, dict):
        stripped = text.lstrip(_WS)
        start = len(text) - len(stripped)
        offset = start + 1 if isinstance(value, list) else len(text.rstrip(_WS).encode("utf-8"))
        raise ValidationError(f"body contains incorrect JSON type (at character {offset})")
    return value


# Required fields per kind, in Convoy's declaration order, with their messages.
_EVENT_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "single": (("data", "please provide your data"), ("event_type", "please provide an event type")),
    "fanout": (("owner_id", "please provide an owner id"), ("event_type", "please provide an event type"),
               ("data", "please provide your data")),
    "broadcast": (("event_type", "please provide an event type"), ("data", "please provide your data")),
    "dynamic": (("url", "please provide an endpoint url"), ("data", "please provide your webhook event data"),
                ("event_type", "please provide an event type")),
}
_EVENT_STRINGS: dict[str, tuple[str, ...]] = {
    "single": ("app_id", "endpoint_id", "owner_id", "event_type", "idempotency_key"),
    "fanout": ("owner_id", "event_type", "idempotency_key"),
    "broadcast": ("event_type", "idempotency_key"),
    "dynamic": ("url", "secret", "event_type", "idempotency_key"),
}


def validate_event(kind: str, body: Any) -> dict[str, Any]:
    """Validate a REST event body (docs/convoy-behaviour.md#rest-events) for ``single|fanout|broadcast|dynamic``.

    Returns the kind's fields: ``event_type``, ``data``, ``custom_headers`` (``{}`` when
    absent), ``idempotency_key`` (``None`` when absent or empty) plus
    ``endpoint_id``/``app_id`` (single), ``owner_id`` (fanout) or ``url``, ``secret``,
    ``event_types`` (dynamic, default ``["*"]``). ``data`` may be any JSON value but
    must be present and not ``null`` (a null event has nothing to deliver). Required
    strings that are only whitespace count as missing.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    obj = _object(body)
    strings = {key: _str(obj, key) for key in _EVENT_STRINGS[kind]}
    custom_headers = _header_map(obj, "custom_headers")
    event_types = _opt_str_list(obj, "event_types") if kind == "dynamic" else None

    errors = _FieldErrors()
    for key, message in _EVENT_REQUIRED[kind]:
        missing = obj.get("data") is None if key == "data" else _blank(strings[key])
        if missing:
            errors.add(key, message)
    errors.raise_if_any()

    result: dict[str, Any] = {"event_type": strings["event_type"], "data": obj["data"],
                              "custom_headers": custom_headers,
                              "idempotency_key": strings["idempotency_key"] or None}
    if kind == "single":
        if _blank(strings["endpoint_id"]) and _blank(strings["app_id"]):
            raise ValidationError("please provide an endpoint ID")
        result["endpoint_id"] = strings["endpoint_id"] or None
        result["app_id"] = strings["app_id"] or None
    elif kind == "fanout":
        result["owner_id"] = strings["owner_id"]
    elif kind == "dynamic":
        if not _is_http_url(strings["url"]):
            raise ValidationError("url:please provide a valid http or https url")
        result["url"] = strings["url"].strip()
        result["secret"] = strings["secret"] or None
        result["event_types"] = [t for t in event_types or [] if t.strip()] or ["*"]
    return result


# ------------------------------------------------------------------------ broker messages


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
    if _blank(value.get("event_type")):
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
