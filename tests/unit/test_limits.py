"""Limits on tenant-controlled input (issue 18): the pure checks and the bridge manager's caps."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, Sequence

import orjson
import pytest

from bridges import BridgeManager, BrokerMessage
from bridges.manager import allot
from convoy_stream import netpolicy
from convoy_stream.durations import parse_go_duration
from convoy_stream.limits import MAX_JSON_DEPTH, JsonTooDeep, header_map_problem, json_depth_exceeds
from convoy_stream.records import DATA_OMITTED, delivery_views, event_view
from convoy_stream.retention import retention_of
from convoy_stream.validation import (
    InvalidMessage,
    ValidationError,
    decode_json_body,
    validate_broker_message,
    validate_endpoint,
    validate_event,
    validate_project,
    validate_pub_sub,
    validate_source,
)
from convoy_stream.web.protocol_errors import message_for
from convoy_stream.webhook_payload import loads_json


def message_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value.message


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- JSON depth: parsers refuse, reads show a marker -------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 251, 252, 253, 254, 1000, 5000])
def test_documents_deeper_than_the_limit_are_refused_by_every_parser(depth: int) -> None:
    text = "[" * depth + "]" * depth
    assert "nested deeper than 128 levels" in message_of(decode_json_body, text.encode(), expect_object=False)
    with pytest.raises((JsonTooDeep, RecursionError)):
        loads_json(text)
    with pytest.raises(InvalidMessage):
        validate_broker_message(orjson.dumps({"event_type": "t", "data": nested(depth)}) if depth < 250
                                else b'{"event_type":"t","data":' + text.encode() + b"}")


def test_documents_at_the_limit_parse_and_encode_inside_an_answer() -> None:
    text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    value = decode_json_body(text.encode(), expect_object=False)
    assert loads_json(text) == value
    # A stored row inside a list answer adds four levels: still far below orjson's 255.
    orjson.dumps({"data": {"content": [{"data": value}]}})
    assert not json_depth_exceeds(value) and json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeds({"a": [1, {"b": "x"}]}, 3) and json_depth_exceeds({"a": [1, {"b": []}]}, 3)


def test_a_stored_row_too_deep_to_encode_is_shown_without_its_data() -> None:
    row = {"uid": "e1", "data": nested(252), "raw": "", "dedup_key": "", "deliveries": [{"uid": "e1-d", "status": "Scheduled"}]}
    view = event_view(row)
    assert view["data"] is None and DATA_OMITTED in view and orjson.dumps({"data": {"content": [view]}})
    (delivery,) = delivery_views(row)
    assert delivery["data"] is None and delivery[DATA_OMITTED] and delivery["status"] == "Scheduled"
    fine = {**row, "data": {"a": 1}}
    assert event_view(fine)["data"] == {"a": 1} and DATA_OMITTED not in event_view(fine)


# -- bridge workers ------------------------------------------------------------------------------


def test_workers_are_limited_per_source_at_validation() -> None:
    config = {"type": "kafka", "workers": 100_000, "kafka": {"brokers": [], "topic_name": "t"}}
    assert message_of(validate_pub_sub, config) == "workers:workers must be at most 16"
    assert message_of(validate_pub_sub, config | {"workers": 3}, max_workers=2) == "workers:workers must be at most 2"
    assert validate_pub_sub(config | {"workers": 16})["workers"] == 16
    source = {"name": "s", "type": "pub_sub", "pub_sub": config | {"workers": 5}}
    assert message_of(validate_source, source, max_workers=4) == "workers:workers must be at most 4"


def test_allotment_serves_the_oldest_sources_first_within_both_limits() -> None:
    def src(workers: int) -> dict[str, Any]:
        return {"type": "pub_sub", "pub_sub": {"type": "sqs", "workers": workers}}

    sources = {"01A": src(100_000), "01B": src(3), "01C": src(2)}
    assert allot(sources, per_source=4, total=6) == {"01A": 4, "01B": 2, "01C": 0}
    assert allot(sources, per_source=16, total=64) == {"01A": 16, "01B": 3, "01C": 2}


class IdleConsumer:
    broker = "sqs"

    async def connect(self) -> None:
        return None

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        await asyncio.sleep(0.01)
        return []

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        return None

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_the_manager_caps_sources_stored_before_the_limits(caplog: pytest.LogCaptureFixture) -> None:
    made: list[IdleConsumer] = []

    def factory(source: Mapping[str, Any], **kwargs: Any) -> IdleConsumer:
        made.append(IdleConsumer())
        return made[-1]

    async def handle(source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[Exception | None]:
        return [None for _ in messages]

    manager = BridgeManager(handle, None, consumer_factory=factory, max_source_workers=3,  # type: ignore[arg-type]
                            max_total_workers=4)
    huge = {"uid": "01A", "type": "pub_sub", "pub_sub": {"type": "sqs", "workers": 100_000}}
    other = {"uid": "01B", "type": "pub_sub", "pub_sub": {"type": "sqs", "workers": 2}}
    try:
        with caplog.at_level(logging.WARNING, logger="bridges.manager"):
            await manager.reconcile([huge, other])
        status = manager.status()
        assert len(made) == 4 and status["01A"]["running"] == 3 and status["01B"]["running"] == 1
        assert "runs 3 of 100000 workers" in status["01A"]["last_error"]
        assert [r.getMessage() for r in caplog.records if "01A" in r.getMessage()] == [
            "bridge 01A runs 3 of 100000 workers: at most 3 per source and 4 per instance"]
        await manager.reconcile([huge, other])  # nothing changed: no restart, no second log line
        assert len(made) == 4
        await manager.reconcile([other])  # room again: the other source restarts with all it asks for
        assert manager.status()["01B"]["running"] == 2 and manager.status()["01B"]["last_error"] is None
    finally:
        await manager.stop()


# -- payload size, headers, URLs ------------------------------------------------------------------


def test_max_payload_read_size_is_at_most_what_an_event_can_store() -> None:
    project = {"name": "p", "type": "incoming"}
    assert message_of(validate_project, project | {"config": {"max_payload_read_size": 10**12}}) == \
        "max_payload_read_size:must be at most 1000000 bytes (what an event can store)"
    out = validate_project(project | {"config": {"max_payload_read_size": 1_000_000}})
    assert out["config"]["max_payload_read_size"] == 1_000_000


def test_payload_limit_caps_projects_stored_before_the_bound() -> None:
    from convoy_stream.web.webhooks import payload_limit

    assert payload_limit({"config": {"max_payload_read_size": 10**12}}) == 1_000_000
    assert payload_limit({"config": {"max_payload_read_size": 2048}}) == 2048
    assert payload_limit({}) == 51200


@pytest.mark.parametrize("headers, reason", [
    ({"X-A": "v\r\nInjected: 1"}, "control character"),
    ({"X-A": "\x00"}, "control character"),
    ({"Bad Name": "v"}, "not a valid HTTP token"),
    ({"X:Y": "v"}, "not a valid HTTP token"),
    ({"": "v"}, "not a valid HTTP token"),
    ({"X-" + "a" * 300: "v"}, "longer than 256"),
    ({"X-A": "v" * 8193}, "longer than 8192"),
    ({f"X-{i}": "v" for i in range(101)}, "at most 100 headers"),
])
def test_header_maps_follow_rfc_9110(headers: dict[str, str], reason: str) -> None:
    assert reason in (header_map_problem(headers) or "")
    event = {"endpoint_id": "e", "event_type": "t", "data": {}, "custom_headers": headers}
    assert message_of(validate_event, "single", event).startswith("custom_headers:")
    with pytest.raises(InvalidMessage):
        validate_broker_message(orjson.dumps({"event_type": "t", "data": {}, "custom_headers": headers}))


def test_valid_headers_pass() -> None:
    assert header_map_problem({"X-Trace": "a b\tc", "Content-Type": "application/json; charset=utf-8"}) is None


@pytest.mark.parametrize("url", ["https://example.com/a b", "https://example.com/a\r\nX: 1", "ftp://example.com/",
                                 "https://exa mple.com/", "https://example.com/\x00", "http:///path",
                                 "https://example.com/" + "a" * 5000, "https://exämple.com/"])
def test_endpoint_and_dynamic_urls_follow_rfc_3986(url: str) -> None:
    assert message_of(validate_endpoint, {"name": "e", "url": url}) == "url:please provide a valid http or https url"
    body = {"url": url, "event_type": "t", "data": {}}
    assert message_of(validate_event, "dynamic", body) == "url:please provide a valid http or https url"


def test_other_header_names_a_tenant_sets_are_tokens() -> None:
    hmac = {"type": "hmac", "hmac": {"header": "X-Sig\r\nA", "hash": "SHA256", "secret": "s", "encoding": "hex"}}
    assert "header:please provide a valid header name" in message_of(validate_source, {"name": "s", "type": "http",
                                                                                        "verifier": hmac})
    assert message_of(validate_source, {"name": "s", "type": "http", "forward_headers": ["X A"]}) == \
        "forward_headers:please provide a valid header name"
    assert message_of(validate_source, {"name": "s", "type": "http", "custom_response": {
        "body": "ok", "content_type": "text/plain\r\nSet-Cookie: a=b"}}) == \
        "custom_response.content_type:please provide a valid content type"
    assert message_of(validate_project, {"name": "p", "type": "outgoing", "config": {
        "request_id_header": "X-Id\nA"}}) == "request_id_header:please provide a valid header name"


def test_owner_id_is_type_checked_on_single_events() -> None:
    assert message_of(validate_event, "single", {"endpoint_id": "e", "event_type": "t", "data": {}, "owner_id": 5}) == \
        'body contains incorrect JSON type for field "owner_id"'


# -- network policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "0177.0.0.1", "[::1]", "::1",
                                  "::ffff:127.0.0.1", "169.254.169.254", "metadata.google.internal",
                                  "METADATA.GOOGLE.INTERNAL.", "metadata", "localhost", "api.localhost", "10.1.2.3",
                                  "172.16.0.1", "192.168.1.1", "100.100.100.200", "fd00:ec2::254", "fe80::1",
                                  "0.0.0.0", "64:ff9b::7f00:1", "2002:7f00:1::", "224.0.0.1"])
def test_internal_hosts_are_refused(host: str) -> None:
    assert netpolicy.host_problem(host, allow_private=False) == netpolicy.REFUSED
    assert netpolicy.host_problem(host, allow_private=True) is None


@pytest.mark.parametrize("host", ["example.com", "8.8.8.8", "2001:4860:4860::8888", "cafe", "kafka-1.internal.example"])
def test_public_hosts_and_names_pass(host: str) -> None:
    assert netpolicy.host_problem(host, allow_private=False) is None


def test_broker_hosts_are_checked_per_broker() -> None:
    kafka = {"type": "kafka", "kafka": {"brokers": ["k.example.com:9092", "[::1]:9092"]}}
    assert netpolicy.pub_sub_problem(kafka, allow_private=False) == f"pub_sub.kafka.brokers:::1 {netpolicy.REFUSED}"
    amqp = {"type": "amqp", "amqp": {"host": "0x7f000001"}}
    assert netpolicy.pub_sub_problem(amqp, allow_private=False).startswith("pub_sub.amqp.host:")  # type: ignore[union-attr]
    sqs = {"type": "sqs", "sqs": {"endpoint": "http://169.254.169.254/"}}
    assert netpolicy.pub_sub_problem(sqs, allow_private=False).startswith("pub_sub.sqs.endpoint:")  # type: ignore[union-attr]
    assert netpolicy.pub_sub_problem({"type": "google", "google": {}}, allow_private=False) is None
    assert netpolicy.pub_sub_problem(kafka, allow_private=True) is None


# -- aiohttp's own refusals, durations --------------------------------------------------------------


def test_protocol_refusals_never_echo_the_input() -> None:
    from aiohttp import http_exceptions

    assert message_for(400, http_exceptions.LineTooLong("X-Secret: hunter2...", "8190")) == "request line or header too long"
    assert message_for(400, http_exceptions.ContentEncodingError("Please install Brotli")) == "unsupported Content-Encoding"
    assert message_for(400, http_exceptions.BadStatusLine("GARBAGE hunter2")) == "malformed request"
    assert message_for(500, RuntimeError("boom")) == "internal server error"


@pytest.mark.parametrize("policy, seconds", [("500us", 0.0005), (".5h", 1800.0), ("1h30m", 5400.0), ("168h", 604800.0),
                                             ("1.5s", 1.5), ("2h45m30.5s", 9930.5), ("300ms", 0.3), ("1.h", 3600.0)])
def test_validation_and_retention_read_a_policy_the_same_way(policy: str, seconds: float) -> None:
    project = validate_project({"name": "p", "type": "outgoing", "config": {"retention_policy": {"policy": policy}}})
    assert project["config"]["retention_policy"]["policy"] == policy
    assert retention_of(project) == pytest.approx(seconds) == parse_go_duration(policy)


@pytest.mark.parametrize("bad", ["7d", "h", "10", "5m junk", ".h", "-1h", "0", "1 h"])
def test_a_policy_validation_refuses_is_never_stored(bad: str) -> None:
    assert message_of(validate_project, {"name": "p", "type": "outgoing", "config": {"retention_policy": {
        "policy": bad}}}) == "policy:please provide a valid retention policy"


async def test_the_manager_does_not_start_a_stored_source_the_network_policy_refuses() -> None:
    from convoy_stream.bridge_runner import _refused_hosts

    made: list[IdleConsumer] = []

    def factory(source: Mapping[str, Any], **kwargs: Any) -> IdleConsumer:
        made.append(IdleConsumer())
        return made[-1]

    manager = BridgeManager(None, None, consumer_factory=factory,  # type: ignore[arg-type]
                            refuse=lambda s: _refused_hosts(s, allow_private=False))
    internal = {"uid": "01A", "type": "pub_sub", "pub_sub": {"type": "amqp", "amqp": {"host": "169.254.169.254"}}}
    public = {"uid": "01B", "type": "pub_sub", "pub_sub": {"type": "amqp", "amqp": {"host": "mq.example.com"}}}
    try:
        await manager.reconcile([internal, public])
        status = manager.status()
        assert status["01A"]["running"] == 0 and "pub_sub.amqp.host" in status["01A"]["last_error"]
        assert status["01B"]["running"] == 1 and len(made) == 1
    finally:
        await manager.stop()


def test_broker_headers_that_cannot_be_http_headers_are_not_forwarded() -> None:
    from bridges.base import BrokerMessage
    from convoy_stream.broker_messages import to_record

    body = orjson.dumps({"event_type": "t", "data": {}})
    headers = {"X-Ok": "fine", "X-Bad": "v\r\nInjected: 1", "Bad Name": "v", "x-convoy-message-type": "broadcast"}
    message = BrokerMessage(body=body, headers=headers, message_id="m-1", delivery_id="m-1")
    record = to_record({"uid": "src", "project_id": "proj", "pub_sub": {"type": "kafka"}}, message,
                       config=None, event_id=lambda key: "01EVENT", now="now")  # type: ignore[arg-type]
    assert record.headers == {"x-ok": "fine", "x-convoy-message-type": "broadcast", "x-broker-message-id": "m-1"}
    assert record.forward_headers == record.headers
