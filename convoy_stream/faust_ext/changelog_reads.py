"""Every table changelog record the consumer fetches reaches Faust's recovery.

Faust's recovery applies a partition's changelog records to the table (an active being
restored, or a standby copy kept warm) and persists the offset of the last one applied;
the next recovery of that partition starts after it. So a record the consumer fetched and
then dropped, followed by later records that were applied, is a hole no recovery reads
again: when the partition moves to a worker with such a copy, the rows in the hole
(stored events, their dedup entries) are missing from its tables, though the changelog
holds them. Faust drops fetched changelog records in two places, and a worker joining and
leaving under load hits both (issue 19):

- Its table manager queues the fetched records, and flow control empties that queue at
  every resume, including the one that ends a recovery (`Recovery.on_recovery_completed`),
  after the standby partitions were seeked and have been fetching. The consumer reads on
  after the records that were waiting. `keep_queued_records` makes a resume keep the
  records of the current consumer generation for the partitions recovery tracks (the next
  records of their partitions, in order); a revoke or a stop still empties the queue (they
  suspend the flow first), as recovery then seeks every partition it keeps before reading it.
- The consumer thread asks aiokafka for the records of the partitions Faust has not paused,
  a set that a rebalance empties while the request waits, and aiokafka reads an empty set as
  "every partition": the records just fetched from where recovery seeked a partition come
  back while it is still paused, and Faust skips them. `put_back_paused_records` seeks such
  a partition back to its first returned record, in the consumer thread before anything
  else moves it, so it is fetched again once resumed.
"""

from __future__ import annotations

from typing import Any, Callable


def install(app: Any, consumer: Any) -> None:
    """Both guards on `app`'s changelog queue and `consumer`'s fetches (idempotent)."""
    keep_queued_records(app)
    put_back_paused_records(consumer)


def keep_queued_records(app: Any) -> None:
    """Make a resume of the flow keep the current records of the changelog queue."""
    queue = app.tables.changelog_queue
    if getattr(queue, "convoy_keeps_current_on_resume", False):
        return
    faust_clear = queue.clear

    def clear() -> None:
        if not app.flow_control.is_active():  # a revoke or a stop suspends the flow first
            faust_clear()
            return
        recovery = app.tables.recovery
        events = queue._queue
        keep = current(events, app.consumer_generation_id, recovery.active_tps | recovery.standby_tps)
        if len(keep) != len(events):
            events.clear()
            events.extend(keep)

    queue.clear = clear
    queue.convoy_keeps_current_on_resume = True


def current(events: Any, generation: int, tracked: set[Any]) -> list[Any]:
    """The changelog events fetched in consumer generation `generation` for partitions in `tracked`."""
    return [e for e in events if e.message.generation_id == generation and e.message.tp in tracked]


def put_back_paused_records(consumer: Any) -> None:
    """Make the consumer thread give back the changelog records of partitions Faust paused."""
    thread = consumer._thread
    if getattr(thread, "convoy_puts_back_paused_records", False):
        return
    faust_fetch_records = thread._fetch_records

    async def _fetch_records(kafka_consumer: Any, active_partitions: Any, timeout: Any = None,
                             max_records: Any = None) -> Any:
        records = await faust_fetch_records(kafka_consumer, active_partitions, timeout=timeout,
                                            max_records=max_records)
        if records and active_partitions is not None:
            # No await since aiokafka returned them: each partition's position is still just
            # past its records here, so seeking to the first one reads exactly them again.
            for tp in paused(records, active_partitions, consumer._buffered_partitions, consumer._is_changelog_tp):
                kafka_consumer.seek(tp, records.pop(tp)[0].offset)
        return records

    thread._fetch_records = _fetch_records
    thread.convoy_puts_back_paused_records = True


def paused(records: dict[Any, list[Any]], active: Any, buffered: Any, is_changelog: Callable[[Any], bool]) -> list[Any]:
    """The changelog partitions in `records` that Faust's consumer would skip (neither active nor buffered)."""
    return [tp for tp, batch in records.items()
            if batch and tp not in active and tp not in buffered and is_changelog(tp)]
