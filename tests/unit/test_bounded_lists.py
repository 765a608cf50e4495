"""A list walk reads a bounded number of rows per request; paging still returns every match once.

Two "workers" (each its own RocksDB databases, as Faust opens them) hold one project's events.
A filter that matches one event in 25 runs out of a small budget on most pages: those pages
are short (or empty) with a cursor to continue, and following the cursors in either direction
returns exactly the matching events and deliveries, in order, with none skipped or repeated.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from rocksdict import Options, Rdict

import tables.events as queries
from convoy_stream.ids import mint_id
from convoy_stream.routing import delivery_uid
from convoy_stream.web.listing import merge, page_of
from tables.events import DeliveryFilter, EventFilter
from tests.support.rocks import RocksTable


def _event(uid: str, endpoint: str) -> dict[str, Any]:
    deliveries = [{"uid": delivery_uid(uid, f"sub-{endpoint}-{n}"), "event_id": uid, "endpoint_id": endpoint,
                   "subscription_id": f"sub-{endpoint}-{n}", "event_type": "t", "status": "Scheduled"} for n in range(2)]
    return {"uid": uid, "owner_id": "", "endpoints": [endpoint], "source_id": "", "event_type": "t", "data": {},
            "raw": "", "deliveries": deliveries, "dedup_key": ""}


@pytest.fixture
def workers(tmp_path: Path) -> tuple[list[RocksTable], list[str]]:
    now = time.time()
    dbs = [Rdict(str(tmp_path / f"db{i}"), Options(raw_mode=True)) for i in range(4)]
    rare = []
    for i in range(500):
        uid = mint_id(i % 8, 8, timestamp=now - 3600 + i)
        endpoint = "rare" if i % 25 == 7 else "busy"
        if endpoint == "rare":
            rare.append(uid)
        dbs[i % 4][orjson.dumps(f"p/{uid}")] = orjson.dumps(_event(uid, endpoint), option=orjson.OPT_NON_STR_KEYS)
    yield [RocksTable(dbs[:2]), RocksTable(dbs[2:])], sorted(rare, reverse=True)
    for db in dbs:
        db.close()


def _walk(workers: list[RocksTable], lister: Callable[..., list[dict[str, Any]]], f: Any, direction: str,
          start: str = "") -> tuple[list[str], int]:
    """Follow the cursors until the last page; (every uid shown, in order, pages requested)."""
    shown: list[str] = []
    query = {"perPage": "5", "direction": direction}
    if start:
        query["prev_page_cursor" if direction == "prev" else "next_page_cursor"] = start
    for pages in range(1, 5000):
        page, size = page_of(query)
        answer = merge([lister(w, "p", f, page, lambda key: True) for w in workers], page, size, cursor_given=bool(start))
        uids = [row["uid"] for row in answer["content"]]
        assert len(uids) <= size
        shown.extend(uids if direction == "next" else reversed(uids))
        pagination = answer["pagination"]
        more = pagination["has_next_page"] if direction == "next" else pagination["has_prev_page"]
        if not more:
            return shown, pages
        cursor = pagination["next_page_cursor"] if direction == "next" else pagination["prev_page_cursor"]
        query = {"perPage": "5", "direction": direction,
                 ("next_page_cursor" if direction == "next" else "prev_page_cursor"): cursor}
        start = cursor
    raise AssertionError("paging did not end")


def test_a_sparse_filter_pages_through_every_match_with_a_small_budget(workers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tables, rare = workers
    monkeypatch.setattr(queries, "SCAN_BUDGET", 30)
    f = EventFilter(endpoint_ids=frozenset({"rare"}))
    shown, pages = _walk(tables, queries.list_events, f, "next")
    assert shown == rare
    assert pages > len(rare) // 5 + 1  # the budget did cut pages short
    # walking back up from the oldest match returns the same events, oldest first
    oldest = rare[-1]
    up, _ = _walk(tables, queries.list_events, f, "prev", start=oldest)
    assert up == list(reversed(rare[:-1]))


@pytest.mark.parametrize("endpoints, budget", [({"rare"}, 30), ({"rare", "busy"}, 2)])
def test_delivery_lists_page_through_every_match_with_a_small_budget(workers: Any, monkeypatch: pytest.MonkeyPatch,
                                                                     endpoints: set[str], budget: int) -> None:
    # With every event matching and a budget of 2 rows, walks stop on matching events, whose
    # deliveries sort after the event's own uid.
    tables, rare = workers
    monkeypatch.setattr(queries, "SCAN_BUDGET", budget)
    f = DeliveryFilter(endpoint_ids=frozenset(endpoints))
    rows = [row for t in tables for db in t.data.dbs for _, row in db.items()]
    expected = sorted((d["uid"] for row in map(orjson.loads, rows) for d in row["deliveries"]
                       if d["endpoint_id"] in endpoints), reverse=True)
    shown, _ = _walk(tables, queries.list_deliveries, f, "next")
    assert shown == expected
    up, _ = _walk(tables, queries.list_deliveries, f, "prev", start=expected[-1])
    assert up == list(reversed(expected[:-1]))


def test_without_a_budget_problem_pages_are_full(workers: Any) -> None:
    tables, _ = workers
    page, size = page_of({"perPage": "5"})
    answer = merge([queries.list_events(w, "p", EventFilter(), page, lambda key: True) for w in tables], page, size,
                   cursor_given=False)
    assert len(answer["content"]) == 5 and answer["pagination"]["has_next_page"]
