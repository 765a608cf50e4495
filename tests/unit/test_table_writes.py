"""A batch's pending rows on top of the stored ones (`table_writes.Batch`), over real RocksDB.

Writing to Kafka is covered by tests/integration/test_table_recovery.py; here, what the
ingest functions see while a batch is open: every record of the batch must see the rows
the records before it wrote, or two copies of one idempotency key in one batch would both
be delivered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from rocksdict import Options, Rdict

from convoy_stream.codecs import dumps_record
from convoy_stream.ids import scoped
from convoy_stream.ingestion import Tables, ingest
from convoy_stream.records import Delivery, IngestRecord
from convoy_stream.table_writes import Batch
from tests.unit.test_ingestion import CONFIG, P, record


class Store:
    """The part of Faust's RocksDB store `Batch` uses, with the product's encodings."""

    def __init__(self, path: Path) -> None:
        self.path, self.dbs = path, {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.path / f"p{partition}"), Options(raw_mode=True))
        return self.dbs[partition]

    def _encode_key(self, key: str) -> bytes:
        return orjson.dumps(key)

    def _encode_value(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def _decode_value(self, raw: bytes) -> Any:
        return orjson.loads(raw)


class Table:
    def __init__(self, path: Path) -> None:
        path.mkdir()
        self.data = Store(path)


@pytest.fixture
def stored(tmp_path: Path) -> Tables:
    return Tables(events=Table(tmp_path / "events"), idempotency=Table(tmp_path / "idem"),
                  broker_ids=Table(tmp_path / "broker"))


def test_copies_of_a_key_in_one_batch_are_duplicates_of_the_first(stored: Tables) -> None:
    batch = Batch(stored, delivery_topic=None)
    first, second = (record(idempotency_key="k", dedup_key=f"{P}:k") for _ in range(2))
    assert len(ingest(first, config=CONFIG, tables=batch.tables(3))) == 1
    assert ingest(second, config=CONFIG, tables=batch.tables(3)) == []
    assert batch.tables(3).events[scoped(P, second.uid)]["is_duplicate_event"] is True
    assert batch.tables(3).idempotency[f"{P}:k"] == [first.uid, second.uid]
    # nothing reaches RocksDB before the batch is written
    assert stored.events.data._db_for_partition(3).get(orjson.dumps(scoped(P, first.uid))) is None


def test_stored_rows_are_read_from_the_records_partition(stored: Tables) -> None:
    db = stored.idempotency.data._db_for_partition(5)
    db[orjson.dumps(f"{P}:old")] = orjson.dumps(["01EARLIER"])
    later = record(idempotency_key="old", dedup_key=f"{P}:old")
    assert ingest(later, config=CONFIG, tables=Batch(stored, None).tables(5)) == []
    # another partition's database does not hold that key
    assert len(ingest(later, config=CONFIG, tables=Batch(stored, None).tables(6))) == 1


def test_deletes_hide_stored_rows_until_written(stored: Tables) -> None:
    stored.events.data._db_for_partition(0)[orjson.dumps("a")] = orjson.dumps({"x": 1})
    view = Batch(stored, None).tables(0).events
    assert view.get("a") == {"x": 1} and view.pop("a") == {"x": 1}
    assert view.get("a") is None and view.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        del view["a"]
    view["a"] = {"x": 2}
    assert view["a"] == {"x": 2}


def test_records_built_without_fausts_setters_are_the_records_faust_builds() -> None:
    """The pipeline's fast paths (`IngestRecord.from_data`, `Delivery.build`, `dumps_record`)
    must produce exactly what Faust's own would: the same fields, the same bytes on the wire."""
    fields = dict(uid="d1", event_id="e1", project_id=P, endpoint_id="ep", subscription_id="s", event_type="t",
                  status="Scheduled", headers={"x-a": "1"}, data={"k": [1, "é", {"z": None}]}, created_at="2026",
                  idempotency_key="k", url="https://example.com")
    built, faust_built = Delivery.build(**fields), Delivery(**fields)
    assert built.__dict__ == faust_built.__dict__ and built.broker_message_id == ""
    assert dumps_record(built) == faust_built.dumps()
    original = record(idempotency_key="k", dedup_key=f"{P}:k", headers={"a": "b"})
    decoded = IngestRecord.from_data(orjson.loads(original.dumps()))
    assert decoded.__dict__ == original.__dict__ and decoded.dumps() == original.dumps()
    assert decoded.raw is None and decoded.config_offset == -1
    with pytest.raises(TypeError):  # a record missing fields still fails as Faust fails it
        IngestRecord.from_data({"uid": "x"})
