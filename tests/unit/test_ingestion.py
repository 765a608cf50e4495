"""The pipeline's domain logic without Kafka: dedup, replay, routing, retention."""

from __future__ import annotations

from typing import Any

from convoy_stream.ids import new_ulid, scoped
from convoy_stream.ingestion import EXPIRE, Tables, ingest
from convoy_stream.records import IngestRecord
from convoy_stream.routing import delivery_uid, event_uid_of
from tables.events import DeliveryFilter, Page, delivery, deliveries_of_event, list_deliveries, within

P = "proj"


class Config:
    """A config view over plain lists (the ConfigView protocol)."""

    def __init__(self, endpoints: list[dict[str, Any]], subscriptions: list[dict[str, Any]]) -> None:
        self.endpoints = {e["uid"]: {"project_id": P, "status": "active", **e} for e in endpoints}
        self.subscriptions = subscriptions

    def endpoint(self, project_id: str, uid: str) -> dict[str, Any] | None:
        return self.endpoints.get(uid)

    def endpoints_by_owner(self, project_id: str, owner_id: str) -> list[dict[str, Any]]:
        return [e for e in self.endpoints.values() if e.get("owner_id") == owner_id]

    def subscriptions_for_endpoint(self, endpoint_id: str) -> list[dict[str, Any]]:
        return [s for s in self.subscriptions if s.get("endpoint_id") == endpoint_id]

    def subscriptions_for_source(self, source_id: str) -> list[dict[str, Any]]:
        return [s for s in self.subscriptions if s.get("source_id") == source_id]

    def project_entities(self, kind: str, project_id: str) -> list[dict[str, Any]]:
        return list(self.endpoints.values()) if kind == "endpoint" else self.subscriptions


def tables() -> Tables:
    return Tables(events={}, idempotency={}, broker_ids={})


def record(kind: str = "single", **fields: Any) -> IngestRecord:
    base = dict(uid=new_ulid(), project_id=P, kind=kind, event_type="invoice.paid", data={"amount": 10},
                created_at="2026-11-27T00:00:00Z", endpoint_id="e1")
    return IngestRecord(**{**base, **fields})


CONFIG = Config(
    endpoints=[{"uid": "e1", "owner_id": "o1"}, {"uid": "e2", "owner_id": "o1"}, {"uid": "e3", "owner_id": "o2", "status": "paused"}],
    subscriptions=[
        {"uid": "s-paid", "endpoint_id": "e2", "filter_config": {"event_types": ["invoice.paid"]}},
        {"uid": "s-big", "endpoint_id": "e3", "filter_config": {"event_types": ["*"], "filter": {"body": {"amount": {"$gte": 100}}}}},
        {"uid": "s-hook", "endpoint_id": "e1", "source_id": "src", "filter_config": {"event_types": ["*"]}},
    ],
)


def test_single_event_uses_the_endpoints_subscriptions_or_a_catch_all() -> None:
    t = tables()
    [d] = ingest(record(endpoint_id="e2"), config=CONFIG, tables=t)
    assert (d.endpoint_id, d.subscription_id, d.status) == ("e2", "s-paid", "Scheduled")
    # e1 has no outgoing subscription of its own (s-hook is bound to a source): catch-all
    [catch_all] = ingest(record(endpoint_id="e1"), config=Config(CONFIG.endpoints.values(), []), tables=t)
    assert catch_all.subscription_id == "default-e1"


def test_fanout_broadcast_filters_and_paused_endpoints() -> None:
    t = tables()
    fanout = ingest(record("fanout", owner_id="o1", endpoint_id=""), config=CONFIG, tables=t)
    assert sorted(d.endpoint_id for d in fanout) == ["e1", "e2"]
    small = ingest(record("broadcast", endpoint_id=""), config=CONFIG, tables=t)
    large = ingest(record("broadcast", endpoint_id="", data={"amount": 500}), config=CONFIG, tables=t)
    assert "s-big" not in {d.subscription_id for d in small}
    [big] = [d for d in large if d.subscription_id == "s-big"]
    assert big.status == "Discarded"  # the endpoint is paused


def test_webhooks_go_to_subscriptions_of_their_source() -> None:
    t = tables()
    [d] = ingest(record("webhook", endpoint_id="", source_id="src"), config=CONFIG, tables=t)
    assert d.subscription_id == "s-hook"
    assert ingest(record("webhook", endpoint_id="", source_id="other"), config=CONFIG, tables=t) == []
    stored = [e for e in t.events.values() if e["source_id"] == "other"]
    assert stored[0]["status"] == "Failure"


def test_idempotency_key_keeps_the_first_and_stores_repeats_as_duplicates() -> None:
    t = tables()
    first = record(idempotency_key="k", dedup_key=f"{P}:k")
    second = record(idempotency_key="k", dedup_key=f"{P}:k")
    assert len(ingest(first, config=CONFIG, tables=t)) == 1
    assert ingest(second, config=CONFIG, tables=t) == []
    assert t.events[scoped(P, second.uid)]["is_duplicate_event"] is True
    assert t.events[scoped(P, first.uid)]["is_duplicate_event"] is False
    assert t.idempotency[f"{P}:k"] == [first.uid, second.uid]


def test_a_replayed_record_re_emits_the_same_deliveries_and_is_no_duplicate_of_itself() -> None:
    t = tables()
    r = record("fanout", owner_id="o1", endpoint_id="", idempotency_key="k", dedup_key=f"{P}:k")
    original = ingest(r, config=CONFIG, tables=t)
    replayed = ingest(r, config=CONFIG, tables=t)
    assert [d.uid for d in replayed] == [d.uid for d in original] and len(original) == 2
    assert [d.data for d in replayed] == [{"amount": 10}] * 2
    assert t.events[scoped(P, r.uid)]["is_duplicate_event"] is False


class Recording(dict):  # type: ignore[type-arg]
    """A table that remembers which keys were written (each write is a changelog record)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def test_a_replay_writes_the_event_and_its_index_entries_again_for_the_changelog() -> None:
    # A worker that died after its local store but before the changelog send: the replay is
    # the only chance the next owner of the partition gets these rows.
    t = Tables(events=Recording(), idempotency=Recording(), broker_ids=Recording())
    r = record(idempotency_key="k", dedup_key=f"{P}:k", broker_message_id="m-1")
    ingest(r, config=CONFIG, tables=t)
    for table in (t.events, t.idempotency, t.broker_ids):
        table.written.clear()
    ingest(r, config=CONFIG, tables=t)
    assert t.events.written == [scoped(P, r.uid)]
    assert t.idempotency.written == [f"{P}:k"]
    assert t.broker_ids.written == [scoped(P, "m-1")] and t.broker_ids[scoped(P, "m-1")] == [r.uid]


def test_delivery_uids_name_their_event_and_are_stable() -> None:
    uid = new_ulid()
    assert delivery_uid(uid, "s1") == delivery_uid(uid, "s1") != delivery_uid(uid, "s2")
    assert event_uid_of(delivery_uid(uid, "s1")) == uid


def test_delivery_queries_read_the_events_row() -> None:
    t = tables()
    r = record("fanout", owner_id="o1", endpoint_id="")
    emitted = ingest(r, config=CONFIG, tables=t)
    found = deliveries_of_event(t.events, P, r.uid)
    assert {d["uid"] for d in found} == {d.uid for d in emitted} and all(d["data"] == {"amount": 10} for d in found)
    assert delivery(t.events, P, emitted[0].uid)["endpoint_id"] == emitted[0].endpoint_id
    assert delivery(t.events, "other-project", emitted[0].uid) is None
    page = within(found, DeliveryFilter(endpoint_ids=frozenset({"e2"})).accepts, Page(limit=10))
    assert [d["endpoint_id"] for d in page] == ["e2"]


class _Store:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class _Table:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = _Store(data)


def test_listing_deliveries_pages_through_events_rows_without_gaps() -> None:
    t = tables()
    emitted = [d for _ in range(5) for d in ingest(record("fanout", owner_id="o1", endpoint_id=""), config=CONFIG, tables=t)]
    table = _Table(t.events)
    seen, upper = [], "\uffff"
    while True:
        page = list_deliveries(table, P, DeliveryFilter(), Page(limit=3, upper=upper), active=lambda key: True)
        seen += [d["uid"] for d in page]
        if len(page) < 3:
            break
        upper = page[-1]["uid"]
    assert seen == sorted((d.uid for d in emitted), reverse=True)


def test_expire_forgets_the_event_its_dedup_entry_and_broker_index() -> None:
    t = tables()
    r = record(idempotency_key="k", dedup_key=f"{P}:k", broker_message_id="m-1")
    ingest(r, config=CONFIG, tables=t)
    assert t.broker_ids[scoped(P, "m-1")] == [r.uid]
    ingest(record(EXPIRE, uid=r.uid, data=[r.uid]), config=CONFIG, tables=t)
    assert t.events == {} and t.idempotency == {} and t.broker_ids == {}
    # the key may be used again: the dedup window is the retention
    again = record(idempotency_key="k", dedup_key=f"{P}:k")
    assert len(ingest(again, config=CONFIG, tables=t)) == 1
