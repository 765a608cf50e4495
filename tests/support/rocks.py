"""A table over real RocksDB databases, with the surface of Faust's RocksDB store that
`tables/scan.py` uses, for unit tests of scans and lists without a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rocksdict import Options, Rdict


class RocksStore:
    def __init__(self, dbs: list[Rdict]) -> None:
        self.dbs = dbs

    def _dbs_for_actives(self) -> list[Rdict]:
        return self.dbs

    def _decode_value(self, value: bytes) -> Any:
        return orjson.loads(value)


class RocksTable:
    """`table.data` is the store, as on a Faust table."""

    def __init__(self, dbs: list[Rdict]) -> None:
        self.data = RocksStore(dbs)


def rocks_db(path: Path, rows: dict[str, Any]) -> Rdict:
    """Keys and values encoded as the product's tables store them (JSON keys, orjson values)."""
    db = Rdict(str(path), Options(raw_mode=True))
    for key, value in rows.items():
        db[orjson.dumps(key)] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return db
