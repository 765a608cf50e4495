"""A standby replica applies every changelog record the consumer fetched (`faust_ext/changelog_reads.py`).

The queue tests run Faust's own recovery loop (`Recovery._slurp_changelogs`) on a real,
never started app, over the changelog queue Faust's consumer fills, and replay what
happened in the rebalance churn test (issue 19): a standby partition's records are queued,
recovery completes and resumes the flow (which emptied the queue), the consumer hands on
the records after them. The standby copy must hold every offset, or the events in the hole
are missing from the tables of the worker the partition moves to next. The fetch tests
drive the real consumer thread's `_fetch_records` over aiokafka's answer while Faust has
the partition paused.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from convoy_stream.faust_ext import changelog_reads

CHANGELOG = TP("churn-events-changelog", 0)
GENERATION = 7


class Table:
    """What recovery applies a standby partition's records to; one record at a time."""

    recovery_buffer_size = standby_buffer_size = 1

    def __init__(self) -> None:
        self.applied: list[int] = []

    async def on_changelog_event(self, event: Any) -> None:
        pass

    def apply_changelog_batch(self, events: list[Any]) -> None:
        self.applied += [e.message.offset for e in events]


def record(offset: int, *, tp: TP = CHANGELOG, generation: int = GENERATION) -> Any:
    """A changelog record as Faust's conductor queues it (an event around the message)."""
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset, generation_id=generation))


def standby_app(install: bool) -> tuple[Any, Table]:
    app = faust.App("churn", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    if install:
        changelog_reads.keep_queued_records(app)
        changelog_reads.keep_queued_records(app)  # idempotent
    app.consumer_generation_id = GENERATION
    recovery, table = app.tables.recovery, Table()
    recovery.standby_tps.add(CHANGELOG)
    recovery.tp_to_table[CHANGELOG] = table
    recovery.standby_offsets[CHANGELOG] = 9  # persisted: offsets up to 9 are in the standby copy
    return app, table


async def standby_catch_up(install: bool) -> list[int]:
    """Offsets 10..29 reach the standby; recovery's last resume lands after 10..19 were queued."""
    app, table = standby_app(install)
    queue = app.tables.changelog_queue
    for offset in range(10, 20):
        queue.put_nowait(record(offset))
    app.flow_control.resume()  # Recovery.on_recovery_completed
    for offset in range(20, 30):  # the rest of the fetch: the consumer's position is past 10..19
        queue.put_nowait(record(offset))
    slurp = asyncio.create_task(type(app.tables.recovery)._slurp_changelogs(app.tables.recovery))
    try:
        for _ in range(500):
            if queue.empty() and table.applied and table.applied[-1] == 29:
                break
            await asyncio.sleep(0.01)
    finally:
        slurp.cancel()
        await asyncio.gather(slurp, return_exceptions=True)
    return table.applied


async def test_a_standby_applies_the_records_queued_when_recovery_resumes_the_flow() -> None:
    assert await standby_catch_up(install=True) == list(range(10, 30))


async def test_without_it_the_standby_copy_has_a_hole_past_which_the_offset_moves() -> None:
    """Faust alone: 10..19 are dropped and 29 becomes the offset the next recovery starts after."""
    assert await standby_catch_up(install=False) == list(range(20, 30))


async def test_a_revoke_or_a_stop_still_drops_every_queued_record() -> None:
    app, _ = standby_app(install=True)
    queue = app.tables.changelog_queue
    queue.put_nowait(record(10))
    app.flow_control.suspend()  # Faust suspends the flow, then clears (App._on_partitions_revoked)
    app.flow_control.clear()
    assert queue.empty()


async def test_a_resume_drops_records_of_an_older_generation_or_an_untracked_partition() -> None:
    """Those are stale: recovery seeks what it keeps to its persisted offset and reads it again."""
    app, _ = standby_app(install=True)
    queue = app.tables.changelog_queue
    for event in (record(10, generation=GENERATION - 1), record(11), record(5, tp=TP(CHANGELOG.topic, 3)), record(12)):
        queue.put_nowait(event)
    app.flow_control.resume()
    assert [queue.get_nowait().message.offset for _ in range(queue.qsize())] == [11, 12]


class KafkaConsumer:
    """aiokafka's consumer as the consumer thread sees it: positions, moved by `seek`."""

    def __init__(self) -> None:
        self.seeks: list[tuple[Any, int]] = []

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


def fetch_through_the_consumer_thread(install: bool, active: set[Any]) -> tuple[dict[Any, list[int]], list[Any]]:
    """aiokafka answers with records of a paused changelog partition, an active one and an ingest one."""
    app = faust.App("churn", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    app.Table("events", partitions=8)  # its changelog: churn-events-changelog
    consumer = app.consumer
    paused_changelog, active_changelog, ingest = CHANGELOG, TP(CHANGELOG.topic, 1), TP("churn-ingest", 0)
    answer = {paused_changelog: [SimpleNamespace(offset=o) for o in range(18, 35)],
              active_changelog: [SimpleNamespace(offset=40)], ingest: [SimpleNamespace(offset=7)]}

    async def aiokafka_answer(kafka_consumer: Any, active_partitions: Any, timeout: Any = None, max_records: Any = None) -> Any:
        return dict(answer)

    consumer._thread._fetch_records = aiokafka_answer
    if install:
        changelog_reads.put_back_paused_records(consumer)
        changelog_reads.put_back_paused_records(consumer)  # idempotent
    kafka_consumer = KafkaConsumer()
    records = asyncio.run(consumer._thread._fetch_records(kafka_consumer, active | {active_changelog}, timeout=1.0))
    return {tp: [r.offset for r in rs] for tp, rs in records.items()}, kafka_consumer.seeks


def test_records_of_a_paused_changelog_partition_are_put_back_to_be_fetched_again() -> None:
    """A rebalance emptied Faust's set of active partitions while the fetch waited: aiokafka then
    answers for every partition, and recovery has just seeked the paused one to offset 17."""
    records, seeks = fetch_through_the_consumer_thread(install=True, active=set())
    assert seeks == [(CHANGELOG, 18)]
    assert CHANGELOG not in records
    assert records[TP(CHANGELOG.topic, 1)] == [40]  # active: handed on as before
    assert records[TP("churn-ingest", 0)] == [7]  # not a changelog: Faust's rules (and agent_commits) apply


def test_without_it_faust_receives_them_for_a_paused_partition_and_skips_them() -> None:
    records, seeks = fetch_through_the_consumer_thread(install=False, active=set())
    assert seeks == [] and records[CHANGELOG] == list(range(18, 35))


def test_records_of_an_active_changelog_partition_are_handed_on() -> None:
    records, seeks = fetch_through_the_consumer_thread(install=True, active={CHANGELOG})
    assert seeks == [] and records[CHANGELOG] == list(range(18, 35))
