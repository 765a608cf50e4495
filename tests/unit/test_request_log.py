"""The request log's rules: causes, what a document keeps, the cap per source, retention; and
the event list's `body` containment search."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from convoy_stream import request_log
from convoy_stream.ids import partition_of, scoped
from convoy_stream.web.envelope import ApiError
from convoy_stream.web.search import body_param
from tables.events import EventFilter, contains

SOURCE = {"uid": "01SOURCE", "project_id": "P1", "name": "stripe", "mask_id": "m"}


class _Table(dict):  # the Faust table as the agent sees it: a mapping (scan needs `.data.data`)
    @property
    def data(self):  # noqa: D401
        return type("S", (), {"data": self})()


def _doc(**kw):
    args = dict(source=SOURCE, cause="verification_failed", status=400, message="Request verification failed",
                method="POST", path="/ingest/m", query_string="", headers={"x": "1"}, body=b"{}", partitions=8)
    args.update(kw)
    return request_log.document(**args)


@pytest.mark.parametrize(("status", "message", "cause"), [
    (400, "Request verification failed", "verification_failed"),
    (400, "source has no valid verifier configured", "verification_failed"),
    (400, "Invalid request format", "unparsable"),
    (403, "source is disabled", "source_disabled"),
    (413, "request body too large", "body_too_large"),
    (429, "exceeded rate limit", "rate_limited"),
    (405, "Method Not Allowed", "method_not_allowed"),
    (404, "Resource not found", None),
    (408, "timed out", None),
])
def test_causes(status: int, message: str, cause: str | None) -> None:
    assert request_log.cause_of(status, message) == cause


def test_a_document_keeps_the_first_64_kib_and_says_it_was_cut() -> None:
    big = _doc(body=b"a" * (request_log.BODY_KEPT + 10))
    assert len(big["body"]) == request_log.BODY_KEPT and big["body_truncated"] and big["body_size"] == 65546
    binary = _doc(body=b"\xff\x00")
    assert binary["body_encoding"] == "base64" and request_log.body_bytes(binary) == b"\xff\x00"
    unread = _doc(body=None)
    assert unread["body_truncated"] and unread["body_size"] is None


def test_every_document_of_a_source_names_the_same_partition() -> None:
    parts = {partition_of(scoped("P1", _doc()["uid"]), 8) for _ in range(20)}
    assert parts == {request_log.partition_of_source(SOURCE["uid"], 8)}


def test_the_agent_keeps_at_most_the_cap_per_source_dropping_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_log, "KEPT_PER_SOURCE", 3)
    table = _Table()
    docs = [_doc(now=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)) for i in range(5)]
    for d in docs:
        request_log.store(table, d)
    kept = sorted(k for k in table if k.startswith("P1/"))
    assert kept == sorted(scoped("P1", d["uid"]) for d in docs[2:])
    request_log.store(table, {**docs[4], "retried_event_id": "E1"})  # a newer version replaces, no eviction
    assert table[scoped("P1", docs[4]["uid"])]["retried_event_id"] == "E1"
    assert len([k for k in table if k.startswith("P1/")]) == 3
    request_log.forget(table, "P1", [d["uid"] for d in docs])
    assert dict(table) == {}


def test_the_agent_applies_documents_and_expire_commands_from_the_topic() -> None:
    table = _Table()
    doc = _doc()
    request_log.apply(table, doc)
    request_log.apply(table, "not a document")  # ignored, as any record of another shape
    assert table[scoped("P1", doc["uid"])] == doc
    [(key, value, partition)] = request_log.expire_commands("P1", [doc["uid"]], 8)
    assert partition == partition_of(scoped("P1", doc["uid"]), 8)
    request_log.apply(table, __import__("orjson").loads(value))
    assert dict(table) == {}
    request_log.apply(table, __import__("orjson").loads(request_log.ANCHOR))  # the anchor changes nothing
    assert dict(table) == {}


def test_retention_expires_old_documents_only() -> None:
    table = _Table()
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    old = _doc(now=now - timedelta(seconds=request_log.RETENTION_SECONDS + 60))
    new = _doc(now=now - timedelta(hours=1))
    for d in (old, new):
        request_log.store(table, d)
    found = list(request_log.expired(table, [{"uid": "P1"}], active=lambda k: True, now=now))
    assert found == [("P1", [old["uid"]])]
    # A project with a shorter retention expires sooner.
    short = {"uid": "P1", "config": {"retention_policy": {"policy": "30m"}}}
    found = list(request_log.expired(table, [short], active=lambda k: True, now=now))
    assert found == [("P1", [old["uid"], new["uid"]])]


def test_filter_by_source_and_cause() -> None:
    f = request_log.RequestFilter(source_ids=frozenset({"01SOURCE"}), causes=frozenset({"rate_limited"}))
    assert not f.accepts(_doc())
    assert f.accepts(_doc(cause="rate_limited"))


@pytest.mark.parametrize(("value", "wanted", "expected"), [
    ({"a": 1, "b": {"c": "x", "d": 2}}, {"b": {"c": "x"}}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"tags": ["a", "b", "c"]}, {"tags": ["c", "a"]}, True),
    ({"tags": ["a"]}, {"tags": ["z"]}, False),
    ({"items": [{"id": 1, "q": 2}, {"id": 3}]}, {"items": [{"id": 3}]}, True),
    ({"n": 1.0}, {"n": 1}, True),
    ({"flag": 1}, {"flag": True}, False),
    ("text", {"a": 1}, False),
    ({"a": None}, {"a": None}, True),
])
def test_body_containment(value: object, wanted: object, expected: bool) -> None:
    assert contains(value, wanted) is expected


def test_event_filter_body_and_query() -> None:
    row = {"uid": "01ABC", "event_type": "invoice.paid", "source_id": "S1", "idempotency_key": "k-1",
           "broker_message_id": "sqs-123", "data": {"customer": {"id": "cus_1"}, "amount": 42}}
    assert EventFilter(body='{"customer":{"id":"cus_1"}}').accepts(row)
    assert not EventFilter(body='{"customer":{"id":"cus_2"}}').accepts(row)
    assert EventFilter(query="SQS-123").accepts(row)  # whole broker message id, any case
    assert EventFilter(query="paid").accepts(row)
    assert not EventFilter(query="sqs").accepts(row)
    assert EventFilter(query="stripe", query_source_ids=frozenset({"S1"})).accepts(row)
    # The RocksDB pre-filter needs every string of the body search in the stored row.
    assert EventFilter(body='{"customer":{"id":"cus_1"}}').needles() == [[b'"customer"'], [b'"id"'], [b'"cus_1"']]


@pytest.mark.parametrize("raw", ["[1]", "{}", "not json", "1", "x" * 5000])
def test_body_param_must_be_a_json_object(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        body_param({"body": raw})
    assert info.value.status == 400


def test_body_param_is_compacted() -> None:
    assert body_param({"body": '{ "a" : 1 }'}) == '{"a":1}'
    assert body_param({}) == ""
