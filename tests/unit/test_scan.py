"""Range scans over a real RocksDB (rocksdict, as Faust opens it): order, bounds, foreign keys."""

from __future__ import annotations

import json
from pathlib import Path

from rocksdict import Options, Rdict

from tables.scan import HIGH, scan


class _Store:
    """Faust's RocksDB store surface that `scan` uses."""

    def __init__(self, dbs: list[Rdict]) -> None:
        self.dbs = dbs

    def _dbs_for_actives(self) -> list[Rdict]:
        return self.dbs

    def _decode_value(self, value: bytes) -> object:
        return json.loads(value)


class _Table:
    def __init__(self, store: _Store) -> None:
        self.data = store


def _db(path: Path, rows: dict[str, object]) -> Rdict:
    db = Rdict(str(path), Options(raw_mode=True))
    for key, value in rows.items():
        db[json.dumps(key).encode()] = json.dumps(value).encode()
    db[b"__faust\\x00offset__"] = b"42"  # Faust's own bookkeeping key lives in the same DB
    return db


def test_scan_merges_partitions_in_order_within_bounds(tmp_path: Path) -> None:
    a = _db(tmp_path / "a", {"p/01A": 1, "p/01C": 3, "q/01B": "other project"})
    b = _db(tmp_path / "b", {"p/01B": 2, "p/01D": 4})
    table = _Table(_Store([a, b]))
    everything = lambda key: True  # noqa: E731
    assert [k for k, _ in scan(table, "p/", active=everything)] == ["p/01D", "p/01C", "p/01B", "p/01A"]
    assert [k for k, _ in scan(table, "p/", active=everything, descending=False)] == ["p/01A", "p/01B", "p/01C", "p/01D"]
    assert [v for _, v in scan(table, "p/", active=everything, lower="01A", upper="01D")] == [3, 2]
    assert [k for k, _ in scan(table, "q/", active=everything, upper=HIGH)] == ["q/01B"]
    assert list(scan(table, "z/", active=everything, descending=False)) == []
    for db in (a, b):
        db.close()
