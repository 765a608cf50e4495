"""The broker config of a `pub_sub` source (docs/convoy-behaviour.md#broker-config), with Convoy's messages.

One field table per broker (`SQS`, `GOOGLE`, `KAFKA`, `AMQP`), read by `validate_pub_sub` and
turned into the `pub_sub` part of the OpenAPI document. Validation makes no connection: a
broker that cannot be reached is the bridge's to report. Which hosts a tenant may name is
`netpolicy`'s rule, checked by the web layer.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from .limits import DEFAULT_MAX_SOURCE_WORKERS
from .shapes.fields import (NULLABLE, REQUIRED, Field, FieldErrors, Shape, ValidationError, as_object, blank,
                            is_http_url, opt_bool, opt_int, opt_object, opt_str, opt_str_list, required_strings, text)

PUB_SUB_TYPES = ("sqs", "google", "kafka", "amqp")
MAX_SOURCE_WORKERS = DEFAULT_MAX_SOURCE_WORKERS  # `Settings.max_source_workers` is the instance's

SQS = Shape((
    Field("access_key_id", required=REQUIRED), Field("secret_key", required=REQUIRED),
    Field("default_region", required=REQUIRED), Field("queue_name", required=REQUIRED),
    Field("endpoint", extra=NULLABLE),
))
GOOGLE = Shape((
    Field("service_account", required="service account is required",
          extra={"description": "base64 of a JSON key file"}),
    Field("subscription_id", required="subscription id is required"),
    Field("project_id", required="project id is required"),
))
KAFKA_AUTH = Shape((
    Field("type", enum=("plain", "scram"), enum_message="unsupported auth type"),
    Field("hash", enum=("SHA256", "SHA512"), enum_message="unsupported hashing algorithm", fold="upper"),
    Field("username", required=REQUIRED), Field("password", required=REQUIRED),
    Field("tls", "boolean"),
), nullable=True)
KAFKA = Shape((
    # An empty list means convoy-stream's own cluster ("direct Kafka production"); the
    # message is for a blank entry.
    Field("brokers", "array", required="brokers list is required", schema_required=False),
    Field("topic_name", required="topic name is required"),
    Field("consumer_group_id"),
    Field("auth", "object", shape=KAFKA_AUTH),
))
AMQP_AUTH = Shape((Field("user"), Field("password")), nullable=True)
#: Convoy's dashboard always sends bindExchange; an empty exchange means "no binding"
#: (the queue is fed through the default exchange), not an error.
AMQP_BIND = Shape((Field("exchange"), Field("routingKey")), nullable=True)
AMQP = Shape((
    Field("schema", enum=("amqp", "amqps"), enum_message="schema must be amqp or amqps"),
    Field("host", required=REQUIRED),
    Field("port", required=REQUIRED, extra={"pattern": "^[0-9]{1,5}$"}),
    Field("queue", required=REQUIRED),
    Field("vhost"),
    Field("auth", "object", shape=AMQP_AUTH),
    Field("bindExchange", "object", shape=AMQP_BIND),
    Field("deadLetterExchange", extra=NULLABLE),
))
PUB_SUB = Shape((
    Field("type", required="type is required", enum=PUB_SUB_TYPES, enum_message="unsupported pub sub type"),
    Field("workers", "integer", minimum=1, bound_message="workers must be at least 1"),
    Field("sqs", "object", shape=SQS),
    Field("google", "object", shape=GOOGLE),
    Field("kafka", "object", shape=KAFKA),
    Field("amqp", "object", shape=AMQP),
), description="Broker config of a `pub_sub` source; credentials are shown once, at creation.")

_LABELS = {"sqs": "sqs", "google": "google pub sub", "kafka": "kafka", "amqp": "amqp"}


def validate_pub_sub(body: Any, *, max_workers: int = MAX_SOURCE_WORKERS) -> dict[str, Any]:
    """Validate a ``pub_sub`` broker config without connecting to it.

    Returns ``{type, workers, <type>: {...}}`` with only the selected broker's block.
    ``workers`` defaults to 1 and must be between 1 and ``max_workers`` (the instance's
    ``CONVOY_STREAM_MAX_SOURCE_WORKERS``: each worker holds broker connections). Kafka
    ``auth.hash`` defaults to ``SHA512`` for SCRAM (Convoy's runtime default); AMQP ``schema`` defaults to
    ``amqp``, ``vhost`` to ``""`` (the default vhost) and ``port`` is stored as a string.
    The Google ``service_account`` stays base64 as sent, after checking it decodes to a
    JSON object (a key file).
    """
    obj = {} if body is None else as_object(body, "pub_sub")
    errors = FieldErrors()
    pub_sub_type = text(obj, "type", "pub_sub")
    workers = opt_int(obj, "workers", "pub_sub")
    errors.check(PUB_SUB["type"], pub_sub_type)
    errors.check(PUB_SUB["workers"], workers)
    if workers is not None and workers > max_workers:
        errors.add("workers", f"workers must be at most {max_workers}")
    errors.raise_if_any()

    config = opt_object(obj, pub_sub_type, "pub_sub")
    if config is None:
        raise ValidationError(f"{_LABELS[pub_sub_type]} config is required")
    check: Callable[[Mapping[str, Any]], dict[str, Any]] = {
        "sqs": _validate_sqs, "google": _validate_google, "kafka": _validate_kafka, "amqp": _validate_amqp,
    }[pub_sub_type]
    return {"type": pub_sub_type, "workers": workers or 1, pub_sub_type: check(config)}


def _validate_sqs(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.sqs"
    out: dict[str, Any] = required_strings(raw, SQS.without("endpoint"), parent)
    endpoint = opt_str(raw, "endpoint", parent) or None
    if endpoint is not None and not is_http_url(endpoint):
        raise ValidationError("endpoint:please provide a valid url")
    out["endpoint"] = endpoint
    return out


def _validate_google(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = required_strings(raw, GOOGLE, "pub_sub.google")
    try:
        key_file = json.loads(base64.b64decode(out["service_account"], validate=True))
    except (binascii.Error, ValueError):
        key_file = None
    if not isinstance(key_file, dict):
        raise ValidationError("service_account:service account must be a base64-encoded JSON key file")
    return out


def _validate_kafka(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.kafka"
    brokers = opt_str_list(raw, "brokers", parent) or []
    topic = text(raw, "topic_name", parent)
    errors = FieldErrors()
    if any(blank(b) for b in brokers):
        errors.add("brokers", str(KAFKA["brokers"].required))
    errors.check(KAFKA["topic_name"], topic)
    errors.raise_if_any()
    out: dict[str, Any] = {"brokers": [b.strip() for b in brokers], "topic_name": topic,
                           "consumer_group_id": text(raw, "consumer_group_id", parent), "auth": None}
    auth = opt_object(raw, "auth", parent)
    if auth is not None:
        out["auth"] = _validate_kafka_auth(auth)
    return out


def _validate_kafka_auth(auth: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.kafka.auth"
    auth_type = text(auth, "type", parent)
    if auth_type not in KAFKA_AUTH["type"].enum:
        raise ValidationError(KAFKA_AUTH["type"].enum_message)
    hash_name = text(auth, "hash", parent).upper()
    if auth_type == "scram":
        hash_name = hash_name or "SHA512"
        if hash_name not in KAFKA_AUTH["hash"].enum:
            raise ValidationError(KAFKA_AUTH["hash"].enum_message)
    credentials = required_strings(auth, KAFKA_AUTH.without("type", "hash"), parent)
    return {"type": auth_type, "hash": hash_name, **credentials,
            "tls": bool(opt_bool(auth, "tls", parent))}


def _validate_amqp(raw: Mapping[str, Any]) -> dict[str, Any]:
    parent = "pub_sub.amqp"
    schema = text(raw, "schema", parent) or "amqp"
    port_value = raw.get("port")
    if isinstance(port_value, int) and not isinstance(port_value, bool):
        port = str(port_value)
    else:
        port = text(raw, "port", parent)
    host = text(raw, "host", parent)
    queue = text(raw, "queue", parent)
    errors = FieldErrors()
    errors.check(AMQP["schema"], schema)
    errors.check(AMQP["host"], host)
    errors.check(AMQP["port"], port)
    if port and (not port.isdigit() or not 1 <= int(port) <= 65535):
        errors.add("port", "please provide a valid port")
    errors.check(AMQP["queue"], queue)
    errors.raise_if_any()

    auth = opt_object(raw, "auth", parent)
    bind = opt_object(raw, "bindExchange", parent)
    bind_out = None
    if bind is not None and text(bind, "exchange", f"{parent}.bindExchange"):
        bind_out = {"exchange": text(bind, "exchange", f"{parent}.bindExchange"),
                    "routingKey": text(bind, "routingKey", f"{parent}.bindExchange")}
    return {
        "schema": schema, "host": host, "port": port, "queue": queue,
        "vhost": text(raw, "vhost", parent),
        "auth": None if auth is None else {"user": text(auth, "user", f"{parent}.auth"),
                                           "password": text(auth, "password", f"{parent}.auth")},
        "bindExchange": bind_out,
        "deadLetterExchange": opt_str(raw, "deadLetterExchange", parent) or None,
    }
