"""Ingest records are committed only once the agent has written them.

Faust commits a record's offset when the last reference to its message is
released. Two of its own paths release a reference without the record having
been processed, and both lost acknowledged events in the two-worker SIGKILL
test (about 1 run in 17):

- During a rebalance a stream *skips* every message it pulls while flow control
  is suspended or whose consumer generation is stale, and acks it "so the lag
  does not grow" (`Stream._py_aiter`, `_CStreamIterator.after`). When the same
  worker gets the partition back, or during the revoke itself (when Faust has
  forgotten the committed offset), the next commit covers those records and no
  one ever processes them.
- `Stream.take_events` acks its whole buffer in a `finally`, so a batch whose
  processing raised is committed as well.

`AgentAckedTopic` takes one extra reference on every message it decodes, and
the agent gives it back (`release`) only once Kafka has the batch's rows and deliveries. A
message Faust drops or acks on its own keeps that reference, so its offset never
becomes committable; after the rebalance the consumer seeks to the committed
offset and the record is read again. Replays are harmless: `ingestion.ingest`
finds the stored row and re-sends the same delivery records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine, Iterable, Sequence

import faust

log = logging.getLogger(__name__)


class AgentAckedTopic(faust.Topic):
    """A topic whose messages stay uncommitted until the agent calls `release`."""

    def _compile_decode(self) -> None:
        super()._compile_decode()
        decode = self.decode

        async def decode_and_hold(message: Any, *, propagate: bool = False) -> Any:
            event = await decode(message, propagate=propagate)
            message.incref()
            return event

        self.decode = decode_and_hold  # type: ignore[method-assign]


def release(events: Iterable[Any]) -> None:
    """Give back the reference `AgentAckedTopic` took: these records are written."""
    for event in events:
        event.ack()


class InOrderReleases:
    """Release each batch once Kafka confirmed its writes, oldest batch first.

    The agent goes on with the next batch while Kafka acknowledges this one: waiting
    for every batch's acks left the worker idle about 5% of the time. At most `limit`
    batches are unconfirmed; `add` waits for a slot. Once a confirmation fails, no later
    batch is released either (none of them becomes committable), and `add` raises the
    error, as a failed write in the agent did before.
    """

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[tuple[Coroutine[Any, Any, None], Sequence[Any]] | None] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None

    async def add(self, confirmation: Coroutine[Any, Any, None], events: Sequence[Any]) -> None:
        if self._failed is not None:
            confirmation.close()
            raise self._failed
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        try:
            await self._queue.put((confirmation, events))
        except BaseException:  # cancelled while waiting for a slot: this batch stays uncommitted
            confirmation.close()
            raise

    async def close(self, timeout: float = 10.0) -> None:
        """Wait (up to `timeout`) for the batches in flight, so a clean stop commits them."""
        if self._task is None:
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._task.cancel()

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            confirmation, events = item
            if self._failed is not None:
                confirmation.close()
                continue
            try:
                await confirmation
            except Exception as exc:
                log.error("writing a batch to Kafka failed; it and every later batch stay uncommitted: %r", exc)
                self._failed = exc
                continue
            release(events)
