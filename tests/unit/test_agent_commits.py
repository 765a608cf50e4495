"""Which ingest offsets may be committed (`agent_commits.py`): only the ones the agent wrote.

Faust's own answer commits records its stream skipped during a rebalance, lets one
unacked record at the committed offset through (an off-by-one), and commits a batch
whose processing raised. These tests hold the replacement to the rule a user relies
on: an acknowledged event's record is never committed before it is stored, and a
record Faust dropped is read again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from convoy_stream.agent_commits import HOLE_PATIENCE, REREAD_PATIENCE, AgentCommits, advance

INGEST = TP("app-ingest", 3)
CHANGELOG = TP("app-events-changelog", 3)


class Message:
    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset = tp, offset


def at(offset: int, tp: TP = INGEST) -> Message:
    """The fetched message at `offset`, as the pipeline reports it written."""
    return Message(tp, offset)


class Consumer:
    """The parts of Faust's consumer `AgentCommits` touches."""

    def __init__(self, committed: int | None, end: int | None = None) -> None:
        self._committed_offset: dict[TP, int | None] = {INGEST: committed}
        self.end = end
        self._acked: dict[TP, list[int]] = {INGEST: [28, 29, 30]}  # Faust's view: includes skipped acks
        self._acked_index: dict[TP, set[int]] = {INGEST: {28, 29, 30}}
        self._gap: dict[TP, Any] = {}
        self.seeks: list[tuple[TP, int]] = []

    def _new_offset(self, tp: TP) -> int | None:
        return 999  # Faust's answer: must never be used for the agents' topics

    def assignment(self) -> set[TP]:
        return {INGEST, CHANGELOG}

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        """Faust: the partitions that have acks, the only ones it asks for an offset."""
        return iter([tp for tp in self._acked if self._acked[tp] and (topics is None or tp.topic in topics)])

    def highwater(self, tp: TP) -> int:
        """The end offset from the last fetch; aiokafka asserts while it has none."""
        assert self.end is not None, "Partition is not assigned"
        return self.end

    async def perform_seek(self) -> None:
        """Faust: after an assignment, the group's committed offsets (None: the group has none)."""

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 17 for tp in tps}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        """Faust: the seek, run on the consumer's thread (its `seek` is not thread-safe)."""
        self.seeks += partitions.items()


def test_the_commit_advances_over_written_offsets_and_stops_at_the_first_that_is_not() -> None:
    written = {10, 11, 12, 14}
    assert advance(written, 10) == (13, True)  # 13 is missing: 14 waits behind it
    assert written == {14}
    written |= {13}
    assert advance(written, 13) == (15, False)
    assert advance({5, 6}, 7) == (7, False)  # re-written records below the committed offset


def test_faust_acks_do_not_commit_what_the_agent_did_not_write() -> None:
    consumer = Consumer(committed=28)
    commits = AgentCommits(["app-ingest"])
    commits.install(consumer)
    # Faust skipped (and acked) 28 while the worker joined; the agent wrote 29 and 30.
    commits.written([at(29), at(30)])
    assert consumer._new_offset(INGEST) is None
    assert consumer._acked[INGEST] == []  # Faust's list is not left to grow
    commits.written([at(28)])  # re-read and written
    assert consumer._new_offset(INGEST) == 31


def test_every_assigned_partition_of_the_agents_topics_is_asked_for_its_commit() -> None:
    consumer = Consumer(committed=28)
    consumer._acked = {CHANGELOG: [4], INGEST: []}  # nothing acks what the pipeline takes
    commits = AgentCommits(["app-ingest"])
    commits.install(consumer)
    commits.written([at(28)])
    assert set(consumer._filter_tps_with_pending_acks()) == {INGEST, CHANGELOG}
    assert list(consumer._filter_tps_with_pending_acks({"app-ingest"})) == [INGEST]
    assert consumer._new_offset(INGEST) == 29


def test_nothing_is_committed_while_the_committed_offset_is_unknown() -> None:
    consumer = Consumer(committed=None)  # Faust pops it while partitions are revoked
    commits = AgentCommits(["app-ingest"])
    commits.install(consumer)
    commits.written([at(28), at(29)])
    assert consumer._new_offset(INGEST) is None


def test_a_partition_the_group_never_committed_is_committed_from_where_it_starts() -> None:
    async def scenario() -> int | None:
        consumer = Consumer(committed=None)  # records there, no offset (backlog, or offsets expired)
        commits = AgentCommits(["app-ingest"])
        commits.install(consumer)
        await consumer.perform_seek()
        commits.written([at(17), at(18)])
        return consumer._new_offset(INGEST)

    assert asyncio.run(scenario()) == 19


def test_other_topics_keep_faust_commits() -> None:
    consumer = Consumer(committed=28)
    commits = AgentCommits(["app-ingest"])
    commits.install(consumer)
    assert consumer._new_offset(CHANGELOG) == 999


def test_a_hole_that_stays_is_read_again_once() -> None:
    async def scenario() -> list[tuple[TP, int]]:
        now = [100.0]
        consumer = Consumer(committed=28)
        commits = AgentCommits(["app-ingest"], clock=lambda: now[0])
        commits.install(consumer)
        for offset in (28, 29, 30):
            commits.handed(at(offset))
        commits.written([at(29), at(30)])
        assert consumer._new_offset(INGEST) is None
        now[0] += HOLE_PATIENCE / 2
        consumer._new_offset(INGEST)  # maybe still in flight: wait
        await asyncio.sleep(0)
        assert consumer.seeks == []
        now[0] += HOLE_PATIENCE
        consumer._new_offset(INGEST)
        consumer._new_offset(INGEST)  # one seek, not one per commit
        await asyncio.sleep(0)
        assert consumer.seeks == [(INGEST, 28)]
        now[0] += REREAD_PATIENCE + 1  # the re-read did not fill it: try again
        consumer._new_offset(INGEST)
        await asyncio.sleep(0)
        return consumer.seeks

    assert asyncio.run(scenario()) == [(INGEST, 28), (INGEST, 28)]


def test_a_record_dropped_at_the_end_of_a_partition_is_read_again() -> None:
    async def scenario(end: int) -> list[tuple[TP, int]]:
        now = [100.0]
        consumer = Consumer(committed=28, end=end)
        commits = AgentCommits(["app-ingest"], clock=lambda: now[0])
        commits.install(consumer)
        for offset in (28, 29, 30, 31):
            commits.handed(at(offset))
        commits.written([at(28), at(29), at(30)])  # 31 was read, then dropped: nothing follows
        assert consumer._new_offset(INGEST) == 31
        consumer._committed_offset[INGEST] = 31  # Faust committed it
        now[0] += HOLE_PATIENCE + 1
        consumer._new_offset(INGEST)
        await asyncio.sleep(0)
        return consumer.seeks

    assert asyncio.run(scenario(end=32)) == [(INGEST, 31)]
    assert asyncio.run(scenario(end=31)) == []  # everything there was written


def test_a_backlog_not_handed_on_yet_is_not_read_again() -> None:
    """A worker starting on a backlog reaches some partitions seconds later: no seek."""
    async def scenario() -> list[tuple[TP, int]]:
        now = [100.0]
        consumer = Consumer(committed=28, end=5_000)
        commits = AgentCommits(["app-ingest"], clock=lambda: now[0])
        commits.install(consumer)
        for _ in range(3):
            now[0] += HOLE_PATIENCE
            assert consumer._new_offset(INGEST) is None
        await asyncio.sleep(0)
        assert consumer.seeks == []
        commits.handed(at(28))  # read, and then never written: a hole after all
        consumer._new_offset(INGEST)
        now[0] += HOLE_PATIENCE + 1
        consumer._new_offset(INGEST)
        await asyncio.sleep(0)
        return consumer.seeks

    assert asyncio.run(scenario()) == [(INGEST, 28)]


def test_after_an_assignment_only_what_is_handed_on_again_counts() -> None:
    async def scenario() -> list[tuple[TP, int]]:
        now = [100.0]
        consumer = Consumer(committed=28, end=5_000)
        commits = AgentCommits(["app-ingest"], clock=lambda: now[0])
        commits.install(consumer)
        commits.handed(at(900))  # read before a rebalance; the partition is read again from 28
        await consumer.perform_seek()
        consumer._committed_offset[INGEST] = 28  # the group's committed offset, as Faust set it
        consumer._new_offset(INGEST)
        now[0] += HOLE_PATIENCE + 1
        consumer._new_offset(INGEST)
        await asyncio.sleep(0)
        return consumer.seeks

    assert asyncio.run(scenario()) == []


def test_a_committed_offset_older_than_the_log_is_moved_to_its_start() -> None:
    async def scenario() -> int | None:
        consumer = Consumer(committed=5)  # retention deleted 5..16 before the group read them
        commits = AgentCommits(["app-ingest"])
        commits.install(consumer)
        await consumer.perform_seek()
        commits.written([at(17)])
        return consumer._new_offset(INGEST)

    assert asyncio.run(scenario()) == 18
