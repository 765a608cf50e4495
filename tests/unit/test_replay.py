"""Replay without Kafka: fresh deliveries for the subscriptions that match now (`replay.py`)."""

from __future__ import annotations

from convoy_stream.ids import scoped
from convoy_stream.ingestion import ingest
from ulid import ULID

from convoy_stream.replay import REPLAY, SETTLE_SECONDS, progress, replay_commands, replay_event
from convoy_stream.routing import event_uid_of
from tests.unit.test_ingestion import CONFIG, P, Config, record, tables


def _replay(uids: list[str], replay_id: str = "r-1") -> list:
    [command] = replay_commands(P, uids, replay_id=replay_id, now="2026-12-07T00:00:00Z", partitions=1)
    assert command.kind == REPLAY
    return command


def test_replay_emits_new_uids_for_the_subscriptions_matching_now_and_is_idempotent() -> None:
    t = tables()
    event = record(endpoint_id="e2", idempotency_key="k", dedup_key="d")
    [original] = ingest(event, config=CONFIG, tables=t)
    later = Config(endpoints=[{"uid": "e2"}], subscriptions=[
        *CONFIG.subscriptions, {"uid": "s-late", "endpoint_id": "e2", "filter_config": {"event_types": ["invoice.paid"]}},
        {"uid": "s-other", "endpoint_id": "e2", "filter_config": {"event_types": ["user.created"]}}])
    command = _replay([event.uid])
    fresh = ingest(command, config=later, tables=t)
    assert sorted(d.subscription_id for d in fresh) == ["s-late", "s-paid"]
    assert original.uid not in {d.uid for d in fresh} and all(event_uid_of(d.uid) == event.uid for d in fresh)
    assert all(d.headers["X-Convoy-Idempotency-Key"] == "k" for d in fresh)
    row = t.events[scoped(P, event.uid)]
    assert len(row["deliveries"]) == 3 and row["acknowledged_at"] == "2026-12-07T00:00:00Z"
    # Kafka redelivers the command: the same uids, kept once
    assert [d.uid for d in ingest(command, config=later, tables=t)] == [d.uid for d in fresh]
    assert len(t.events[scoped(P, event.uid)]["deliveries"]) == 3
    # another replay: other uids
    again = ingest(_replay([event.uid], "r-2"), config=later, tables=t)
    assert not {d.uid for d in again} & {d.uid for d in fresh}


def test_a_duplicate_or_unknown_event_is_not_replayed_and_a_deleted_endpoint_is_skipped() -> None:
    t = tables()
    first = record(endpoint_id="e2", dedup_key="d")
    copy = record(endpoint_id="e2", dedup_key="d")
    ingest(first, config=CONFIG, tables=t)
    assert ingest(copy, config=CONFIG, tables=t) == []
    assert ingest(_replay([copy.uid, "01NOPE"]), config=CONFIG, tables=t) == []
    document = t.events[scoped(P, first.uid)]
    gone = Config(endpoints=[], subscriptions=[])
    assert replay_event(document, gone, replay_id="r", replayed_at="now") == ({**document, "updated_at": "now",
                                                                              "acknowledged_at": "now"}, [])


def test_webhook_events_replay_to_the_sources_subscriptions() -> None:
    t = tables()
    hook = record(kind="webhook", source_id="src", endpoint_id="", headers={"X-Github-Event": "push"},
                  forward_headers={"X-Github-Event": "push"})
    [original] = ingest(hook, config=CONFIG, tables=t)
    [fresh] = ingest(_replay([hook.uid]), config=CONFIG, tables=t)
    assert fresh.subscription_id == original.subscription_id == "s-hook" and fresh.uid != original.uid
    assert fresh.headers == {"X-Github-Event": "push"}


def test_a_dashboard_finds_the_deliveries_of_its_replay_and_says_queued_until_they_come() -> None:
    t = tables()
    event = record(endpoint_id="e2")
    [original] = ingest(event, config=CONFIG, tables=t)
    replay_id, other = str(ULID()), str(ULID())
    queued_at = ULID.from_str(replay_id).timestamp
    before = t.events[scoped(P, event.uid)]["deliveries"]
    assert progress(replay_id, before, now=queued_at + 1) == {"id": replay_id, "uids": [], "waiting": True}
    assert progress(replay_id, before, now=queued_at + SETTLE_SECONDS)["waiting"] is False  # nothing matched
    fresh = ingest(_replay([event.uid], replay_id), config=CONFIG, tables=t)
    ingest(_replay([event.uid], other), config=CONFIG, tables=t)
    after = t.events[scoped(P, event.uid)]["deliveries"]
    assert progress(replay_id, after, now=queued_at + 1) == {"id": replay_id, "uids": [d.uid for d in fresh],
                                                             "waiting": False}
    assert original.uid not in progress(other, after, now=queued_at)["uids"]
    assert progress("", after, now=queued_at) is None and progress("<b>not-an-id</b>", after, now=queued_at) is None
