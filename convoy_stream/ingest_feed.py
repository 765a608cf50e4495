"""The ingest topic's records reach the pipeline in batches, without Faust's streams.

`FeedConductor` hands each fetched message of the ingest topic to `IngestFeed`, which
appends it to a buffer, and `run` hands the pipeline up to `max_batch` of them at a time,
in partition order. A batch waits up to `within` to fill only while Kafka holds more of the
partition than was fetched (a backlog); an event at the end of its partition is taken at
once. The pipeline decodes the values itself and reports what it wrote
(`agent_commits.written`), so no Faust stream tracks, acks or skips these messages. What
Faust's streams guaranteed around a rebalance still holds:

- nothing is appended while Faust holds the flow (a rebalance, a table recovery);
- the buffer is emptied when Faust empties its streams' buffers (revoke and resume), and
  a message fetched in an earlier consumer generation is dropped when taken. Its offset
  was never written, so it is read again from the committed offset;
- a revoke waits for the batch in hand to be written (`stream_wait_empty`), through
  `ConvoyApp.on_streams_empty`, so no row is written for a partition that is
  already being recovered elsewhere.

A batch whose processing fails (Kafka unavailable) is retried with backoff while its
messages still belong to this worker's generation; a rebalance ends the retry and the
next owner reads them again. Why Faust's streams were replaced, and the figures:
docs/mechanisms.md#ingest-feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Callable

from .agent_commits import end_offset
from .faust_ext.consumer import Conductor, OnMessage

log = logging.getLogger(__name__)

#: How long a failed batch waits before it is tried again, doubling up to the last.
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)

#: What a hand-off to the feed returns: the drain loop need not yield for it to be taken
#: (`direct_handoff`), as the feed takes whole batches by itself.
FED = object()

Handler = Callable[[list[Any]], Awaitable[None]]


class IngestFeed:
    """A buffer of one topic's fetched messages, taken in batches by one consumer."""

    def __init__(self, app: Any, topic: str, *, max_batch: int, within: float, high_water: int = 0) -> None:
        self.app = app
        self.topic = topic
        self.max_batch = max_batch
        self.within = within
        #: The drain loop waits when this many messages are buffered.
        self.high_water = high_water or 4 * max_batch
        self._buffer: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._filled = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- the drain loop's side --------------------------------------------------------
    async def on_message(self, message: Any) -> object:
        """Faust's consumer hands over one fetched message (its drain loop awaits this)."""
        flow = self.app.flow_control
        while not flow.is_active():  # a rebalance may suspend it again before this task runs
            await flow.acquire()
        buffer = self._buffer
        buffer.append(message)
        size = len(buffer)
        if size == 1:
            self._arrived.set()
        if size >= self.max_batch:
            self._filled.set()
        if size >= self.high_water:
            self._room.clear()
            await self._room.wait()
        return FED

    def clear(self) -> None:
        """Forget the buffered messages (Faust's `flow_control.clear`, at revoke and resume)."""
        self._buffer.clear()
        self._room.set()

    # -- the pipeline's side ----------------------------------------------------------
    async def take(self) -> list[Any]:
        """The next batch: up to `max_batch` messages of the current consumer generation."""
        buffer = self._buffer
        while True:
            # A rebalance can empty the buffer (`clear`) between the wake-up and this task
            # running again: what was buffered before an await is checked again after it.
            while not buffer:
                self._arrived.clear()
                await self._arrived.wait()
            if len(buffer) < self.max_batch and self.behind():
                self._filled.clear()
                try:
                    async with asyncio.timeout(self.within):
                        await self._filled.wait()
                except TimeoutError:
                    pass
            batch = [buffer.popleft() for _ in range(min(self.max_batch, len(buffer)))]
            if len(buffer) < self.high_water:
                self._room.set()
            batch = self.current(batch)
            if batch:
                return batch

    def behind(self) -> bool:
        """Whether Kafka holds records past the newest buffered message (a backlog to batch)."""
        if not self._buffer:
            return False
        newest = self._buffer[-1]
        end = end_offset(self.app.consumer, newest.tp)
        return end is not None and newest.offset + 1 < end

    def current(self, messages: list[Any]) -> list[Any]:
        """The messages fetched in this consumer generation (the others are read again)."""
        generation = self.app.consumer_generation_id
        return [m for m in messages if m.generation_id == generation]

    async def run(self, handle: Handler) -> None:
        """Hand every batch to `handle`, retrying a failed one while it is still ours."""
        self.app.flow_control.manage_queue(self)  # emptied with the streams' buffers
        while True:
            batch = await self.take()
            self._idle.clear()
            try:
                await self._handle(handle, batch)
            finally:
                self._idle.set()

    async def _handle(self, handle: Handler, batch: list[Any]) -> None:
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                await handle(batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                log.exception("a batch of %d %s records failed; retrying in %.1f s", len(batch), self.topic, delay)
                await asyncio.sleep(delay)
                batch = self.current(batch)
                if not batch or self.app.rebalancing:
                    return  # no longer ours: the next owner reads them from the committed offset
        log.error("a batch of %d %s records failed %d times; it is read again from the committed offset",
                  len(batch), self.topic, len(RETRY_DELAYS) + 1)

    async def wait_idle(self) -> None:
        """Until the batch in hand, if any, is written (or given up)."""
        await self._idle.wait()


class FeedConductor(Conductor):
    """Faust's conductor, except that the ingest topic's messages go to `app.ingest_feed`.

    It also tells `agent_commits` which messages of its topics were handed on, so that only
    an offset the agent had, and did not write, counts as a hole to read again.
    """

    def wrap_message_handler(self, faust_on_message: OnMessage) -> OnMessage:
        app = self.app
        commits = app.agent_commits

        async def on_message(message: Any) -> Any:
            feed: IngestFeed = app.ingest_feed
            topic = message.topic
            if topic in commits.topics:
                commits.handed(message)
            if topic == feed.topic:
                return await feed.on_message(message)
            return await faust_on_message(message)

        return on_message
