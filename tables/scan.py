"""Ordered range scans over a Faust table's local partitions.

Events and deliveries are keyed `<project>/<ULID>`, so one project's rows
are contiguous and time-ordered. Listing walks that range newest first (or
oldest first from a cursor) and stops as soon as a page is full, instead of
reading the whole table. RocksDB stores are read with native iterators, one
per active partition, merged; the in-memory store (tests) sorts its keys.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
import json
from typing import Any, Callable, Iterator, Sequence

from convoy_stream.faust_ext.tables import active_dbs, value_decoder

LOW = ""
HIGH = "\uffff"


@dataclass
class Budget:
    """How many stored rows one request may read on one worker, and where it stopped.

    A filter that matches little (an endpoint with few events) would otherwise
    walk the whole date window, hundreds of thousands of rows, while the worker's
    event loop, and with it ingestion, waits. A walk that runs out of budget
    ends; `stopped_at` is the last key it read, and the caller answers a short
    page whose cursor continues from there.
    """

    rows: int
    #: The last key read, and whether rows were left unread when the budget ran out.
    stopped_at: str | None = None
    exhausted: bool = False


#: Rows one list request reads per worker before answering a short page (~0.1 s).
SCAN_BUDGET = 20_000


def _counted(pairs: Iterator[tuple[str, Any]], budget: Budget | None) -> Iterator[tuple[str, Any]]:
    if budget is None:
        yield from pairs
        return
    for key, value in pairs:
        if budget.rows <= 0:
            budget.exhausted = True
            return
        budget.rows -= 1
        budget.stopped_at = key
        yield key, value


def scan(table: Any, prefix: str, *, active: Callable[[str], bool], lower: str = LOW, upper: str = HIGH,
         descending: bool = True, needles: Sequence[Sequence[bytes]] = (),
         budget: Budget | None = None) -> Iterator[tuple[str, Any]]:
    """(key, value) for keys in (prefix+lower, prefix+upper), exclusive bounds, in key order.

    Only keys of partitions this worker is active for (`active(key)`): a
    worker also holds standby copies of other partitions, and answering from
    them would list those rows twice across workers.

    `needles` is a cheap pre-filter for RocksDB rows: a row is decoded only if,
    for every group, one of its byte strings occurs in the stored JSON. A
    filter that matches few rows then costs a substring search per row rather
    than a JSON decode. The caller still applies its exact filter.

    With a `budget`, at most `budget.rows` rows are read (pre-filtered or not).
    """
    lo, hi = prefix + lower, prefix + upper
    store = table.data
    dbs = active_dbs(store)
    if dbs is not None:
        runs = [_rocksdb_run(db, lo, hi, descending) for db in dbs]
        merged = _counted(heapq.merge(*runs, key=lambda kv: kv[0], reverse=descending), budget)
        if needles:
            merged = (kv for kv in merged if all(any(n in kv[1] for n in group) for group in needles))
        decode = value_decoder(store)
        yield from ((k, decode(v)) for k, v in merged)
        return
    data = store.data
    keys = sorted((k for k in list(data.keys()) if isinstance(k, str) and lo < k < hi and active(k)), reverse=descending)
    for key, value in _counted(((k, data.get(k)) for k in keys), budget):
        if value is not None:
            yield key, value


def _rocksdb_run(db: Any, lo: str, hi: str, descending: bool) -> Iterator[tuple[str, bytes]]:
    # Keys are stored JSON-encoded: b'"<project>/<ulid>"'. Within one prefix all ULIDs
    # have the same length, so the closing quote does not disturb the order. The bounds
    # are encoded as raw UTF-8 (not \u escapes) so U+FFFF sorts above every ASCII key.
    # Faust keeps its own bookkeeping keys in the same database (b"__faust..."): any
    # key that is not a JSON string is outside our range and ends the walk.
    it = db.iter()
    if descending:
        it.seek_for_prev(json.dumps(hi, ensure_ascii=False).encode())
    else:
        it.seek(json.dumps(lo, ensure_ascii=False).encode())
    while it.valid():
        raw = it.key()
        if not raw.startswith(b'"'):
            break
        try:
            key = json.loads(raw)
        except ValueError:
            break
        if not isinstance(key, str) or (descending and key <= lo) or (not descending and key >= hi):
            break
        if lo < key < hi:
            yield key, it.value()
        if descending:
            it.prev()
        else:
            it.next()
