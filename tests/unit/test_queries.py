"""The read side (`tables/queries.py`): each question is answered by the worker that owns its key.

Two workers are simulated by two table sets and a router that says which partitions each one
is active for; a question put to the other worker goes through `ask_worker`, which here
answers with that worker's `answer_locally`, exactly what the internal endpoint does over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from convoy_stream.ids import dedup_key, mint_id, partition_for, partition_of, scoped
from convoy_stream.ingestion import Tables
from tables import queries
from tables.events import EventFilter, Page
from tests.support.rocks import RocksTable, rocks_db

PARTITIONS = 8
PROJECT = "p1"
HERE, THERE = "http://127.0.0.1:5005", "http://127.0.0.1:5006"


class Router:
    def __init__(self, assignment: dict[str, set[int]]) -> None:
        self.assignment = assignment

    def table_metadata(self, table: str) -> dict[str, dict[str, set[int]]]:
        return {url: {f"convoy-stream-{table}-changelog": parts} for url, parts in self.assignment.items()}


def _worker(url: str, assignment: dict[str, set[int]], events: Any = None, dead_letters: Any = None) -> Any:
    host, port = url.removeprefix("http://").split(":")
    owned = assignment.get(url, set())
    return SimpleNamespace(
        settings=SimpleNamespace(host=host, port=int(port), partitions=PARTITIONS),
        event_tables=Tables(events=events if events is not None else {}, idempotency={}, broker_ids={}),
        dead_letters=dead_letters if dead_letters is not None else {},
        router=Router(assignment),
        active_keys=lambda: (lambda key: partition_of(key, PARTITIONS) in owned),
    )


class Reader:
    """This worker, and the other one reached as the internal endpoint would reach it."""

    def __init__(self, here: Any, there: Any) -> None:
        self.app = here
        self.there = there
        self.asked: list[tuple[str, str, str, str]] = []

    async def ask_worker(self, worker: str, name: str, project_id: str, key: str) -> Any:
        self.asked.append((worker, name, project_id, key))
        if self.there is None:
            raise queries.Unavailable("a worker could not answer, retry later")
        return queries.answer_locally(self.there, name, project_id, key)


def _event(uid: str, **fields: Any) -> dict[str, Any]:
    return {"uid": uid, "project_id": PROJECT, "event_type": "invoice.paid", "data": {"n": 1}, "raw": "",
            "dedup_key": "", "deliveries": [], **fields}


def _two_workers(rows_here: dict[str, Any], rows_there: dict[str, Any]) -> tuple[Reader, dict[str, set[int]]]:
    assignment = {HERE: {0, 1, 2, 3}, THERE: {4, 5, 6, 7}}
    here = _worker(HERE, assignment, rows_here)
    there = _worker(THERE, assignment, rows_there)
    return Reader(here, there), assignment


async def test_an_event_is_read_from_the_worker_that_owns_its_partition() -> None:
    local_uid, remote_uid = mint_id(1, PARTITIONS), mint_id(6, PARTITIONS)
    reader, _ = _two_workers({scoped(PROJECT, local_uid): _event(local_uid)},
                             {scoped(PROJECT, remote_uid): _event(remote_uid)})

    assert (await queries.event_by_id(reader, PROJECT, local_uid))["uid"] == local_uid
    assert reader.asked == []  # answered here, no call to another worker

    assert (await queries.event_by_id(reader, PROJECT, remote_uid))["uid"] == remote_uid
    assert reader.asked == [(THERE, "event", PROJECT, remote_uid)]
    assert await queries.event_by_id(reader, PROJECT, mint_id(5, PARTITIONS)) is None


async def test_an_idempotency_key_is_read_where_its_dedup_key_hashes() -> None:
    key = next(f"inv-{i}" for i in range(100) if partition_for(dedup_key(PROJECT, f"inv-{i}"), PARTITIONS) >= 4)
    uid = mint_id(partition_for(dedup_key(PROJECT, key), PARTITIONS), PARTITIONS)
    reader, _ = _two_workers({}, {scoped(PROJECT, uid): _event(uid, idempotency_key=key)})
    reader.there.event_tables.idempotency[dedup_key(PROJECT, key)] = [uid]

    found = await queries.events_by_idempotency_key(reader, PROJECT, key)

    assert [e["uid"] for e in found] == [uid]
    assert "dedup_key" not in found[0]  # internal fields stay internal
    assert reader.asked == [(THERE, "events_by_dedup", PROJECT, f"{PROJECT}:{key}")]


async def test_a_list_asks_every_worker_with_partitions_and_keeps_filters(tmp_path: Path) -> None:
    assignment = {HERE: {0, 1, 2, 3}, THERE: {4, 5, 6, 7}, "http://127.0.0.1:5007": set()}
    uids = {p: mint_id(p, PARTITIONS) for p in (2, 5)}
    dbs = []

    def table(url: str) -> RocksTable:
        rows = {scoped(PROJECT, uid): _event(uid, source_id="src-a" if p == 5 else "src-b")
                for p, uid in uids.items() if p in assignment[url]}
        dbs.append(rocks_db(tmp_path / url.rsplit(":", 1)[1], rows))
        return RocksTable([dbs[-1]])

    reader = Reader(_worker(HERE, assignment, table(HERE)), _worker(THERE, assignment, table(THERE)))
    try:
        pages = await queries.event_pages(reader, PROJECT, EventFilter(source_ids=frozenset({"src-a"})), Page(limit=10))
    finally:
        for db in dbs:
            db.close()

    assert sorted(e["uid"] for page in pages for e in page) == [uids[5]]
    assert [worker for worker, *_ in reader.asked] == [THERE]  # the worker without partitions is not asked


async def test_no_owner_or_no_answer_is_unavailable_never_not_found() -> None:
    uid = mint_id(6, PARTITIONS)
    assigning = Reader(_worker(HERE, {HERE: set(), THERE: set()}), None)
    with pytest.raises(queries.Unavailable):
        await queries.event_by_id(assigning, PROJECT, uid)
    with pytest.raises(queries.Unavailable):
        await queries.events_by_broker_id(assigning, PROJECT, "m-1")

    owner_down, _ = _two_workers({}, {})
    owner_down.there = None
    with pytest.raises(queries.Unavailable):
        await queries.event_by_id(owner_down, PROJECT, uid)


def test_the_internal_endpoint_refuses_a_question_it_does_not_know() -> None:
    app = _worker(HERE, {HERE: set(range(PARTITIONS))})
    with pytest.raises(queries.UnknownQuery):
        queries.answer_locally(app, "drop_table", PROJECT, "x")


async def test_a_delivery_is_read_from_its_events_row() -> None:
    uid = mint_id(6, PARTITIONS)
    delivery = {"uid": uid + "D0000000", "event_id": uid, "endpoint_id": "ep", "status": "Scheduled"}
    reader, _ = _two_workers({}, {scoped(PROJECT, uid): _event(uid, deliveries=[delivery])})

    found = await queries.delivery_by_id(reader, PROJECT, delivery["uid"])

    assert found is not None and found["uid"] == delivery["uid"] and found["data"] == {"n": 1}
    assert [e["uid"] for e in await queries.deliveries_of_event(reader, PROJECT, uid)] == [delivery["uid"]]

