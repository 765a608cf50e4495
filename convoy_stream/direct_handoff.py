"""Faust's consumer hands each fetched message to the streams without four tasks per message.

Faust's drain loop (`Consumer._drain_messages`) passes every message on through mode's
`wait_first`, which creates and cancels tasks for every message
(why that matters: docs/mechanisms.md#direct-handoff).

While the flow runs (not suspended, not stopping, not crashed) the hand-off is awaited
directly, then the loop yields once, as Faust's path did, so Faust's flow control sees
the same pressure (a message handed to the ingest feed needs no yield, as the feed takes
whole batches by itself); otherwise Faust's own `wait_first` decides, as before. One
thing changes on purpose: when a rebalance suspends the flow while a hand-off waits for
room in a stream's buffer, Faust cancelled the hand-off and so dropped the message
(`agent_commits` then had to read it again); now the hand-off completes, as the streams
keep taking (and skipping) messages while the flow is suspended. Stopping still cancels
the drain loop, and the hand-off with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mode.services import WaitResults

from .faust_ext.consumer import flow_open
from .ingest_feed import FED

_EVENT_WAIT = asyncio.Event.wait.__code__


def install(consumer: Any) -> None:
    """Give Faust's consumer the direct hand-off (idempotent)."""
    if getattr(consumer.wait_first, "direct_handoff", False):
        return
    faust_wait_first = consumer.wait_first

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        if (len(coros) == 2 and timeout is None and asyncio.iscoroutine(coros[0])
                and getattr(coros[1], "cr_code", None) is _EVENT_WAIT
                and flow_open(consumer)):
            coros[1].close()  # the flow event's wait, never started
            result = await coros[0]
            if result is not FED:
                await asyncio.sleep(0)  # let the agent take it (see above)
            return WaitResults([coros[0]], [result], False)
        return await faust_wait_first(*coros, timeout=timeout)

    wait_first.direct_handoff = True  # type: ignore[attr-defined]
    consumer.wait_first = wait_first
