"""Counts over time for the dashboard's charts, from one worker's own partitions.

Rows are keyed `<project>/<ULID>`, so the rows of a time window are one key range and the
ULID's first 10 characters give each row's time without decoding it. A walk reads at most
`COUNT_BUDGET` rows per worker (newest first); past it the answer says `capped` and the
oldest buckets undercount.
"""

from __future__ import annotations

from typing import Any, Callable

from ulid import ULID

from .scan import HIGH, Budget, scan

COUNT_BUDGET = 20_000


def _ms(uid: str) -> int:
    try:
        return int(ULID.from_str(uid[:26]).milliseconds)
    except ValueError:
        return 0


def count(table: Any, project_id: str, *, lower: str, bucket_ms: int, active: Callable[[str], bool],
          classify: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """{"buckets": {bucket start ms: {class: n}}, "by_source": {source: {bucket: {class: n}}}, "capped": bool}.

    `classify` names a row's class (for events "accepted" or "duplicate"; for the request log
    "rejected"); rows are grouped by their `source_id` too ("" for none).
    """
    budget = Budget(COUNT_BUDGET)
    buckets: dict[int, dict[str, int]] = {}
    by_source: dict[str, dict[int, dict[str, int]]] = {}
    for key, row in scan(table, project_id + "/", active=active, lower=lower, upper=HIGH, descending=True,
                         budget=budget):
        if not isinstance(row, dict):
            continue
        bucket = _ms(key.split("/", 1)[1]) // bucket_ms * bucket_ms
        kind = classify(row)
        cell = buckets.setdefault(bucket, {})
        cell[kind] = cell.get(kind, 0) + 1
        mine = by_source.setdefault(str(row.get("source_id") or ""), {}).setdefault(bucket, {})
        mine[kind] = mine.get(kind, 0) + 1
    return {"buckets": buckets, "by_source": by_source, "capped": budget.exhausted}


def event_class(row: dict[str, Any]) -> str:
    return "duplicate" if row.get("is_duplicate_event") else "accepted"


def request_class(row: dict[str, Any]) -> str:
    return "rejected"
