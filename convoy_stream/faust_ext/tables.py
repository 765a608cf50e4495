"""Faust's RocksDB store: the encoders and per-partition databases it keeps private.

`table_writes` writes a batch's rows into the databases directly, in the bytes Faust's own
write path would store, and `tables/scan` walks them with native iterators; both reach the
store only through these functions.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


def codec(store: Any) -> tuple[Callable[[Any], bytes], Callable[[Any], bytes], Callable[[bytes], Any]]:
    """The store's (encode_key, encode_value, decode_value): the table's own serializers."""
    return store._encode_key, store._encode_value, store._decode_value


def value_decoder(store: Any) -> Callable[[bytes], Any]:
    """The store's decode_value."""
    return store._decode_value


def partition_db(store: Any, partition: int) -> Any:
    """The `rocksdict.Rdict` of one table partition (opened by Faust if it is not yet)."""
    return store._db_for_partition(partition)


def has_open_db(store: Any, partition: int) -> bool:
    """Whether the database of `partition` is open (a rebalance closes a revoked one's)."""
    return partition in store._dbs


def active_dbs(store: Any) -> Iterable[Any] | None:
    """The databases of the partitions this worker is active for; None for a store that is not RocksDB."""
    if not hasattr(store, "_dbs_for_actives"):
        return None
    return store._dbs_for_actives()
