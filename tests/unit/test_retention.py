"""Retention's pure parts: durations, cutoffs, and expire commands per partition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ulid import ULID

from convoy_stream.ids import mint_id, partition_of, scoped
from convoy_stream.retention import cutoff_uid, expire_commands, parse_duration, retention_of, sweep


def test_go_durations() -> None:
    assert parse_duration("168h") == 168 * 3600
    assert parse_duration("72h30m") == 72 * 3600 + 1800
    assert parse_duration("1.5s") == 1.5
    for bad in ("", "7d", "h", "10", "5m junk"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_project_retention_defaults_to_a_week() -> None:
    assert retention_of({}) == 168 * 3600
    assert retention_of({"config": {"retention_policy": {"policy": "3s"}}}) == 3
    assert retention_of({"config": {"retention_policy": {"policy": "forever"}}}) == 168 * 3600


def test_cutoff_orders_against_event_ids() -> None:
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    old = str(ULID.from_datetime(now - timedelta(hours=2)))
    new = str(ULID.from_datetime(now - timedelta(minutes=59)))
    assert old < cutoff_uid(now, 3600) < new


def test_expire_commands_travel_on_the_events_partitions() -> None:
    uids = [mint_id(p, 8) for p in (1, 1, 5)]
    commands = expire_commands("proj", uids, partitions=8, now="t")
    assert sorted(len(c.data) for c in commands) == [1, 2]
    for command in commands:
        assert {partition_of(scoped("proj", u), 8) for u in [command.uid, *command.data]} == {partition_of(scoped("proj", command.uid), 8)}


class _Store:
    def __init__(self, data: dict) -> None:
        self.data = data


class _Table:
    def __init__(self, data: dict) -> None:
        self.data = _Store(data)


def test_sweep_names_only_expired_events_of_owned_partitions() -> None:
    now = datetime.now(timezone.utc)
    old = str(ULID.from_datetime(now - timedelta(seconds=10)))
    fresh = str(ULID.from_datetime(now))
    table = _Table({scoped("p", old): {"uid": old}, scoped("p", fresh): {"uid": fresh}})
    project = {"uid": "p", "config": {"retention_policy": {"policy": "5s"}}}
    [command] = sweep(table, [project], active=lambda key: True, partitions=8, now=now)
    assert command.data == [old] and command.kind == "expire"
    assert sweep(table, [project], active=lambda key: False, partitions=8, now=now) == []
