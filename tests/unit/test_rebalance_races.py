"""A rebalance that lands while the pipeline waits: state read before an await, read again after it.

A rebalance runs on the same event loop as the pipeline, between any two of its awaits:
it empties the ingest feed's buffer, takes partitions away (and closes their RocksDB
databases) and forgets committed offsets. Each test here parks a coroutine at one of its
awaits, makes that change, and lets it go on. On the code before issue 19 the first one
crashed the worker (`IndexError: deque index out of range` in `IngestFeed.behind`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from faust.types import TP
from mode.utils.queues import FlowControlEvent
from rocksdict import Options, Rdict

from convoy_stream.agent_commits import HOLE_PATIENCE, AgentCommits
from convoy_stream.ingestion import Tables
from convoy_stream.ingest_feed import IngestFeed
from convoy_stream.table_writes import Batch

INGEST = TP("app-ingest", 0)


# -- the ingest feed ---------------------------------------------------------------------

@dataclass
class Message:
    offset: int
    generation_id: int = 1
    tp: TP = INGEST


class FeedApp:
    """What the feed reads of Faust's app; the consumer has fetched up to offset `end`."""

    def __init__(self, end: int = 1_000) -> None:
        self.flow_control = FlowControlEvent(initially_suspended=False)
        self.consumer_generation_id = 1
        self.rebalancing = False
        self.end = end
        self.consumer = self

    def highwater(self, tp: TP) -> int:
        return self.end


def test_a_buffer_emptied_between_the_wake_up_and_the_take_is_waited_for_again() -> None:
    """The crash of issue 19: `take` woke for a message that a revoke had cleared since."""

    async def scenario() -> list[int]:
        app = FeedApp()  # a backlog: `take` asks whether it is behind, reading the newest message
        feed = IngestFeed(app, "app-ingest", max_batch=3, within=0.01)
        taking = asyncio.ensure_future(feed.take())
        await asyncio.sleep(0)  # `take` waits for a message
        await feed.on_message(Message(0))  # wakes it ...
        feed.clear()  # ... and a revoke empties the buffer before it runs
        await asyncio.sleep(0.05)
        assert not taking.done(), taking  # on the old code: IndexError('deque index out of range')
        app.consumer_generation_id = 2
        await feed.on_message(Message(0, generation_id=2))  # read again after the rebalance
        return [m.offset for m in await asyncio.wait_for(taking, 5)]

    assert asyncio.run(scenario()) == [0]


def test_a_buffer_emptied_while_a_batch_waits_to_fill_hands_on_nothing_stale() -> None:
    async def scenario() -> list[tuple[int, int]]:
        app = FeedApp()
        feed = IngestFeed(app, "app-ingest", max_batch=3, within=0.05)
        await feed.on_message(Message(0))
        taking = asyncio.ensure_future(feed.take())
        await asyncio.sleep(0.01)  # waiting for the batch to fill (a backlog is behind it)
        feed.clear()
        app.consumer_generation_id = 2
        await asyncio.sleep(0.1)  # the wait to fill ends with nothing buffered
        assert not taking.done(), taking
        await feed.on_message(Message(0, generation_id=2))
        return [(m.offset, m.generation_id) for m in await asyncio.wait_for(taking, 5)]

    assert asyncio.run(scenario()) == [(0, 2)]


def test_a_flow_suspended_again_before_the_hand_off_runs_holds_the_message_back() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        app = FeedApp()
        feed = IngestFeed(app, "app-ingest", max_batch=3, within=0.01)
        app.flow_control.suspend()  # a rebalance holds the flow
        handing = asyncio.ensure_future(feed.on_message(Message(5)))
        await asyncio.sleep(0)
        app.flow_control.resume()  # it ends, and the next one starts before the hand-off runs
        app.flow_control.suspend()
        await asyncio.sleep(0.01)
        held = [m.offset for m in feed._buffer]  # on the old code: [5], appended while suspended
        app.flow_control.resume()
        await asyncio.wait_for(handing, 5)
        return held, [m.offset for m in feed._buffer]

    assert asyncio.run(scenario()) == ([], [5])


# -- agent commits: the seek back to a hole -----------------------------------------------

class Consumer:
    """The parts of Faust's consumer `AgentCommits` touches."""

    def __init__(self) -> None:
        self._committed_offset: dict[TP, int | None] = {INGEST: 28}
        self._acked: dict[TP, list[int]] = {INGEST: []}
        self._acked_index: dict[TP, set[int]] = {INGEST: set()}
        self._gap: dict[TP, Any] = {}
        self.assigned = {INGEST}
        self.seeks: list[tuple[TP, int]] = []
        self.earliest_gate = asyncio.Event()

    def _new_offset(self, tp: TP) -> int | None:
        return None

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        return iter([])

    def highwater(self, tp: TP) -> int:
        return 40

    async def perform_seek(self) -> None:
        """Faust: the group's committed offsets, read at an assignment."""

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        await self.earliest_gate.wait()
        return {tp: 30 for tp in tps}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks += partitions.items()


def test_a_seek_back_to_a_hole_is_dropped_when_a_rebalance_took_the_partition_meanwhile() -> None:
    async def scenario() -> list[tuple[TP, int]]:
        now = [100.0]
        consumer = Consumer()
        commits = AgentCommits(["app-ingest"], clock=lambda: now[0])
        commits.install(consumer)
        commits.handed(Message(28))
        commits.handed(Message(29))
        commits.written([Message(29)])  # 28 never written: a hole
        consumer._new_offset(INGEST)
        now[0] += HOLE_PATIENCE + 1
        consumer._new_offset(INGEST)  # schedules the seek back to 28 ...
        consumer.assigned.clear()  # ... and a rebalance revokes the partition before it runs
        consumer._committed_offset.pop(INGEST)
        await asyncio.sleep(0.01)
        return consumer.seeks

    assert asyncio.run(scenario()) == []


def test_a_committed_offset_is_not_remembered_for_a_partition_revoked_during_the_assignment() -> None:
    async def scenario() -> dict[TP, int | None]:
        consumer = Consumer()
        consumer._committed_offset[INGEST] = None  # the group has none: start from the earliest
        AgentCommits(["app-ingest"]).install(consumer)
        seeking = asyncio.ensure_future(consumer.perform_seek())
        await asyncio.sleep(0)  # asking Kafka for the earliest offsets ...
        consumer.assigned.clear()  # ... while the next rebalance revokes the partition
        consumer._committed_offset.pop(INGEST)
        consumer.earliest_gate.set()
        await asyncio.wait_for(seeking, 5)
        return consumer._committed_offset

    assert asyncio.run(scenario()) == {}


# -- the batch's table writes ---------------------------------------------------------------

class Store:
    """Faust's RocksDB store as `Batch` uses it: a revoke pops a partition's database."""

    def __init__(self, path: Path) -> None:
        self.path, self._dbs, self.opened = path, {}, []
        self.persisted: dict[int, int] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self._dbs:
            self.opened.append(partition)
            self._dbs[partition] = Rdict(str(self.path / f"p{partition}"), Options(raw_mode=True))
        return self._dbs[partition]

    def _encode_key(self, key: str) -> bytes:
        return orjson.dumps(key)

    def _encode_value(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def _decode_value(self, raw: bytes) -> Any:
        return orjson.loads(raw)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self._db_for_partition(tp.partition)
        self.persisted[tp.partition] = offset


class Changelog:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Table:
    def __init__(self, path: Path, name: str) -> None:
        path.mkdir()
        self.data = Store(path)
        self.changelog_topic = Changelog(name)


class Builder:
    def append(self, **record: Any) -> object:
        return record

    def close(self) -> None:
        pass


class Producer:
    """aiokafka's producer as `send_records` uses it; the first send waits for `gate`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sends = 0

    def create_batch(self) -> Builder:
        return Builder()

    async def send_batch(self, builder: Builder, topic: str, partition: int) -> asyncio.Future:
        self.sends += 1
        if self.sends == 1:
            await self.gate.wait()
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        done.set_result(type("Metadata", (), {"offset": 0})())
        return done


def test_a_batch_never_reopens_a_database_that_a_rebalance_closed_while_it_waited_for_kafka(tmp_path: Path) -> None:
    tables = Tables(events=Table(tmp_path / "events", "events-changelog"),
                    idempotency=Table(tmp_path / "idem", "idem-changelog"),
                    broker_ids=Table(tmp_path / "broker", "broker-changelog"))
    stores = [tables.events.data, tables.idempotency.data]

    async def scenario() -> None:
        batch = Batch(tables, delivery_topic=None)
        view = batch.tables(2)
        view.events["p/e1"] = {"uid": "e1"}
        view.idempotency["p/k1"] = "e1"
        producer = Producer()
        writing = asyncio.ensure_future(batch.write(producer, "deliveries"))
        await asyncio.sleep(0.01)  # the first changelog send waits for Kafka ...
        for store in stores:  # ... and a revoke closes partition 2's databases
            store._dbs.clear()
            store.opened.clear()
        producer.gate.set()
        await asyncio.wait_for(writing, 5)

    asyncio.run(scenario())
    assert [store.opened for store in stores] == [[], []]  # nothing reopened after the revoke
    assert [store.persisted for store in stores] == [{}, {}]
