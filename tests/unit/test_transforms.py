"""Sources' JavaScript transforms: a body function maps any payload onto Convoy's message,
a header function rewrites the headers; a script that cannot run dead-letters the message
with the reason, and is refused when the source is created."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridges.base import BrokerMessage, InvalidMessage
from convoy_stream import transforms
from convoy_stream.broker_messages import to_record

MAP_ORDER = """
function transform(payload) {
  return {endpoint_id: payload.target, event_type: "order." + payload.status,
          data: {id: payload.order_id, total: payload.total}, idempotency_key: payload.order_id};
}
"""


class _Config:
    def endpoint(self, project_id: str, uid: str) -> dict[str, Any] | None:
        return {"uid": uid} if uid == "ep-1" else None


def _record(source: dict[str, Any], body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    message = BrokerMessage(body=orjson.dumps(body), headers=headers or {}, message_id="m-1", delivery_id="m-1")
    return to_record({"uid": "src", "project_id": "proj", "pub_sub": {"type": "kafka"}, **source}, message,
                     config=_Config(), event_id=lambda key: "01EVENT", now="now")


def test_a_body_function_maps_an_arbitrary_payload_onto_a_convoy_message() -> None:
    record = _record({"body_function": MAP_ORDER},
                     {"order_id": "o-9", "status": "paid", "total": 12.5, "target": "ep-1", "noise": [1, 2]})
    assert (record.kind, record.endpoint_id, record.event_type) == ("single", "ep-1", "order.paid")
    assert record.data == {"id": "o-9", "total": 12.5}
    assert record.idempotency_key == "o-9" and record.dedup_key == "proj:o-9"


def test_without_a_body_function_an_arbitrary_payload_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="unknown field"):
        _record({}, {"order_id": "o-9", "status": "paid"})


def test_a_header_function_rewrites_headers_and_can_route_the_message() -> None:
    script = """function transform(h) {
      return {"X-Convoy-Message-Type": "broadcast", "x-tenant": h["x-tenant-raw"].toUpperCase()};
    }"""
    record = _record({"header_function": script}, {"event_type": "e", "data": {}}, {"x-tenant-raw": "acme"})
    assert record.kind == "broadcast"
    assert record.headers == {"x-convoy-message-type": "broadcast", "x-tenant": "ACME"}


@pytest.mark.parametrize("source, reason", [
    ({"body_function": "function transform(p) { throw new Error('no such status') }"}, "body_function: transform threw: Error: no such status"),
    ({"body_function": "function transform(p) { }"}, "body_function: transform returned nothing"),
    ({"header_function": "function transform(h) { return {n: 1} }"}, "header_function: transform must return an object of string values"),
    ({"header_function": "function transform(h) { return 'x' }"}, "header_function: transform must return an object of string values"),
])
def test_a_transform_that_fails_names_the_reason(source: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidMessage) as failure:
        _record(source, {"event_type": "e", "data": {}, "endpoint_id": "ep-1"})
    assert failure.value.reason == reason


def test_a_runaway_script_is_stopped() -> None:
    with pytest.raises(transforms.TransformError, match="exceeded its time limit of 200 ms"):
        transforms.run("function transform(p) { while (true) {} }", {}, project="proj")
    assert transforms.run("function transform(p) { return p.n + 1 }", {"n": 1}, project="proj") == 2


@pytest.mark.parametrize("script, message", [
    ("function transform(", "does not compile"),
    ("function map(p) { return p }", "must define a function named transform"),
])
def test_a_script_that_cannot_run_is_found_before_any_message(script: str, message: str) -> None:
    with pytest.raises(transforms.TransformError, match=message):
        transforms.check(script)


def test_a_script_whose_top_level_never_ends_is_refused() -> None:
    with pytest.raises(transforms.TransformError, match="time limit of 200 ms while loading"):
        transforms.check("while (true) {} function transform(p) { return p }")


def test_console_lines_are_collected_per_call() -> None:
    script = "function transform(p) { console.log('saw', p.n, {k: 1}); return p }"
    assert transforms.try_once(script, {"n": 1}) == ({"n": 1}, ['saw 1 {"k":1}'])
    assert transforms.try_once(script, {"n": 2})[1] == ['saw 2 {"k":1}']
