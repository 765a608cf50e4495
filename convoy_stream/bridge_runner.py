"""Broker bridges inside a worker (default) or alone (`convoy-stream bridge`).

The bridges consume every enabled `pub_sub` source and follow config
changes within a second, without a restart: the config view calls back on
every source change and the manager reconciles (restarting only sources
whose broker config changed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from functools import partial
from typing import Any, Mapping, Sequence

from bridges import BridgeManager, BrokerMessage, InvalidMessage
from tables.config import ConfigStore

from . import clock, metrics, netpolicy
from .broker_messages import dead_letter_document, to_record, uses_transforms
from .publisher import Publisher, RecordTooLarge
from .records import IngestRecord
from . import transforms
from .transforms import in_script_pool

log = logging.getLogger(__name__)

#: FOR TESTS ONLY, never set in production: a worker whose bridge has just written a message
#: whose body contains this variable's value (at least 16 characters) to Kafka kills itself
#: with SIGKILL before acknowledging it at the broker: the crash the redelivery tests need,
#: exactly between the Kafka write and the broker ack. Unset (the default) it does nothing.
TEST_CRASH_AFTER_WRITE = "CONVOY_STREAM_TEST_ONLY_SIGKILL_AFTER_KAFKA_WRITE_OF"


def _crash_marker() -> bytes | None:
    marker = os.environ.get(TEST_CRASH_AFTER_WRITE, "")
    return marker.encode() if len(marker) >= 16 else None


#: How long one turn of a source's scripts on the script pool lasts, at most (plus the
#: message in hand when it runs out, itself bounded by the script time limit).
SCRIPT_SLICE_SECONDS = 0.05


class Bridges:
    def __init__(self, config: ConfigStore, publisher: Publisher, settings: Any = None) -> None:
        self.config = config
        self.publisher = publisher
        limits = {"max_source_workers": settings.max_source_workers, "max_total_workers": settings.max_bridge_workers,
                  "refuse": partial(_refused_hosts, allow_private=settings.allow_private_networks),
                  } if settings is not None else {}
        self.manager = BridgeManager(self.handle, self.dead_letter, kafka_bootstrap=publisher.kafka,
                                     on_reconnect=metrics.record_bridge_reconnect, **limits)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._crash_marker = _crash_marker()

    async def handle(self, source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[Exception | None]:
        """Build every message's record, then publish the batch and wait for Kafka once."""
        now = clock.timestamp()
        project_id = str(source["project_id"])

        def event_id(key: str | None) -> str:
            return self.publisher.mint_event_id(project_id, key)

        def build(batch: Sequence[BrokerMessage], slice_seconds: float | None = None) -> list[IngestRecord | Exception]:
            """Records for the batch, or for its start when `slice_seconds` ran out first."""
            built: list[IngestRecord | Exception] = []
            started = time.monotonic()
            for message in batch:
                try:
                    built.append(to_record(source, message, config=self.config, now=now, event_id=event_id))
                except Exception as exc:  # InvalidMessage: dead-lettered; anything else: retried
                    built.append(exc)
                if slice_seconds is not None and time.monotonic() - started > slice_seconds:
                    break
            return built

        built: list[IngestRecord | Exception] = []
        if uses_transforms(source):
            # The source's JavaScript runs on the script pool, never on the event loop, one time
            # slice at a time: other projects' scripts take their turns between the slices.
            while len(built) < len(messages):
                built += await in_script_pool(project_id, partial(build, messages[len(built):], SCRIPT_SLICE_SECONDS))
        else:
            built = build(messages)
        records = [(i, record) for i, record in enumerate(built) if isinstance(record, IngestRecord)]
        outcomes: list[Exception | None] = [None if isinstance(b, IngestRecord) else b for b in built]
        published = await self.publisher.publish_many([record for _, record in records])
        for (i, _), outcome in zip(records, published):
            outcomes[i] = InvalidMessage(f"message too large: {outcome}") if isinstance(outcome, RecordTooLarge) else outcome
        if self._crash_marker is not None and any(
                outcome is None and self._crash_marker in message.body for message, outcome in zip(messages, outcomes)):
            os.kill(os.getpid(), signal.SIGKILL)  # tests only: see TEST_CRASH_AFTER_WRITE
        return outcomes

    async def dead_letter(self, source: Mapping[str, Any], message: BrokerMessage, reason: str) -> None:
        log.info("dead-lettering message %s of source %s: %s", message.message_id, source.get("uid"), reason)
        await self.publisher.dead_letter(dead_letter_document(source, message, reason))

    def _on_change(self, kind: str, uid: str, value: Any) -> None:
        if kind == "source":
            self._dirty.set()

    async def start(self) -> None:
        self.config.on_change(self._on_change)
        self._dirty.set()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.manager.reconcile(self.config.all("source"))
            except Exception:
                log.exception("bridge reconcile failed; retrying")
                await asyncio.sleep(1)
                self._dirty.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.manager.stop()


def _refused_hosts(source: Mapping[str, Any], *, allow_private: bool) -> str | None:
    """A broker host the network policy refuses (`netpolicy`), for sources stored before it."""
    return netpolicy.pub_sub_problem(source.get("pub_sub"), allow_private=allow_private)


async def start_bridges(app: Any) -> None:
    app.bridges = Bridges(app.config_store, app.publisher, app.settings)
    await app.bridges.start()


async def stop_bridges(app: Any) -> None:
    bridges = getattr(app, "bridges", None)
    if bridges is not None:
        await bridges.stop()


async def prepare_cluster(settings: Any) -> None:
    """What a bridge process writes or reads, created replicated as the worker creates it.

    Raises `ClusterUnusable`, `SettingError` or `TopicMismatch` (one line) when it cannot run.
    """
    from .kafka_preflight import check_cluster, quiet_aiokafka
    from .topic_layout import TopicSpec, broker_count, ensure_layout, resolve_layout

    await check_cluster(settings.kafka)
    with quiet_aiokafka():
        brokers = await broker_count(settings.kafka)
        layout = resolve_layout(settings.replication_factor, settings.min_insync_replicas, brokers)
        await ensure_layout(settings.kafka, [
            TopicSpec(f"{settings.app_id}-ingest", settings.partitions),
            TopicSpec(f"{settings.app_id}-dead-letters", settings.partitions),
            TopicSpec(f"{settings.app_id}-config", 1, compacted=True),
        ], layout, brokers=brokers)


async def run_standalone() -> None:
    """Config view + publisher + bridges, no Faust worker: a process that only bridges."""
    import signal

    from . import log_redaction
    from .settings import Settings

    log_redaction.install()
    settings = Settings.from_env()
    await prepare_cluster(settings)
    transforms.configure(transforms.ScriptLimits.from_settings(settings))
    publisher = Publisher(settings.kafka, ingest_topic=f"{settings.app_id}-ingest",
                          dead_letter_topic=f"{settings.app_id}-dead-letters", partitions=settings.partitions,
                          timeout=settings.publish_timeout)
    config = ConfigStore(settings.kafka, f"{settings.app_id}-config")
    publisher.config_position = lambda: config.position
    await publisher.start()
    await config.start(publisher.producer)
    await config.ready.wait()
    bridges = Bridges(config, publisher, settings)
    await bridges.start()
    print(f"convoy-stream bridge: consuming broker sources into {settings.kafka_bootstrap}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await bridges.stop()
        await config.stop()
        await publisher.stop()
