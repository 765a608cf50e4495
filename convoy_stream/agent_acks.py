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
the agent gives it back (`release`) only after `Batch.write` has returned. A
message Faust drops or acks on its own keeps that reference, so its offset never
becomes committable; after the rebalance the consumer seeks to the committed
offset and the record is read again. Replays are harmless: `ingestion.ingest`
finds the stored row and re-sends the same delivery records.
"""

from __future__ import annotations

from typing import Any, Iterable

import faust


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
