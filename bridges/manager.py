"""Runs the bridges that the source config asks for, and follows config changes live.

The worker calls :meth:`BridgeManager.reconcile` with *all* sources whenever the source
config changes (and may call it periodically): the manager starts ``pub_sub.workers``
consumers for every enabled ``pub_sub`` source, restarts a source's consumers when its
``pub_sub`` config changed (a hash of the whole block: unlike Convoy, a changed AMQP port,
vhost, credential or binding restarts too), and stops those of deleted or disabled sources.
Other source fields (name, body function...) change without a restart: handlers get a live
view of the current source.

Worker limits hold at runtime too, for sources stored before the API enforced them: a
source runs at most ``max_source_workers`` consumers and all sources together at most
``max_total_workers``, handed out oldest source first (by uid). A source that gets fewer
than it asks for is logged once, with its status showing why; one that gets none is not
started. Its allotment growing back (another source deleted) restarts it with more.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from convoy_stream import clock
from convoy_stream.kafka_connection import KafkaConnection
from convoy_stream.limits import DEFAULT_MAX_BRIDGE_WORKERS, DEFAULT_MAX_SOURCE_WORKERS

from .base import (
    DEFAULT_BATCH_SIZE,
    Consumer,
    DeadLetter,
    Handle,
    WorkerStats,
    redact,
    run_consumer,
    source_secrets,
)
from .registry import BROKERS, broker_of, consumer_for

log = logging.getLogger(__name__)

ConsumerFactory = Callable[..., Consumer]


class LiveSource(Mapping[str, Any]):
    """A read-only view of a source that the manager updates in place.

    Running consumers keep the same object, so handlers always see the latest source config.
    """

    def __init__(self, source: Mapping[str, Any]) -> None:
        self._current: Mapping[str, Any] = source

    def update(self, source: Mapping[str, Any]) -> None:
        self._current = source

    def __getitem__(self, key: str) -> Any:
        return self._current[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def __repr__(self) -> str:
        return f"LiveSource(uid={self._current.get('uid')!r})"


def config_hash(source: Mapping[str, Any]) -> str:
    """Hash of the whole ``pub_sub`` block: any change in it restarts the consumers."""
    canonical = json.dumps(source.get("pub_sub") or {}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def worker_count(source: Mapping[str, Any]) -> int:
    """``pub_sub.workers``; Convoy requires it non-zero, we run at least one."""
    try:
        return max(1, int((source.get("pub_sub") or {}).get("workers") or 1))
    except (TypeError, ValueError):
        return 1


def bridge_workers(source: Mapping[str, Any]) -> int:
    """The consumers a source asks for: ``pub_sub.workers`` if it is wanted, else 0."""
    return worker_count(source) if is_wanted(source) else 0


def allot(sources: Mapping[str, Mapping[str, Any]], per_source: int, total: int) -> dict[str, int]:
    """Workers per source uid within both limits, oldest source (lowest uid) served first."""
    left = total
    out: dict[str, int] = {}
    for uid in sorted(sources):
        out[uid] = min(worker_count(sources[uid]), per_source, max(left, 0))
        left -= out[uid]
    return out


def is_wanted(source: Mapping[str, Any]) -> bool:
    """An enabled, not deleted broker source."""
    if source.get("type", "pub_sub") != "pub_sub" or not source.get("pub_sub"):
        return False
    return not source.get("is_disabled") and not source.get("deleted_at")


@dataclass
class _Run:
    uid: str
    broker: str
    project_id: str | None
    config_hash: str
    workers: int
    source: LiveSource
    secrets: list[str]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None] | None] = field(default_factory=list)
    stats: list[WorkerStats] = field(default_factory=list)
    started_at: float = field(default_factory=clock.seconds)
    error: str | None = None  # a config error that keeps the source from running at all
    capped: str | None = None  # why it runs fewer workers than its config asks for


class BridgeManager:
    """Starts, restarts and stops broker consumers to match the source config."""

    def __init__(
        self,
        handle: Handle,
        dead_letter: DeadLetter,
        *,
        kafka_bootstrap: str | KafkaConnection | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        stop_timeout: float = 10.0,
        consumer_factory: ConsumerFactory = consumer_for,
        on_reconnect: Callable[[str], None] | None = None,
        max_source_workers: int = DEFAULT_MAX_SOURCE_WORKERS,
        max_total_workers: int = DEFAULT_MAX_BRIDGE_WORKERS,
        refuse: Callable[[Mapping[str, Any]], str | None] | None = None,
    ) -> None:
        self.handle = handle
        self.dead_letter = dead_letter
        self.kafka_bootstrap = kafka_bootstrap
        self.batch_size = batch_size
        self.stop_timeout = stop_timeout
        self.consumer_factory = consumer_factory
        self.on_reconnect = on_reconnect
        self.max_source_workers = max_source_workers
        self.max_total_workers = max_total_workers
        #: Why a source must not run at all (a broker host the network policy refuses, for a
        #: source stored before the policy), or None.
        self.refuse = refuse
        self._runs: dict[str, _Run] = {}
        self._lock = asyncio.Lock()

    async def reconcile(self, sources: Iterable[Mapping[str, Any]]) -> None:
        """Make the running consumers match ``sources`` (all sources, any type)."""
        async with self._lock:
            desired = {str(s["uid"]): s for s in sources if s.get("uid") and is_wanted(s)}
            allotted = allot(desired, self.max_source_workers, self.max_total_workers)
            changed = [
                uid
                for uid, run in self._runs.items()
                if uid not in desired or run.config_hash != config_hash(desired[uid])
                or run.workers != allotted[uid]
            ]
            await asyncio.gather(*(self._stop_run(self._runs.pop(uid)) for uid in changed))
            for uid, source in desired.items():
                run = self._runs.get(uid)
                if run is None:
                    self._runs[uid] = self._start_run(source, allotted[uid])
                else:
                    run.source.update(source)
                    self._revive(run)

    async def stop(self) -> None:
        """Stop every consumer (each finishes and settles its current batch first)."""
        async with self._lock:
            runs, self._runs = list(self._runs.values()), {}
            await asyncio.gather(*(self._stop_run(run) for run in runs))

    def status(self) -> dict[str, Any]:
        """Per source uid: broker, workers, running/connected counts, counters, last error.

        Errors are redacted of the source's credentials before they are stored.
        """
        out: dict[str, Any] = {}
        for uid, run in self._runs.items():
            last = max(
                (s for s in run.stats if s.last_error_at is not None),
                key=lambda s: s.last_error_at or 0.0,
                default=None,
            )
            out[uid] = {
                "broker": run.broker,
                "project_id": run.project_id,
                "workers": run.workers,
                "running": sum(1 for t in run.tasks if t is not None and not t.done()),
                "connected": sum(1 for s in run.stats if s.connected),
                "received": sum(s.received for s in run.stats),
                "acked": sum(s.acked for s in run.stats),
                "dead_lettered": sum(s.dead_lettered for s in run.stats),
                "rejected": sum(s.rejected for s in run.stats),
                "errors": sum(s.errors for s in run.stats) + (1 if run.error else 0),
                "last_error": run.error or run.capped or (last.last_error if last else None),
                "last_error_at": None if run.error else (last.last_error_at if last else None),
                "started_at": run.started_at,
            }
        return out

    # ------------------------------------------------------------------ internals

    def _start_run(self, source: Mapping[str, Any], workers: int) -> _Run:
        uid = str(source["uid"])
        broker = broker_of(source)
        run = _Run(
            uid=uid,
            broker=broker,
            project_id=source.get("project_id"),
            config_hash=config_hash(source),
            workers=workers,
            source=LiveSource(source),
            secrets=source_secrets(source),
        )
        if broker not in BROKERS:
            run.error = "unsupported pub sub type"
            log.warning("bridge %s not started: %s", uid, run.error)
            return run
        refused = self.refuse(source) if self.refuse is not None else None
        if refused:
            run.error = refused
            log.warning("bridge %s not started: %s", uid, run.error)
            return run
        if workers < worker_count(source):
            run.capped = (f"runs {workers} of {worker_count(source)} workers: at most {self.max_source_workers} "
                          f"per source and {self.max_total_workers} per instance")
            log.warning("bridge %s %s", uid, run.capped)
            if workers == 0:
                return run
        run.tasks = [None] * run.workers
        run.stats = [WorkerStats() for _ in range(run.workers)]
        self._revive(run)
        log.info("bridge %s (%s) started with %d worker(s)", uid, broker, run.workers)
        return run

    def _revive(self, run: _Run) -> None:
        """Start the worker tasks that are not running (never started, or crashed)."""
        if run.error is not None:
            return
        for index, task in enumerate(run.tasks):
            if task is not None and not task.done():
                continue
            try:
                consumer = self.consumer_factory(
                    run.source, batch_size=self.batch_size, kafka_bootstrap=self.kafka_bootstrap
                )
            except Exception as exc:
                run.error = redact(f"{type(exc).__name__}: {exc}", run.secrets)
                log.warning("bridge %s not started: %s", run.uid, run.error)
                return
            task = asyncio.create_task(
                run_consumer(
                    run.source,
                    consumer,
                    self.handle,
                    self.dead_letter,
                    batch_size=self.batch_size,
                    stop=run.stop,
                    stats=run.stats[index],
                    on_reconnect=self.on_reconnect,
                ),
                name=f"bridge:{run.uid}:{index}",
            )
            task.add_done_callback(self._task_done)
            run.tasks[index] = task

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge task %s crashed", task.get_name(), exc_info=task.exception())

    async def _stop_run(self, run: _Run) -> None:
        run.stop.set()
        tasks = [t for t in run.tasks if t is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.stop_timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        log.info("bridge %s (%s) stopped", run.uid, run.broker)
