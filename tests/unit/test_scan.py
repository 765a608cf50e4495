"""Range scans over a real RocksDB (rocksdict, as Faust opens it): order, bounds, foreign keys."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Rdict

from tables.scan import HIGH, scan
from tests.support.rocks import RocksTable, rocks_db


def _db(path: Path, rows: dict[str, object]) -> Rdict:
    db = rocks_db(path, rows)
    db[b"__faust\\x00offset__"] = b"42"  # Faust's own bookkeeping key lives in the same DB
    return db


def test_scan_merges_partitions_in_order_within_bounds(tmp_path: Path) -> None:
    a = _db(tmp_path / "a", {"p/01A": 1, "p/01C": 3, "q/01B": "other project"})
    b = _db(tmp_path / "b", {"p/01B": 2, "p/01D": 4})
    table = RocksTable([a, b])
    everything = lambda key: True  # noqa: E731
    assert [k for k, _ in scan(table, "p/", active=everything)] == ["p/01D", "p/01C", "p/01B", "p/01A"]
    assert [k for k, _ in scan(table, "p/", active=everything, descending=False)] == ["p/01A", "p/01B", "p/01C", "p/01D"]
    assert [v for _, v in scan(table, "p/", active=everything, lower="01A", upper="01D")] == [3, 2]
    assert [k for k, _ in scan(table, "q/", active=everything, upper=HIGH)] == ["q/01B"]
    assert list(scan(table, "z/", active=everything, descending=False)) == []
    for db in (a, b):
        db.close()


def test_filtered_lists_find_exactly_the_matching_rows(tmp_path: Path) -> None:
    from tables.events import DeliveryFilter, EventFilter, Page, list_deliveries, list_events

    def row(uid: str, owner: str, endpoint: str, source: str, status: str) -> dict[str, object]:
        delivery = {"uid": uid + "D0000000", "event_id": uid, "endpoint_id": endpoint, "subscription_id": "sub-" + endpoint,
                    "event_type": "invoice.paid", "status": status}
        return {"uid": uid, "owner_id": owner, "endpoints": [endpoint], "source_id": source, "event_type": "invoice.paid",
                "data": {"note": "mentions ep-1 \"quoted\""}, "raw": "", "deliveries": [delivery]}

    rows = {f"p/01E{i:03d}": row(f"01E{i:03d}", ["ówner", "plain", 'tricky"owner'][i % 3], f"ep-{i % 4}", f"src-{i % 2}",
                                 "Scheduled" if i % 5 else "Discarded") for i in range(60)}
    a = rocks_db(tmp_path / "a", dict(list(rows.items())[::2]))
    b = rocks_db(tmp_path / "b", dict(list(rows.items())[1::2]))
    table = RocksTable([a, b])
    everything = lambda key: True  # noqa: E731
    page = Page(limit=100)
    filters = [EventFilter(owner_id="ówner"), EventFilter(owner_id='tricky"owner'), EventFilter(endpoint_ids=frozenset({"ep-1", "ep-3"})),
               EventFilter(source_ids=frozenset({"src-1"}), owner_id="plain"), EventFilter(owner_id="nobody")]
    for f in filters:
        expected = sorted((uid for uid, r in ((k.split("/")[1], v) for k, v in rows.items()) if f.accepts(r)), reverse=True)
        assert [e["uid"] for e in list_events(table, "p", f, page, everything)] == expected, f
    scheduled_ep2 = DeliveryFilter(endpoint_ids=frozenset({"ep-2"}), statuses=frozenset({"Scheduled"}))
    found = [d["uid"] for d in list_deliveries(table, "p", scheduled_ep2, page, everything)]
    assert found == sorted((r["deliveries"][0]["uid"] for r in rows.values()  # type: ignore[index]
                            if r["endpoints"] == ["ep-2"] and r["deliveries"][0]["status"] == "Scheduled"), reverse=True)  # type: ignore[index]
    assert found
    for db in (a, b):
        db.close()
