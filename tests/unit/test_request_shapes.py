"""The field tables are what the validators enforce and what the OpenAPI document says.

For every field of every request table that carries a plain rule (required, enum, lower
bound), a valid body is broken in exactly that field and the validator must refuse it
with the table's message; the document's schema for that field must carry the same rule.
A table edited without the validator (or the reverse) fails here.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from convoy_stream import durations, retention
from convoy_stream.shapes.endpoints import ENDPOINT
from convoy_stream.shapes.events import EVENT_SHAPES
from convoy_stream.shapes.fields import Field, Shape, ValidationError
from convoy_stream.shapes.projects import PROJECT
from convoy_stream.shapes.sources import SOURCE
from convoy_stream.shapes.subscriptions import SUBSCRIPTION
from convoy_stream.validation import (validate_endpoint, validate_event, validate_project, validate_source,
                                      validate_subscription)
from convoy_stream.web import openapi

KEY_FILE = base64.b64encode(b'{"type": "service_account"}').decode()
PUB_SUBS = {
    "sqs": {"access_key_id": "a", "secret_key": "s", "default_region": "eu-west-1", "queue_name": "q"},
    "google": {"service_account": KEY_FILE, "subscription_id": "s", "project_id": "p"},
    "kafka": {"brokers": ["k:9092"], "topic_name": "t", "auth": {"type": "scram", "hash": "SHA256", "username": "u",
                                                                  "password": "p"}},
    "amqp": {"host": "h", "port": "5672", "queue": "q", "schema": "amqp"},
}
HMAC = {"header": "X-Sig", "hash": "SHA256", "secret": "s", "encoding": "hex", "tolerance_seconds": 5}


def source_body(**extra: Any) -> dict[str, Any]:
    return {"name": "s", "type": "http", "verifier": {"type": "hmac", "hmac": dict(HMAC)}, **extra}


#: (label, table, a valid body, the validator, the body's component in the document)
CASES: list[tuple[str, Shape, dict[str, Any], Callable[[Any], Any], str]] = [
    ("project", PROJECT, {"name": "p", "type": "outgoing", "config": {
        "max_payload_read_size": 100, "ratelimit": {"count": 1000, "duration": 60},
        "strategy": {"type": "linear", "duration": 5, "retry_count": 3},
        "signature": {"versions": [{"hash": "SHA256", "encoding": "hex"}]}}},
     validate_project, "ProjectCreate"),
    ("endpoint", ENDPOINT, {"name": "e", "url": "https://example.com", "status": "active", "http_timeout": 5,
                            "rate_limit": 1, "rate_limit_duration": 1,
                            "authentication": {"type": "api_key", "api_key": {"header_name": "X-K",
                                                                              "header_value": "v"}}},
     validate_endpoint, "EndpointInput"),
    ("subscription", SUBSCRIPTION, {"name": "s", "endpoint_id": "e"},
     lambda body: validate_subscription(body, project_type="outgoing"), "SubscriptionInput"),
    ("source", SOURCE, source_body(provider=""), validate_source, "SourceInput"),
    *[(f"pub_sub {kind}", SOURCE, source_body(type="pub_sub", pub_sub={"type": kind, "workers": 1, kind: config}),
       validate_source, "SourceInput") for kind, config in PUB_SUBS.items()],
    *[(f"event {kind}", EVENT_SHAPES[kind],
       {"endpoint_id": "e", "owner_id": "o", "url": "https://example.com", "event_type": "t", "data": {}},
       lambda body, kind=kind: validate_event(kind, body),
       {"single": "EventSingle", "fanout": "EventFanout", "broadcast": "EventBroadcast",
        "dynamic": "EventDynamic"}[kind]) for kind in EVENT_SHAPES],
]


def ruled_fields(shape: Shape, body: dict[str, Any],
                 path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Field]]:
    """Every field with a plain rule, at a path the valid body reaches (nested objects it holds)."""
    for spec in shape.fields:
        where = (*path, spec.name)
        if spec.kind == "object" and spec.shape is not None and isinstance(body.get(spec.name), dict):
            yield from ruled_fields(spec.shape, body[spec.name], where)
        elif spec.kind == "array" and spec.shape is not None and body.get(spec.name):
            yield from ruled_fields(spec.shape, body[spec.name][0], (*where, "0"))
        elif (spec.required and spec.in_schema_required and spec.kind != "array") or spec.enum \
                or spec.minimum is not None:
            yield where, spec


def broken(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target: Any = out
    for key in path[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return out


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the field's schema, the schema of the object holding it)."""
    parent = schema
    for key in path[:-1]:
        parent = parent["items"] if key == "0" else parent["properties"][key]
    return parent["properties"][path[-1]], parent


def refusal(validate: Callable[[Any], Any], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        validate(body)
    return info.value.message


def passes_rule(spec: Field, validate: Callable[[Any], Any], body: dict[str, Any]) -> bool:
    """Whether the body passes the field's own rule (another rule may still refuse a value
    on its own, as `type: pub_sub` without a `pub_sub` block)."""
    try:
        validate(body)
    except ValidationError as exc:
        own = [m for m in (spec.required, spec.enum_message, spec.bound_message) if m]
        return not any(m.split("{value}")[0] in exc.message for m in own)
    return True


RULES = [(label, path, spec, body, validate, component)
         for label, shape, body, validate, component in CASES for path, spec in ruled_fields(shape, body)]


@pytest.mark.parametrize("label, shape, body, validate, component", CASES, ids=[c[0] for c in CASES])
def test_each_valid_body_is_accepted(label: str, shape: Shape, body: dict[str, Any],
                                     validate: Callable[[Any], Any], component: str) -> None:
    validate(body)


@pytest.mark.parametrize("label, path, spec, body, validate, component", RULES,
                         ids=[f"{r[0]}:{'.'.join(r[1])}" for r in RULES])
def test_every_rule_of_a_table_is_the_validators_and_the_documents(
        label: str, path: tuple[str, ...], spec: Field, body: dict[str, Any], validate: Callable[[Any], Any],
        component: str) -> None:
    schema, holder = schema_at(openapi.document()["components"]["schemas"][component], path)
    if spec.required and spec.in_schema_required:
        assert spec.required in refusal(validate, broken(body, path, None))
        assert spec.name in holder["required"]
    if spec.enum:
        assert spec.enum_message.replace("{value}", "bogus") in refusal(validate, broken(body, path, "bogus"))
        assert set(spec.enum) <= set(schema["enum"])
        for value in spec.enum:
            assert passes_rule(spec, validate, broken(body, path, value.lower() if spec.fold == "lower" else value))
    if spec.minimum is not None:
        assert spec.bound_message in refusal(validate, broken(body, path, spec.minimum - 1))
        assert schema["minimum"] == spec.minimum
        assert passes_rule(spec, validate, broken(body, path, spec.minimum))


def test_the_rules_cover_every_request_component() -> None:
    assert {case[4] for case in CASES} == set(openapi.REQUEST_SCHEMAS) - {"ProjectUpdate", "SubscriptionUpdate"}
    assert len(RULES) > 40


@pytest.mark.parametrize("policy, seconds", [("500us", 0.0005), (".5h", 1800.0)])
def test_a_retention_policy_is_swept_as_validated(policy: str, seconds: float) -> None:
    """Validation and the sweep share the one Go-duration parser: `500us` is not 168h at sweep time."""
    project = validate_project({"name": "p", "type": "outgoing", "config": {"retention_policy": {"policy": policy}}})
    assert retention.retention_of(project) == pytest.approx(seconds)
    assert retention.parse_duration is durations.parse_go_duration


@pytest.mark.parametrize("data", ["", 0, False, [], {}])
def test_any_json_value_but_null_is_an_events_data(data: Any) -> None:
    """`data` is required as present, not as non-empty: only a string field's `""` is missing."""
    assert validate_event("single", {"endpoint_id": "e", "event_type": "t", "data": data})["data"] == data


def test_a_wrong_json_type_is_reported_for_the_first_field_convoy_declares() -> None:
    with pytest.raises(ValidationError) as info:
        validate_event("single", {"endpoint_id": 1, "event_type": 2, "data": {}})
    assert info.value.message == 'body contains incorrect JSON type for field "endpoint_id"'
