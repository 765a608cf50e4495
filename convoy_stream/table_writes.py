"""The pipeline's table writes, one batch at a time.

A `Batch` holds the rows a batch of ingest records changes, as plain dicts on
top of the stored tables (`PartitionView`), and writes them in one go: one
RocksDB `WriteBatch` per table partition, one Kafka record batch per changelog
partition, the delivery records likewise, and the changelog offsets once the
broker has them all. The bytes are exactly what Faust itself would write (the
tables' own serializers, the row's partition), so Faust's recovery, standbys
and lookups read them unchanged. Faust's per-key write path is bypassed because
of its cost (docs/mechanisms.md#table-writes).

Only the `process` agent writes the events, idempotency and broker-id tables,
so nothing else races these writes.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Iterator, MutableMapping

from aiokafka.structs import TopicPartition
from rocksdict import WriteBatch

from .codecs import dumps_record
from .faust_ext.tables import codec, has_open_db, partition_db
from .ids import kafka_partition
from .ingestion import Tables
from .publisher import send_records

#: A row this batch deletes.
DELETED = object()


class PartitionView(MutableMapping[str, Any]):
    """One table partition as the ingest functions see it: the batch's pending rows first."""

    __slots__ = ("_pending", "_db", "_encode_key", "_decode_value")

    def __init__(self, pending: dict[str, Any], db: Any, table_writes: "TableWrites") -> None:
        self._pending, self._db = pending, db
        self._encode_key, self._decode_value = table_writes.encode_key, table_writes.decode_value

    def __getitem__(self, key: str) -> Any:
        value = self._pending.get(key)
        if value is None:
            raw = self._db.get(self._encode_key(key))
            if raw is None:
                raise KeyError(key)
            return self._decode_value(raw)
        if value is DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent, like a dict
        self._pending[key] = DELETED

    def pop(self, key: str, *default: Any) -> Any:
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self._pending[key] = DELETED
        return value

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the pipeline reads table rows by key only")

    def __len__(self) -> int:
        raise TypeError("the pipeline reads table rows by key only")


class TableWrites:
    """The pending rows of one table, per partition, and how to store them."""

    def __init__(self, table: Any) -> None:
        self.table = table
        store = table.data
        self.encode_key, self.encode_value, self.decode_value = codec(store)
        self.pending: dict[int, dict[str, Any]] = defaultdict(dict)

    def view(self, partition: int) -> PartitionView:
        return PartitionView(self.pending[partition], partition_db(self.table.data, partition), self)

    def encoded(self) -> Iterator[tuple[int, list[tuple[bytes, bytes | None]]]]:
        """Each partition's rows as the bytes RocksDB and the changelog both hold (None: deleted)."""
        for partition, rows in self.pending.items():
            if rows:
                yield partition, [(self.encode_key(k), None if v is DELETED else self.encode_value(v))
                                  for k, v in rows.items()]


class Batch:
    """The table rows and delivery records of one batch of ingest records."""

    def __init__(self, tables: Tables, delivery_topic: Any) -> None:
        self._writes = Tables(events=TableWrites(tables.events), idempotency=TableWrites(tables.idempotency),
                              broker_ids=TableWrites(tables.broker_ids))
        self._views: dict[int, Tables] = {}
        self._topic = delivery_topic
        self._deliveries: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = defaultdict(list)
        self.delivery_count = 0

    def tables(self, partition: int) -> Tables:
        """The tables as the records of `partition` see them (rows live on their event's partition)."""
        views = self._views.get(partition)
        if views is None:
            w = self._writes
            views = self._views[partition] = Tables(events=w.events.view(partition),
                                                    idempotency=w.idempotency.view(partition),
                                                    broker_ids=w.broker_ids.view(partition))
        return views

    def add_delivery(self, key: str, value: Any, partitions: int) -> None:
        """Queue a delivery record, serialized and partitioned as `delivery_topic.send` would."""
        key_bytes = self._topic.prepare_key(key, None)[0]
        self._deliveries[kafka_partition(key_bytes, partitions)].append((key_bytes, dumps_record(value), []))
        self.delivery_count += 1

    async def write(self, producer: Any, delivery_topic_name: str) -> None:
        """Store the rows and send the changelog and delivery records; return once Kafka has them all.

        RocksDB is written first, as Faust does: if Kafka then fails, the error stops the
        agent before these records count as written (`agent_commits`), and their
        redelivery finds the rows stored and sends them again (`ingestion.ingest`). The
        changelog offset Faust resumes recovery from is written last, once the broker
        has the rows.
        """
        # Every RocksDB write happens before the first await: a partition's database is
        # never looked up again after the loop has yielded (and a rebalance could have run).
        changelog: list[tuple[Any, str, int, list[tuple[bytes, bytes | None]]]] = []
        for writes in (self._writes.events, self._writes.idempotency, self._writes.broker_ids):
            store, topic = writes.table.data, writes.table.changelog_topic.get_topic_name()
            for partition, rows in writes.encoded():
                batch = WriteBatch(raw_mode=True)
                for key, value in rows:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                partition_db(store, partition).write(batch)
                changelog.append((store, topic, partition, rows))
        sent: list[tuple[asyncio.Future, int, Any, TopicPartition | None]] = []  # future, records, store, changelog
        for store, topic, partition, rows in changelog:
            tp = TopicPartition(topic, partition)
            sent += [(f, n, store, tp) for f, n in await send_records(producer, topic, partition, [(k, v, []) for k, v in rows])]
        for partition, records in self._deliveries.items():
            sent += [(f, n, None, None) for f, n in await send_records(producer, delivery_topic_name, partition, records)]
        results = await asyncio.gather(*(f for f, _, _, _ in sent))
        last: dict[TopicPartition, tuple[Any, int]] = {}
        for metadata, (_, count, store, tp) in zip(results, sent):
            if tp is not None:
                last[tp] = (store, max(last.get(tp, (None, -1))[1], metadata.offset + count - 1))
        for tp, (store, offset) in last.items():
            # After the awaits: a partition whose database a rebalance closed meanwhile keeps
            # its older persisted offset (its recovery replays a little more, harmlessly)
            # rather than reopening the database here.
            if has_open_db(store, tp.partition):
                store.set_persisted_offset(tp, offset)

