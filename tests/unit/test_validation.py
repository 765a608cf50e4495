"""Config and event API validation: the messages a Convoy user sees, and the normalised data."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convoy_stream.validation import (
    DEFAULT_PROJECT_CONFIG,
    HASH_ALGORITHMS,
    PROVIDERS,
    InvalidMessage,
    ValidationError,
    decode_json_body,
    merge_broker_headers,
    message_type,
    validate_broker_message,
    validate_endpoint,
    validate_event,
    validate_project,
    validate_pub_sub,
    validate_source,
    validate_subscription,
)


def message_of(fn, *args, **kwargs) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value.message


HMAC = {"header": "X-Convoy-Signature", "hash": "SHA512", "secret": "Convoy", "encoding": "hex"}


def source(**overrides):
    return {"name": "stripe-prod", "type": "http", **overrides}


# -------------------------------------------------------------------------------- sources


def test_source_name_and_type_required_all_reported():
    assert message_of(validate_source, {}) == "name:please provide a source name, type:please provide a type"
    assert message_of(validate_source, {"name": "  ", "type": "http"}) == "name:please provide a source name"
    assert message_of(validate_source, source(type="webhook")) == "type:unsupported source type"


@pytest.mark.parametrize("source_type", ["http", "rest_api", "db_change_stream"])
def test_minimal_source_normalises_defaults(source_type):
    assert validate_source(source(type=source_type)) == {
        "name": "stripe-prod", "type": source_type, "provider": "", "verifier": {"type": "noop"},
        "idempotency_keys": [], "event_type_location": "",
        "custom_response": {"body": "", "content_type": ""},
        "body_function": None, "header_function": None, "pub_sub": None,
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_sources_need_an_hmac_secret(provider):
    assert message_of(validate_source, source(provider=provider)) == f"hmac secret is required for {provider} source"
    assert message_of(validate_source, source(provider=provider, verifier={"type": "hmac", "hmac": {"secret": ""}})) \
        == f"hmac secret is required for {provider} source"
    ok = validate_source(source(provider=provider, verifier={"hmac": {"secret": "whsec_x"}}))
    assert ok["provider"] == provider
    assert ok["verifier"]["type"] == "hmac" and ok["verifier"]["hmac"]["secret"] == "whsec_x"


def test_unknown_provider_is_rejected_up_front():
    assert message_of(validate_source, source(provider="gitlab")) == "provider:unsupported source provider"


def test_verifier_type_and_config_messages():
    assert message_of(validate_source, source(verifier={"type": "oauth"})) == "please provide a valid verifier type"
    assert message_of(validate_source, source(verifier={"type": "hmac"})) == "invalid verifier config for hmac"
    assert message_of(validate_source, source(verifier={"type": "basic_auth"})) == \
        "invalid verifier config for basic auth"
    assert message_of(validate_source, source(verifier={"type": "api_key"})) == "invalid verifier config for api key"


def test_hmac_fields_required_and_checked():
    assert message_of(validate_source, source(verifier={"type": "hmac", "hmac": {}})) == (
        "header:non zero value required, hash:non zero value required, "
        "secret:non zero value required, encoding:non zero value required")
    bad = {**HMAC, "hash": "SHA999", "encoding": "base32"}
    assert message_of(validate_source, source(verifier={"type": "hmac", "hmac": bad})) == (
        "hash:SHA999 does not validate as supported_hash, encoding:please provide a valid encoding type")


@pytest.mark.parametrize("hash_name", HASH_ALGORITHMS)
def test_every_one_of_the_twelve_hashes_is_accepted_and_normalised(hash_name):
    out = validate_source(source(verifier={"type": "hmac", "hmac": {**HMAC, "hash": hash_name.lower(),
                                                                      "encoding": "BASE64"}}))
    assert out["verifier"]["hmac"]["hash"] == hash_name
    assert out["verifier"]["hmac"]["encoding"] == "base64"


def test_hmac_extra_fields_are_kept_and_checked():
    out = validate_source(source(verifier={"type": "hmac", "hmac": {
        **HMAC, "tolerance_seconds": 600, "previous_secret": "old",
        "previous_secret_expires_at": "2030-01-01T00:00:00Z"}}))
    assert out["verifier"] == {"type": "hmac", "hmac": {
        "header": "X-Convoy-Signature", "hash": "SHA512", "secret": "Convoy", "encoding": "hex",
        "tolerance_seconds": 600, "previous_secret": "old", "previous_secret_expires_at": "2030-01-01T00:00:00Z"}}
    assert message_of(validate_source, source(verifier={"type": "hmac", "hmac": {**HMAC, "tolerance_seconds": 0}})) \
        == "tolerance_seconds:please provide a positive number of seconds"
    assert message_of(validate_source, source(verifier={"type": "hmac", "hmac": {
        **HMAC, "previous_secret_expires_at": "tomorrow"}})) == \
        "previous_secret_expires_at:please provide an RFC 3339 timestamp"


def test_basic_auth_and_api_key_fields():
    assert message_of(validate_source, source(verifier={"type": "basic_auth", "basic_auth": {"username": "u"}})) \
        == "password:non zero value required"
    assert message_of(validate_source, source(verifier={"type": "api_key", "api_key": {}})) == \
        "header_value:non zero value required, header_name:non zero value required"
    out = validate_source(source(verifier={"type": "api_key", "api_key": {"header_name": "X-Key",
                                                                         "header_value": "sec"},
                                           "hmac": {"secret": "ignored"}}))
    assert out["verifier"] == {"type": "api_key", "api_key": {"header_name": "X-Key", "header_value": "sec"}}


def test_wrong_json_types_name_the_field():
    assert message_of(validate_source, source(name=5)) == 'body contains incorrect JSON type for field "name"'
    assert message_of(validate_source, source(verifier={"type": "hmac", "hmac": {**HMAC, "secret": 1}})) == \
        'body contains incorrect JSON type for field "verifier.hmac.secret"'
    assert message_of(validate_source, source(idempotency_keys="request.body.id")) == \
        'body contains incorrect JSON type for field "idempotency_keys"'
    assert message_of(validate_source, ["not", "an", "object"]).startswith("body contains incorrect JSON type")


def test_idempotency_key_locations():
    assert validate_source(source(idempotency_keys=["request.body.id", "req.Header.X-Id"]))["idempotency_keys"] == [
        "request.body.id", "req.Header.X-Id"]
    assert message_of(validate_source, source(idempotency_keys=["request.body"])) == \
        "not enough parts set for idempotency key location with value: request.body"
    assert message_of(validate_source, source(idempotency_keys=["body.data.id"])) == \
        "unsupported input format for idempotency key location with value: body.data.id"


def test_event_type_location_and_payload_signature_restriction():
    restriction = ("event type location cannot use request headers or query parameters "
                   "with payload signature verification")
    github = source(provider="github", verifier={"hmac": {"secret": "s"}})
    assert message_of(validate_source, {**github, "event_type_location": "request.header.X-GitHub-Event"}) \
        == restriction
    hmac_source = source(verifier={"type": "hmac", "hmac": HMAC})
    assert message_of(validate_source, {**hmac_source, "event_type_location": "request.query.event"}) == restriction
    assert validate_source({**github, "event_type_location": "request.body.action"})["event_type_location"] == \
        "request.body.action"
    basic = source(verifier={"type": "basic_auth", "basic_auth": {"username": "u", "password": "p"}},
                   event_type_location="request.header.X-Event")
    assert validate_source(basic)["event_type_location"] == "request.header.X-Event"
    assert message_of(validate_source, source(event_type_location="request.header.X.Y")).startswith(
        "nested selector unsupported")


def test_custom_response_size_limit():
    assert validate_source(source(custom_response={"body": "[accepted]", "content_type": "text/plain"}))[
        "custom_response"] == {"body": "[accepted]", "content_type": "text/plain"}
    assert validate_source(source(custom_response={"body": "x" * 51200}))["custom_response"]["body"] == "x" * 51200
    assert message_of(validate_source, source(custom_response={"body": "x" * 51201})) == \
        "source custom response too large"
    assert message_of(validate_source, source(custom_response={"body": "é" * 25601})) == \
        "source custom response too large"  # bytes, not characters


def test_forward_headers_and_is_disabled_are_accepted_on_create_and_update():
    body = source(forward_headers=["X-GitHub-Event"], is_disabled=True, body_function="function transform(p){}")
    created = validate_source(body)
    assert created["forward_headers"] == ["X-GitHub-Event"] and created["is_disabled"] is True
    assert created["body_function"] == "function transform(p){}"
    updated = validate_source(body, update=True)
    assert updated["forward_headers"] == ["X-GitHub-Event"] and updated["is_disabled"] is True


def test_update_keeps_only_sent_optional_fields_but_always_replaces_the_verifier():
    assert validate_source(source(), update=True) == {"name": "stripe-prod", "type": "http",
                                                      "verifier": {"type": "noop"}}
    assert message_of(validate_source, {"type": "http"}, update=True) == "name:please provide a source name"


def test_pub_sub_only_validated_for_pub_sub_sources():
    assert validate_source(source(pub_sub={"type": "nonsense"}))["pub_sub"] is None
    assert message_of(validate_source, source(type="pub_sub")) == "type:type is required"


# -------------------------------------------------------------------------------- pub/sub

SQS = {"access_key_id": "AKIA", "secret_key": "s", "default_region": "eu-west-1", "queue_name": "events"}


def test_pub_sub_type_and_workers():
    assert message_of(validate_pub_sub, {"type": "nats"}) == "type:unsupported pub sub type"
    assert message_of(validate_pub_sub, {"type": "", "workers": 0}) == \
        "type:type is required, workers:workers must be at least 1"
    assert validate_pub_sub({"type": "sqs", "sqs": SQS})["workers"] == 1
    assert validate_pub_sub({"type": "sqs", "workers": 4, "sqs": SQS})["workers"] == 4


@pytest.mark.parametrize(("kind", "message"), [
    ("sqs", "sqs config is required"), ("google", "google pub sub config is required"),
    ("kafka", "kafka config is required"), ("amqp", "amqp config is required"),
])
def test_pub_sub_config_block_required(kind, message):
    assert message_of(validate_pub_sub, {"type": kind, "workers": 1}) == message


def test_sqs():
    assert message_of(validate_pub_sub, {"type": "sqs", "sqs": {"queue_name": "q"}}) == (
        "access_key_id:non zero value required, secret_key:non zero value required, "
        "default_region:non zero value required")
    out = validate_pub_sub({"type": "sqs", "workers": 2, "sqs": {**SQS, "endpoint": "http://127.0.0.1:5000"},
                            "kafka": {"ignored": True}})
    assert out == {"type": "sqs", "workers": 2, "sqs": {**SQS, "endpoint": "http://127.0.0.1:5000"}}


def test_google_service_account_is_base64_json():
    key_file = base64.b64encode(json.dumps({"type": "service_account"}).encode()).decode()
    ok = {"type": "google", "google": {"project_id": "p", "subscription_id": "s", "service_account": key_file}}
    assert validate_pub_sub(ok)["google"]["service_account"] == key_file
    assert message_of(validate_pub_sub, {"type": "google", "google": {}}) == (
        "service_account:service account is required, subscription_id:subscription id is required, "
        "project_id:project id is required")
    for bad in ("not base64!", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1]").decode()):
        assert message_of(validate_pub_sub, {"type": "google", "google": {**ok["google"], "service_account": bad}}) \
            == "service_account:service account must be a base64-encoded JSON key file"


def test_kafka():
    assert message_of(validate_pub_sub, {"type": "kafka", "kafka": {}}) == "topic_name:topic name is required"
    assert message_of(validate_pub_sub, {"type": "kafka", "kafka": {"brokers": [" "], "topic_name": "t"}}) == \
        "brokers:brokers list is required"
    # no brokers: convoy-stream's own cluster (direct Kafka production)
    assert validate_pub_sub({"type": "kafka", "kafka": {"topic_name": "t"}})["kafka"]["brokers"] == []
    base = {"brokers": ["localhost:9092"], "topic_name": "orders"}
    assert validate_pub_sub({"type": "kafka", "kafka": base})["kafka"] == {
        **base, "consumer_group_id": "", "auth": None}
    auth = {"type": "scram", "username": "u", "password": "p"}
    assert validate_pub_sub({"type": "kafka", "kafka": {**base, "auth": auth}})["kafka"]["auth"] == {
        "type": "scram", "hash": "SHA512", "username": "u", "password": "p", "tls": False}
    assert message_of(validate_pub_sub, {"type": "kafka", "kafka": {**base, "auth": {**auth, "type": "oauth"}}}) == \
        "unsupported auth type"
    assert message_of(validate_pub_sub, {"type": "kafka", "kafka": {**base, "auth": {**auth, "hash": "MD5"}}}) == \
        "unsupported hashing algorithm"


def test_amqp():
    assert message_of(validate_pub_sub, {"type": "amqp", "amqp": {"schema": "http"}}) == (
        "schema:schema must be amqp or amqps, host:non zero value required, port:non zero value required, "
        "queue:non zero value required")
    out = validate_pub_sub({"type": "amqp", "amqp": {
        "host": "localhost", "port": 5672, "queue": "events", "auth": {"user": "guest", "password": "guest"},
        "bindExchange": {"exchange": "ex"}, "deadLetterExchange": "dlx"}})
    assert out["amqp"] == {"schema": "amqp", "host": "localhost", "port": "5672", "queue": "events", "vhost": "",
                           "auth": {"user": "guest", "password": "guest"},
                           "bindExchange": {"exchange": "ex", "routingKey": ""}, "deadLetterExchange": "dlx"}
    assert message_of(validate_pub_sub, {"type": "amqp", "amqp": {"host": "h", "port": "99999", "queue": "q"}}) == \
        "port:please provide a valid port"


# ------------------------------------------------------------------------------ endpoints


def test_endpoint_required_fields_and_defaults():
    assert message_of(validate_endpoint, {}) == \
        "url:please provide a url for your endpoint, name:please provide your endpointName"
    assert message_of(validate_endpoint, {"name": "n", "url": "ftp://x"}) == \
        "url:please provide a valid http or https url"
    assert message_of(validate_endpoint, {"name": "n", "url": "https://"}) == \
        "url:please provide a valid http or https url"
    out = validate_endpoint({"name": "billing", "url": "https://example.com/hook"})
    assert out == {"name": "billing", "url": "https://example.com/hook", "status": "active", "secret": None,
                   "owner_id": None, "description": None, "slack_webhook_url": None, "support_email": None,
                   "advanced_signatures": True, "http_timeout": None, "rate_limit": None,
                   "rate_limit_duration": None, "authentication": None}


def test_endpoint_optional_fields():
    assert validate_endpoint({"name": "n", "url": "http://h", "status": "paused"})["status"] == "paused"
    assert validate_endpoint({"name": "n", "url": "http://h", "is_disabled": True})["status"] == "inactive"
    assert message_of(validate_endpoint, {"name": "n", "url": "http://h", "status": "off"}) == \
        "status:please provide a valid endpoint status"
    assert message_of(validate_endpoint, {"name": "n", "url": "http://h", "support_email": "nope"}) == \
        "support_email:please provide a valid email"
    assert message_of(validate_endpoint, {"name": "n", "url": "http://h", "http_timeout": 0}) == \
        "http_timeout:please provide a valid http timeout"
    auth = {"type": "api_key", "api_key": {"header_name": "X-Key", "header_value": "v"}}
    assert validate_endpoint({"name": "n", "url": "http://h", "authentication": auth})["authentication"] == auth
    assert message_of(validate_endpoint, {"name": "n", "url": "http://h", "authentication": {"type": "oauth"}}) == \
        "type:unsupported authentication type"


def test_endpoint_advanced_signatures_as_convoy_sets_them():
    """Convoy (services/create_endpoint.go, update_endpoint.go): advanced unless an outgoing
    project asks for simple; an incoming project's endpoints always advanced."""
    body = {"name": "n", "url": "http://h"}
    assert validate_endpoint(body)["advanced_signatures"] is True
    assert validate_endpoint({**body, "advanced_signatures": False})["advanced_signatures"] is False
    assert validate_endpoint({**body, "advanced_signatures": False}, project_type="incoming")["advanced_signatures"] is True
    assert "advanced_signatures" not in validate_endpoint(body, update=True)
    assert validate_endpoint({**body, "advanced_signatures": False}, update=True)["advanced_signatures"] is False
    assert "advanced_signatures" not in validate_endpoint({**body, "advanced_signatures": False}, update=True,
                                                          project_type="incoming")


def test_endpoint_update_only_carries_sent_fields():
    assert validate_endpoint({"name": "n", "url": "http://h", "secret": "s"}, update=True) == {
        "name": "n", "url": "http://h", "secret": "s"}


# ------------------------------------------------------------------------- subscriptions


def test_subscription_required_fields():
    assert message_of(validate_subscription, {}, project_type="outgoing") == \
        "name:please provide a valid subscription name, endpoint_id:please provide a valid endpoint id"
    assert message_of(validate_subscription, {"name": "s", "endpoint_id": "e"}, project_type="incoming") == \
        "source_id is required for incoming projects"


def test_subscription_defaults_to_catch_all():
    out = validate_subscription({"name": "s", "endpoint_id": "e", "source_id": "src"}, project_type="incoming")
    assert out == {"name": "s", "endpoint_id": "e", "source_id": "src", "function": None,
                   "filter_config": {"event_types": ["*"], "filter": {"headers": {}, "body": {}}}}
    out = validate_subscription({"name": "s", "endpoint_id": "e", "filter_config": {"event_types": []}},
                                project_type="outgoing")
    assert out["filter_config"]["event_types"] == ["*"]


def test_subscription_filters_are_validated():
    f = {"event_types": ["invoice.paid"], "filter": {
        "headers": {"X-GitHub-Event": "push"}, "body": {"amount": {"$gte": 10}}, "query": {"v": "1"}}}
    out = validate_subscription({"name": "s", "endpoint_id": "e", "filter_config": f}, project_type="outgoing")
    assert out["filter_config"] == {"event_types": ["invoice.paid"], "filter": {
        "headers": {"X-GitHub-Event": "push"}, "body": {"amount": {"$gte": 10}}, "query": {"v": "1"}}}
    bad = {"filter": {"body": {"amount": {"$between": [1, 2]}}}}
    assert message_of(validate_subscription, {"name": "s", "endpoint_id": "e", "filter_config": bad},
                      project_type="outgoing") == "filter_config.filter.body:unknown operator $between"


def test_subscription_update():
    assert validate_subscription({"filter_config": {"event_types": ["a"]}}, project_type="incoming",
                                 update=True) == {
        "filter_config": {"event_types": ["a"], "filter": {"headers": {}, "body": {}}}}
    assert message_of(validate_subscription, {"source_id": ""}, project_type="incoming", update=True) == \
        "source_id is required for incoming projects"


# ------------------------------------------------------------------------------ projects


def test_project_required_fields():
    assert message_of(validate_project, {}) == "name:please provide a valid name, type:please provide a valid type"
    assert message_of(validate_project, {"name": "p", "type": "both"}) == "type:please provide a valid type"


def test_project_defaults():
    out = validate_project({"name": "p", "type": "incoming"})
    assert out == {"name": "p", "type": "incoming", "logo_url": None, "config": DEFAULT_PROJECT_CONFIG}
    assert out["config"]["max_payload_read_size"] == 51200
    assert out["config"]["retention_policy"] == {"policy": "168h"}


def test_project_config_values():
    config = {"max_payload_read_size": 50, "retention_policy": {"policy": "72h30m"},
              "strategy": {"type": "exponential", "retry_count": 0}, "ratelimit": {"count": 1000},
              "signature": {"header": "X-Sig", "versions": [{"hash": "sha512", "encoding": "base64"}]}}
    out = validate_project({"name": "p", "type": "outgoing", "config": config})["config"]
    assert out["max_payload_read_size"] == 50
    assert out["retention_policy"] == {"policy": "72h30m"}
    assert out["strategy"] == {"type": "exponential", "duration": 100, "retry_count": 0}
    assert out["ratelimit"] == {"count": 1000, "duration": 60}
    assert out["signature"] == {"header": "X-Sig", "versions": [{"hash": "SHA512", "encoding": "base64"}]}
    # ratelimit paces deliveries (a dispatcher's job): only Convoy's default is accepted, not ignored
    for rate in ({"count": 10}, {"duration": 1}, {"count": 5000, "duration": 60}):
        assert message_of(validate_project, {"name": "p", "type": "outgoing", "config": {"ratelimit": rate}}).startswith(
            "ratelimit:config.ratelimit paces deliveries to endpoints")
    alias = validate_project({"name": "p", "type": "outgoing", "config": {"retention_policy": {
        "retention_policy": "24h"}}})
    assert alias["config"]["retention_policy"] == {"policy": "24h"}
    assert message_of(validate_project, {"name": "p", "type": "outgoing", "config": {
        "retention_policy": {"policy": "7 days"}}}) == "policy:please provide a valid retention policy"
    assert message_of(validate_project, {"name": "p", "type": "outgoing", "config": {
        "strategy": {"type": "random"}}}) == "type:unsupported strategy type"


def test_project_update_ignores_type_and_keeps_config_when_absent():
    assert validate_project({"name": "renamed", "type": "nonsense"}, update=True) == {"name": "renamed"}


# ---------------------------------------------------------------------------- REST events


def test_single_event_messages():
    assert message_of(validate_event, "single", {}) == \
        "data:please provide your data, event_type:please provide an event type"
    assert message_of(validate_event, "single", {"event_type": "invoice.paid"}) == "data:please provide your data"
    assert message_of(validate_event, "single", {"event_type": "invoice.paid", "data": {"a": 1}}) == \
        "please provide an endpoint ID"
    out = validate_event("single", {"endpoint_id": "ep", "event_type": "invoice.paid", "data": {"a": 1}})
    assert out == {"event_type": "invoice.paid", "data": {"a": 1}, "custom_headers": {}, "idempotency_key": None,
                   "endpoint_id": "ep", "app_id": None}
    assert validate_event("single", {"app_id": "app", "event_type": "t", "data": []})["app_id"] == "app"


def test_fanout_broadcast_dynamic_messages():
    assert message_of(validate_event, "fanout", {}) == (
        "owner_id:please provide an owner id, event_type:please provide an event type, "
        "data:please provide your data")
    assert message_of(validate_event, "broadcast", {"data": 1}) == "event_type:please provide an event type"
    assert message_of(validate_event, "dynamic", {}) == (
        "url:please provide an endpoint url, data:please provide your webhook event data, "
        "event_type:please provide an event type")


def test_event_data_may_be_any_json_but_not_null():
    for data in ({"a": 1}, [1], "text", 0, False):
        assert validate_event("broadcast", {"event_type": "t", "data": data})["data"] == data
    assert message_of(validate_event, "broadcast", {"event_type": "t", "data": None}) == \
        "data:please provide your data"


def test_event_optional_fields():
    out = validate_event("fanout", {"owner_id": "o", "event_type": "t", "data": {},
                                    "custom_headers": {"X-Trace": "1"}, "idempotency_key": "k1"})
    assert out == {"event_type": "t", "data": {}, "custom_headers": {"X-Trace": "1"}, "idempotency_key": "k1",
                   "owner_id": "o"}
    assert message_of(validate_event, "broadcast", {"event_type": "t", "data": {}, "custom_headers": {"a": 1}}) == \
        'body contains incorrect JSON type for field "custom_headers.a"'
    assert message_of(validate_event, "broadcast", {"event_type": 5, "data": {}}) == \
        'body contains incorrect JSON type for field "event_type"'
    dyn = validate_event("dynamic", {"url": "https://h/x", "event_type": "t", "data": {}, "event_types": []})
    assert dyn["url"] == "https://h/x" and dyn["event_types"] == ["*"] and dyn["secret"] is None


# ---------------------------------------------------------------------------- JSON decoding


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "body must not be empty"),
    (b" \n\t", "body must not be empty"),
    (b'{"a":}', "body contains badly-formed JSON (at character 6)"),
    (b'{"a" 1}', "body contains badly-formed JSON (at character 6)"),
    (b"[1,]", "body contains badly-formed JSON (at character 4)"),
    (b'{"a":1} x', "body contains badly-formed JSON (at character 9)"),
    ('{"é":}'.encode(), "body contains badly-formed JSON (at character 7)"),  # byte offset
    (b'{"a":1', "body contains badly-formed JSON"),
    (b'{"a":"abc', "body contains badly-formed JSON"),
    (b"[1]", "body contains incorrect JSON type (at character 1)"),
    (b'"x"', "body contains incorrect JSON type (at character 3)"),
])
def test_decode_json_body_errors_match_convoy(raw, message):
    assert message_of(decode_json_body, raw) == message


def test_decode_json_body_values():
    assert decode_json_body(b'{"event_type":"t","data":{"n":1.5}}') == {"event_type": "t", "data": {"n": 1.5}}
    assert decode_json_body(b"[1]", expect_object=False) == [1]
    assert decode_json_body(b'{"a":"\\ud800"}') == {"a": "\ufffd"}  # lone surrogate, as Go


@given(st.binary(max_size=80))
def test_decode_json_body_only_raises_validation_error_and_output_is_utf8_safe(raw):
    try:
        value = decode_json_body(raw, expect_object=False)
    except ValidationError:
        return
    json.dumps(value, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------- broker messages


def test_valid_broker_message():
    body = json.dumps({"endpoint_id": "ep", "event_type": "invoice.paid", "data": {"a": 1},
                       "custom_headers": {"x-convoy-message-type": "single"}, "idempotency_key": "k"}).encode()
    assert validate_broker_message(body) == {
        "endpoint_id": "ep", "owner_id": None, "event_type": "invoice.paid", "data": {"a": 1},
        "custom_headers": {"x-convoy-message-type": "single"}, "idempotency_key": "k"}


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"event_type":"t","data":{},"payload":1}', 'json: unknown field "payload"'),
    (b'{"data":{}}', "the payload doesn't include an event type"),
    (b'{"event_type":"  ","data":{}}', "the payload doesn't include an event type"),
    (b'{"event_type":"t"}', "the payload doesn't include any data"),
    (b'{"event_type":"t","data":null}', "the payload doesn't include any data"),
    (b'{"event_type":7,"data":{}}', 'json: cannot unmarshal number into field "event_type" of type string'),
    (b'{"event_type":"t","data":{},"custom_headers":{"a":1}}',
     'json: cannot unmarshal number into field "custom_headers.a" of type string'),
    (b"[1]", "json: cannot unmarshal array into a Convoy event object"),
])
def test_invalid_broker_messages_name_the_reason(body, reason):
    with pytest.raises(InvalidMessage) as info:
        validate_broker_message(body)
    assert info.value.reason == reason


def test_broker_message_that_is_not_json():
    with pytest.raises(InvalidMessage, match="^message body is not valid JSON"):
        validate_broker_message(b"not json")


@given(st.binary(max_size=80))
def test_validate_broker_message_only_raises_invalid_message(body):
    try:
        out = validate_broker_message(body)
    except InvalidMessage:
        return
    json.dumps(out, ensure_ascii=False).encode("utf-8")


def test_message_type_routing():
    assert message_type({}, {}) == "single"
    assert message_type({"X-Convoy-Message-Type": "fanout"}, {}) == "fanout"
    assert message_type({}, {"x-convoy-message-type": "broadcast"}) == "broadcast"
    assert message_type({"x-convoy-message-type": "fanout"}, {"X-Convoy-Message-Type": "broadcast"}) == "fanout"
    with pytest.raises(InvalidMessage) as info:
        message_type({"x-convoy-message-type": "multicast"}, {})
    assert info.value.reason == \
        "multicast isn't a valid pubsub message type, it should be one of single, fanout or broadcast"


def test_merge_broker_headers_lowercases_and_broker_wins():
    assert merge_broker_headers({"X-Broker-Message-Id": "m1", "X-A": "broker"}, {"x-a": "custom", "X-B": "b"}) == {
        "x-broker-message-id": "m1", "x-a": "broker", "x-b": "b"}


def test_source_update_uses_the_stored_provider_and_location_for_cross_field_checks():
    stored = {"name": "gh", "type": "http", "provider": "github", "event_type_location": "request.body.action"}
    update = {"name": "gh", "type": "http", "verifier": {"type": "hmac", "hmac": {"secret": "new"}}}
    out = validate_source(update, update=True, current=stored)
    assert out["verifier"]["hmac"]["secret"] == "new" and "provider" not in out
    assert message_of(validate_source, {"name": "gh", "type": "http"}, update=True, current=stored) == \
        "hmac secret is required for github source"
    basic = {"name": "b", "type": "http", "event_type_location": "request.header.X-Event"}
    assert message_of(validate_source, {"name": "b", "type": "http", "verifier": {"type": "hmac", "hmac": HMAC}},
                      update=True, current=basic) == (
        "event type location cannot use request headers or query parameters with payload signature verification")
