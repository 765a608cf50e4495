"""A worker with a dead part never looks healthy: `/health` says why, and the process exits.

Faust keeps a worker's process up when some of its parts die: an agent's actor is
restarted by its supervisor (and crashes again on the same record), the consumer's
fetcher can end or crash while the web server, the bridges and `/health` carry on, and a
crash that Faust does propagate stops the worker slowly (every service stops in turn)
while requests are still answered. Such a worker takes events it will never process.

`Liveness` holds the first cause of death. The pipeline's task and agents report their
own failures (`failed`); everything else is read from Faust's services when asked
(`cause`): the app or one of its services crashed, or the consumer's fetcher is not
running although the worker has an assignment. `/health` answers 503 with the cause at
once. A watchdog, a bare asyncio task outside Faust's services (so that a crash which
stops them does not stop it), checks every `CHECK_INTERVAL`; once there is a cause it
waits `exit_after` seconds (`CONVOY_STREAM_UNHEALTHY_EXIT_AFTER`) and exits the process
with status 1, so a supervisor restarts it. Exiting is safe at any point: nothing is
acknowledged before it is durable in Kafka, and nothing is committed before it is
written, as after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, Callable

from .faust_ext import consumer as faust_consumer

log = logging.getLogger(__name__)

#: Seconds between two checks of the watchdog.
CHECK_INTERVAL = 0.5
#: The exit status of a worker that found itself dead.
EXIT_STATUS = 1
#: Seconds the ingest topic's committed offsets may stand still while records wait and
#: Kafka is reachable before the pipeline counts as stalled (a hung fetcher or batch), unless
#: `CONVOY_STREAM_COMMIT_STALL_AFTER` says otherwise.
STALL_AFTER = 30.0


class Liveness:
    """The first cause of death of this worker, if any, and the watchdog that acts on it."""

    def __init__(self, app: Any, *, exit_after: float, ingest_topic: str = "", stall_after: float = STALL_AFTER,
                 exit: Callable[[int], Any] = os._exit, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.exit_after = exit_after
        self.stall_after = stall_after
        self.ingest_topic = ingest_topic
        self._exit = exit
        self._clock = clock
        self._failure: str | None = None
        self._since: float | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._progress: tuple[Any, float] | None = None  # (committed offsets, since when)

    def failed(self, cause: str) -> None:
        """A part of the worker died (the first cause reported is kept)."""
        if self._failure is None:
            self._failure = cause
            log.critical("worker unhealthy: %s; exiting in %.0f s unless it stops first", cause, self.exit_after)

    def cause(self) -> str | None:
        """Why this worker is dead, or None while it is alive (or stopping normally)."""
        if self._failure is not None:
            return self._failure
        app = self.app
        if app.crashed:
            return f"the worker crashed: {app.crash_reason!r}"
        if app.should_stop:
            return None  # stopping on request: every service stops, none died
        for service in _services(app):
            if service.crashed:
                return f"{_name(service)} crashed: {service.crash_reason!r}"
        return self._fetcher_dead()

    def _fetcher_dead(self) -> str | None:
        """The fetcher runs from the first assignment on; outside a rebalance it must be up."""
        app = self.app
        if app.consumer_generation_id <= 0 or app.rebalancing or getattr(app, "in_recovery", False):
            return None
        fetcher = faust_consumer.fetcher(app)
        if fetcher.crashed:
            return f"the Kafka consumer's fetcher crashed: {fetcher.crash_reason!r}"
        if not fetcher.started or faust_consumer.fetcher_shut_down(fetcher):
            return "the Kafka consumer's fetcher stopped: no records are read"
        return None

    def start(self) -> None:
        """Start the watchdog on the running loop (idempotent)."""
        if self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                self.check()
            except Exception:  # the watchdog itself must not die
                log.exception("liveness check failed")

    def stalled(self) -> str | None:
        """Records wait on the ingest topic, Kafka answers, and the commits stand still."""
        app, now = self.app, self._clock()
        if app.rebalancing or app.should_stop or not app.publisher.connected:
            self._progress = None
            return None
        consumer = app.consumer
        ours = sorted((tp for tp in consumer.assignment() if tp.topic == self.ingest_topic), key=lambda tp: tp.partition)
        committed = tuple(faust_consumer.committed_offset(consumer, tp) for tp in ours)
        waiting = 0
        for tp, offset in zip(ours, committed):
            try:
                end = consumer.highwater(tp)
            except Exception:  # not fetched yet
                end = None
            if end is not None and offset is not None and end > offset:
                waiting += end - offset
        if not waiting or self._progress is None or self._progress[0] != committed:
            self._progress = (committed, now)
            return None
        if now - self._progress[1] < self.stall_after:
            return None
        return f"the pipeline has not moved for {now - self._progress[1]:.0f} s while {waiting} ingest records wait"

    def check(self) -> None:
        """Record a cause of death; exit once it has lasted `exit_after` seconds."""
        cause = self.cause() or self.stalled()
        if cause is None:
            return
        self.failed(cause)
        now = self._clock()
        if self._since is None:
            self._since = now
        if now - self._since >= self.exit_after:
            log.critical("worker unhealthy for %.0f s, exiting with status %d: %s",
                         now - self._since, EXIT_STATUS, self._failure)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            self._exit(EXIT_STATUS)


def _services(app: Any) -> list[Any]:
    """The app's services and theirs, from its dependency tree (Faust's beacon)."""
    from mode import Service

    found: list[Any] = []
    seen: set[int] = set()
    stack = list(app.beacon.children)
    while stack:
        node = stack.pop()
        data = getattr(node, "data", node)
        if id(data) in seen:
            continue
        seen.add(id(data))
        if isinstance(data, Service):
            found.append(data)
            stack.extend(data.beacon.children)
        stack.extend(getattr(node, "children", ()))
    return found


def _name(service: Any) -> str:
    return getattr(service, "shortlabel", None) or type(service).__name__
