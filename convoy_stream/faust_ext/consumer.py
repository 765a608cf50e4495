"""Faust's consumer: its conductor's message handler, commit bookkeeping, flow state and fetcher.

Each function names one private part of Faust's consumer so that `agent_commits`,
`direct_handoff`, `ingest_feed` and `liveness` never do. A replaced method is seen by Faust
because Faust looks it up through the instance (`SEAMS` checks the call sites).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from faust.transport import conductor

OnMessage = Callable[[Any], Awaitable[Any]]


class Conductor(conductor.Conductor):
    """Faust's conductor, whose compiled message handler a subclass may wrap."""

    def wrap_message_handler(self, faust_on_message: OnMessage) -> OnMessage:
        """The handler each fetched message goes to, given Faust's own (unchanged by default)."""
        return faust_on_message

    def _compile_message_handler(self) -> Any:
        return self.wrap_message_handler(super()._compile_message_handler())


# -- commit bookkeeping -------------------------------------------------------------------------

def replace_new_offset(consumer: Any, new_offset: Callable[[Any], int | None]) -> Callable[[Any], int | None]:
    """Faust's consumer asks `new_offset(tp)` for the offset to commit on `tp`; returns Faust's own."""
    faust_new_offset: Callable[[Any], int | None] = consumer._new_offset
    consumer._new_offset = new_offset
    return faust_new_offset


def replace_pending_acks(consumer: Any, pending: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
    """Faust's consumer asks `pending(topics)` which partitions to ask for an offset; returns Faust's own."""
    faust_pending: Callable[..., Iterable[Any]] = consumer._filter_tps_with_pending_acks
    consumer._filter_tps_with_pending_acks = pending
    return faust_pending


def forget_acks(consumer: Any, tp: Any) -> None:
    """Empty Faust's own ack bookkeeping of `tp` (unused where `replace_new_offset` decides)."""
    consumer._acked[tp].clear()
    consumer._acked_index[tp].clear()
    consumer._gap.pop(tp, None)


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The group's committed offset of `tp` as Faust's consumer knows it (None: unknown or revoked)."""
    return consumer._committed_offset.get(tp)


def set_committed_offset(consumer: Any, tp: Any, offset: int) -> None:
    """Make Faust's consumer count `offset` as the committed offset of `tp`."""
    consumer._committed_offset[tp] = offset


# -- flow and fetcher ---------------------------------------------------------------------------

def flow_open(consumer: Any) -> bool:
    """Whether the consumer's flow runs: not suspended (a rebalance), not stopping, not crashed."""
    return not (consumer.suspend_flow.is_set() or consumer._stopped.is_set() or consumer._crashed.is_set())


def fetcher(app: Any) -> Any:
    """The service that runs the consumer's drain loop."""
    return app._fetcher


def fetcher_shut_down(fetcher: Any) -> bool:
    """Whether the fetcher was told to stop (its drain loop has ended or is ending)."""
    return bool(fetcher._shutdown.is_set())
