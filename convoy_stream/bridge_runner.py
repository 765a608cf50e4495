"""Broker bridges inside a worker (default) or alone (`convoy-stream bridge`).

The bridges consume every enabled `pub_sub` source and follow config
changes within a second, without a restart: the config view calls back on
every source change and the manager reconciles (restarting only sources
whose broker config changed).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from bridges import BridgeManager, BrokerMessage, InvalidMessage
from tables.config import ConfigStore

from . import metrics
from .broker_messages import dead_letter_document, to_record, uses_transforms
from .publisher import Publisher, RecordTooLarge
from .records import IngestRecord
from .transforms import in_transform_thread

log = logging.getLogger(__name__)


class Bridges:
    def __init__(self, config: ConfigStore, publisher: Publisher) -> None:
        self.config = config
        self.publisher = publisher
        self.manager = BridgeManager(self.handle, self.dead_letter, kafka_bootstrap=publisher.kafka,
                                     on_reconnect=metrics.record_bridge_reconnect)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def handle(self, source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[Exception | None]:
        """Build every message's record, then publish the batch and wait for Kafka once."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        project_id = str(source["project_id"])

        def event_id(key: str | None) -> str:
            return self.publisher.mint_event_id(project_id, key)

        def build() -> list[IngestRecord | Exception]:
            built: list[IngestRecord | Exception] = []
            for message in messages:
                try:
                    built.append(to_record(source, message, config=self.config, now=now, event_id=event_id))
                except Exception as exc:  # InvalidMessage: dead-lettered; anything else: retried
                    built.append(exc)
            return built

        # A source's JavaScript runs on the transforms' thread, never on the event loop.
        built = await in_transform_thread(build) if uses_transforms(source) else build()
        records = [(i, record) for i, record in enumerate(built) if isinstance(record, IngestRecord)]
        outcomes: list[Exception | None] = [None if isinstance(b, IngestRecord) else b for b in built]
        published = await self.publisher.publish_many([record for _, record in records])
        for (i, _), outcome in zip(records, published):
            outcomes[i] = InvalidMessage(f"message too large: {outcome}") if isinstance(outcome, RecordTooLarge) else outcome
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


async def start_bridges(app: Any) -> None:
    app.bridges = Bridges(app.config_store, app.publisher)
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
        layout = resolve_layout(settings.replication_factor, settings.min_insync_replicas,
                                await broker_count(settings.kafka))
        await ensure_layout(settings.kafka, [
            TopicSpec(f"{settings.app_id}-ingest", settings.partitions),
            TopicSpec(f"{settings.app_id}-dead-letters", settings.partitions),
            TopicSpec(f"{settings.app_id}-config", 1, compacted=True),
        ], layout)


async def run_standalone() -> None:
    """Config view + publisher + bridges, no Faust worker: a process that only bridges."""
    import signal

    from .settings import Settings

    settings = Settings.from_env()
    await prepare_cluster(settings)
    publisher = Publisher(settings.kafka, ingest_topic=f"{settings.app_id}-ingest",
                          dead_letter_topic=f"{settings.app_id}-dead-letters", partitions=settings.partitions,
                          timeout=settings.publish_timeout)
    config = ConfigStore(settings.kafka, f"{settings.app_id}-config")
    publisher.config_position = lambda: config.position
    await publisher.start()
    await config.start(publisher.producer)
    await config.ready.wait()
    bridges = Bridges(config, publisher)
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
