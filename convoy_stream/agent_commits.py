"""Which offsets of the agents' input topics may be committed: only what the agents wrote.

`AgentCommits` replaces Faust's answer for these topics (ingest and dead letters): the new
offset is the committed offset advanced over the offsets the agent reported `written`, and
stops at the first one it did not. So an acknowledged event's record is never committed
over before its rows and delivery records are durable, whatever Faust's streams acked
(Faust's own rule loses records around rebalances and failures:
docs/mechanisms.md#agent-commits). The ingest topic's messages do not pass through a
Faust stream at all (`ingest_feed`); the dead-letter agent still reads one.

A message dropped after Faust's consumer handed it on leaves a hole there; when a hole stays
(Faust's consumer handed the message on, and later offsets are written or the partition
holds records past it, and this one is not written) the partition is seeked back to it and
read again. A record not handed on yet is no hole: a worker starting on a backlog reaches
some partitions only seconds later. Replays are harmless: `ingestion.ingest` finds the
stored row and re-sends the same delivery records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

from .faust_ext import consumer as faust_consumer

log = logging.getLogger(__name__)

#: A hole at the committed offset lasting this long is a message Faust dropped, not one in
#: flight (the agent writes a partition's records in order, one batch at a time).
HOLE_PATIENCE = 3.0
#: After seeking back, wait this long for the re-read before seeking again.
REREAD_PATIENCE = 15.0


def advance(written: set[int], committed: int) -> tuple[int, bool]:
    """The offset to commit next, and whether a hole blocks it.

    `committed` is the next offset to read (Kafka's committed offset). Every offset from
    it up to the result is written; `written` keeps only the offsets past the result.
    The hole flag is set when something past the result is written but the result is not.
    """
    offset = committed
    while offset in written:
        written.discard(offset)
        offset += 1
    if written:
        stale = [o for o in written if o < offset]
        written.difference_update(stale)
    return offset, bool(written)


class AgentCommits:
    """The commit decision for the topics whose agents report what they wrote."""

    def __init__(self, topics: Iterable[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.topics = frozenset(topics)
        self._written: dict[Any, set[int]] = defaultdict(set)
        self._holes: dict[Any, tuple[int, float]] = {}   # tp -> (offset, first seen)
        self._rereads: dict[Any, tuple[int, float]] = {}  # tp -> (offset, seeked at)
        self._handed: dict[Any, int] = {}  # tp -> the last offset Faust's consumer handed on
        self._clock = clock
        self._consumer: Any = None

    def written(self, messages: Iterable[Any]) -> None:
        """These messages' records are durable in Kafka (rows, deliveries): commit past them."""
        for message in messages:
            self._written[message.tp].add(message.offset)

    def handed(self, message: Any) -> None:
        """Faust's consumer handed this message of our topics on (`ingest_feed.FeedConductor`)."""
        self._handed[message.tp] = message.offset

    def install(self, consumer: Any) -> None:
        """Make Faust's consumer ask this object for the offsets of our topics (idempotent)."""
        if self._consumer is consumer:
            return
        self._consumer = consumer

        def new_offset(tp: Any) -> int | None:
            if tp.topic not in self.topics:
                return faust_new_offset(tp)
            # Faust's own bookkeeping for these topics is unused; keep it from growing.
            faust_consumer.forget_acks(consumer, tp)
            return self.next_offset(tp, faust_consumer.committed_offset(consumer, tp), end=end_offset(consumer, tp))

        faust_new_offset = faust_consumer.replace_new_offset(consumer, new_offset)

        def pending(topics: Any = None) -> Iterable[Any]:
            # Faust asks only partitions with acks for an offset to commit, and nothing acks
            # the ingest feed's messages: every assigned partition of our topics is asked
            # (which also finds a hole on a partition where nothing was written since).
            yield from (tp for tp in faust_pending(topics) if tp.topic not in self.topics)
            yield from (tp for tp in consumer.assignment()
                        if tp.topic in self.topics and (topics is None or tp in topics or tp.topic in topics))

        faust_pending = faust_consumer.replace_pending_acks(consumer, pending)
        faust_perform_seek = consumer.perform_seek

        async def perform_seek() -> None:
            # After an assignment Faust knows the group's committed offsets, but not where
            # a partition without one starts (a backlog written before the first worker, or
            # offsets expired): the earliest offset, where the consumer starts reading.
            # The same for a committed offset whose records retention deleted unread: the
            # commit could never advance over offsets that no longer exist.
            await faust_perform_seek()
            ours = [tp for tp in consumer.assignment() if tp.topic in self.topics]
            for tp in ours:  # read again from the committed offset: nothing handed on yet
                self._handed.pop(tp, None)
            if ours:
                earliest_offsets = await consumer.earliest_offsets(*ours)
                # A rebalance during that await may have revoked some: Faust forgot their
                # committed offsets, and one set now would be stale at their next assignment.
                assigned = consumer.assignment()
                for tp, earliest in earliest_offsets.items():
                    committed = faust_consumer.committed_offset(consumer, tp)
                    if tp in assigned and (committed is None or committed < earliest):
                        faust_consumer.set_committed_offset(consumer, tp, earliest)

        consumer.perform_seek = perform_seek

    def next_offset(self, tp: Any, committed: int | None, *, end: int | None = None) -> int | None:
        """The offset to commit for `tp`, or None; seeks back to a hole that stays.

        `end` is the partition's end offset as last fetched: records up to it that stay
        unwritten are a hole too, with nothing written after it (a message Faust dropped
        at the end of the partition's traffic would otherwise wait for the next record).
        """
        if committed is None:  # revoked: Faust forgot it until the next assignment
            return None
        offset, hole = advance(self._written[tp], committed)
        if (hole or (end is not None and offset < end)) and self._handed.get(tp, -1) >= offset:
            self._on_hole(tp, offset)
        else:
            self._holes.pop(tp, None)
        return offset if offset > committed else None

    def _on_hole(self, tp: Any, offset: int) -> None:
        now = self._clock()
        seen_offset, since = self._holes.setdefault(tp, (offset, now))
        if seen_offset != offset:
            self._holes[tp] = (offset, now)
            return
        reread_offset, at = self._rereads.get(tp, (-1, 0.0))
        if now - since < HOLE_PATIENCE or (reread_offset == offset and now - at < REREAD_PATIENCE):
            return
        self._rereads[tp] = (offset, now)
        log.warning("offset %s of %s stayed unprocessed (dropped by the stream, or processing stalled); "
                    "reading %s from there again", offset, tp.topic, tp)
        if self._consumer is not None and tp in self._consumer.assignment():
            asyncio.ensure_future(self._seek(tp, offset))

    async def _seek(self, tp: Any, offset: int) -> None:
        # `seek_wait`, not `seek`: Faust's `seek` calls aiokafka from this thread while the
        # consumer thread iterates its fetched records, which crashed a worker (KeyError in
        # `Fetcher.fetched_records`); `seek_wait` runs the seek on the consumer's thread.
        # The seek runs a loop turn after the hole was seen: a rebalance may have taken the
        # partition away (or handed it back with a committed offset past the hole) since.
        consumer = self._consumer
        committed = faust_consumer.committed_offset(consumer, tp)
        if tp not in consumer.assignment() or committed is None or committed > offset:
            return
        try:
            await self._consumer.seek_wait({tp: offset})
        except Exception:  # a rebalance in between seeks for us; the next hole tries again
            log.warning("seeking %s back to %s failed", tp, offset, exc_info=True)


def end_offset(consumer: Any, tp: Any) -> int | None:
    """The end offset of `tp` from the last fetch, or None (not fetched yet, or moving)."""
    try:
        return consumer.highwater(tp)
    except Exception:  # aiokafka asserts the partition is assigned; a rebalance may be under way
        return None
