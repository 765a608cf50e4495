"""Retention: events older than their project's retention disappear, with their
deliveries and index entries, and so do dead letters, so storage stays bounded
under constant load.

Each worker sweeps the partitions it owns. It does not delete directly (Faust
tables may only change inside the agent that owns the partition); it sends
one `expire` command per partition through the ingest topic, and the agent
deletes (`ingestion.expire`). The command travels on the same partition as
the events it names, so it is ordered with them. Dead letters are expired the
same way through the dead-letter topic (`Publisher.expire_dead_letters`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from tables.scan import scan

from . import clock
from .durations import parse_go_duration
from .ids import by_partition, lowest_uid_at
from .ingestion import EXPIRE
from .records import IngestRecord

DEFAULT_RETENTION = "168h"
MAX_PER_SWEEP = 2000
#: Validation's parser: a policy it accepted is the policy applied (Go's `ParseDuration`).
parse_duration = parse_go_duration


def retention_of(project: dict[str, Any]) -> float:
    policy = ((project.get("config") or {}).get("retention_policy") or {}).get("policy") or DEFAULT_RETENTION
    try:
        return parse_duration(policy)
    except ValueError:
        return parse_duration(DEFAULT_RETENTION)


def cutoff_uid(now: datetime, retention_seconds: float) -> str:
    """Every event uid below this one is older than the retention."""
    return lowest_uid_at(now - timedelta(seconds=retention_seconds))


def expire_commands(project_id: str, expired: Iterable[str], *, partitions: int, now: str) -> list[IngestRecord]:
    """One command per partition, carrying the uids of that partition."""
    return [IngestRecord(uid=uids[0], project_id=project_id, kind=EXPIRE, event_type="", data=uids, created_at=now)
            for uids in by_partition(project_id, expired, partitions).values()]


def expired(table: Any, projects: Iterable[dict[str, Any]], *, active: Callable[[str], bool],
            now: datetime) -> Iterator[tuple[str, list[str]]]:
    """(project id, uids) of local rows past their project's retention, at most MAX_PER_SWEEP each.

    Rows are keyed `<project>/<ULID>`, so the expired ones are a key range.
    """
    for project in projects:
        upper = cutoff_uid(now, retention_of(project))
        rows = scan(table, project["uid"] + "/", active=active, upper=upper, descending=False)
        uids = [key.split("/", 1)[1] for key, _ in islice(rows, MAX_PER_SWEEP)]
        if uids:
            yield project["uid"], uids


def sweep(events_table: Any, projects: Iterable[dict[str, Any]], *, active: Callable[[str], bool], partitions: int,
          now: datetime | None = None) -> list[IngestRecord]:
    """The expire commands for every local event past its project's retention (bounded per sweep)."""
    now = now or clock.now()
    stamp = clock.timestamp(now)
    return [command for project_id, uids in expired(events_table, projects, active=active, now=now)
            for command in expire_commands(project_id, uids, partitions=partitions, now=stamp)]
