"""Config (projects, API keys, endpoints, subscriptions, sources) as a global view.

Config is event-sourced on one compacted Kafka topic. Every worker reads the
whole topic into memory and keeps secondary indexes (endpoints by owner,
subscriptions by endpoint and by source, sources by mask id), so the pipeline
matches an event with dictionary lookups.

Why not a Faust GlobalTable: we need those secondary indexes and
read-your-writes: a management call must see its own write before it answers.
Here a write is produced with acks=all, applied locally at its Kafka offset,
and re-applied harmlessly when the consumer reaches it; an older record read
later never overwrites a newer local one (offsets are versions, one partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, Iterable, Iterator

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from convoy_stream.kafka_connection import KafkaConnection, connection
from convoy_stream.publisher import ensure_topics

log = logging.getLogger(__name__)

KINDS = ("cluster", "project", "apikey", "endpoint", "subscription", "source")


class ConfigStore:
    def __init__(self, kafka: str | KafkaConnection, topic: str) -> None:
        self.kafka = connection(kafka)
        self.topic = topic
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._versions: dict[str, int] = {}
        self._entities: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        # secondary indexes: name -> key -> set of ids
        self._index: dict[str, defaultdict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._listeners: list[Any] = []
        #: Highest config offset applied here (one partition, so a total order).
        self.position = -1
        self._advanced = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        await ensure_topics(self.kafka, [self.topic], 1, compacted=True)
        self._consumer = AIOKafkaConsumer(
            **self.kafka.client_options(), enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest", fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic) or {0}
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._consume(end))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def _consume(self, catch_up_to: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if all(offset == 0 for offset in catch_up_to.values()):
            self.ready.set()
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except asyncio.CancelledError:
                raise
            except Exception:  # broker outage: keep the last known config, retry
                log.exception("config consumer error")
                await asyncio.sleep(1)
                continue
            for tp, messages in batches.items():
                for message in messages:
                    value = orjson.loads(message.value) if message.value is not None else None
                    self._apply(message.key.decode(), value, message.offset)
            if not self.ready.is_set():
                positions = {tp: await self._consumer.position(tp) for tp in catch_up_to}
                if all(positions[tp] >= end for tp, end in catch_up_to.items()):
                    self.ready.set()

    def on_change(self, callback: Any) -> None:
        """Register `callback(kind, id, value_or_None)`; used by the bridge manager."""
        self._listeners.append(callback)

    # -- writes ----------------------------------------------------------------------
    async def put(self, kind: str, uid: str, value: dict[str, Any]) -> dict[str, Any]:
        await self._write(kind, uid, value)
        return value

    async def delete(self, kind: str, uid: str) -> None:
        await self._write(kind, uid, None)

    async def _write(self, kind: str, uid: str, value: dict[str, Any] | None) -> None:
        assert self._producer is not None, "config store not started"
        key = f"{kind}/{uid}"
        payload = orjson.dumps(value) if value is not None else None
        metadata = await self._producer.send_and_wait(self.topic, key=key.encode(), value=payload)
        self._apply(key, value, metadata.offset)

    async def caught_up_to(self, offset: int, timeout: float) -> bool:
        """Wait until this view has applied config `offset`.

        An ingest record carries the offset its publisher had seen, so the
        agent on another worker routes it with at least that config: an
        endpoint created a moment before the event is never "not found".
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while self.position < offset:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._advanced.clear()
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except asyncio.TimeoutError:
                return self.position >= offset
        return True

    async def sync(self, timeout: float = 5.0) -> None:
        """Catch up with every config write made so far, on any worker.

        Used only when something is not found: a client that created a key or
        an endpoint through another worker a moment ago must not get a 401/404.
        """
        if self._consumer is None:
            return
        try:
            ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        except Exception:  # broker unreachable: answer with what we have
            return
        await self.caught_up_to(max(ends.values(), default=0) - 1, timeout)

    async def get_synced(self, kind: str, uid: str) -> dict[str, Any] | None:
        found = self.get(kind, uid)
        if found is None:
            await self.sync()
            found = self.get(kind, uid)
        return found

    def _apply(self, key: str, value: dict[str, Any] | None, offset: int) -> None:
        if offset > self.position:
            self.position = offset
            self._advanced.set()
        if self._versions.get(key, -1) >= offset:
            return
        self._versions[key] = offset
        kind, _, uid = key.partition("/")
        if kind not in self._entities:
            return
        old = self._entities[kind].get(uid)
        if old is not None:
            self._reindex(kind, uid, old, add=False)
        if value is None:
            self._entities[kind].pop(uid, None)
        else:
            self._entities[kind][uid] = value
            self._reindex(kind, uid, value, add=True)
        for callback in self._listeners:
            callback(kind, uid, value)

    def _reindex(self, kind: str, uid: str, value: dict[str, Any], *, add: bool) -> None:
        for name, index_key in _index_keys(kind, value):
            bucket = self._index[name][index_key]
            if add:
                bucket.add(uid)
            else:
                bucket.discard(uid)
                if not bucket:
                    del self._index[name][index_key]

    # -- reads ---------------------------------------------------------------------------
    def get(self, kind: str, uid: str) -> dict[str, Any] | None:
        return self._entities[kind].get(uid)

    def lookup(self, index: str, key: Any) -> Iterator[dict[str, Any]]:
        kind = index.split(":", 1)[0]
        for uid in sorted(self._index[index].get(key, ())):
            entity = self._entities[kind].get(uid)
            if entity is not None:
                yield entity

    def all(self, kind: str) -> Iterable[dict[str, Any]]:
        return list(self._entities[kind].values())

    def project_entities(self, kind: str, project_id: str) -> list[dict[str, Any]]:
        return list(self.lookup(f"{kind}:project", project_id))

    def endpoint(self, project_id: str, uid: str) -> dict[str, Any] | None:
        endpoint = self.get("endpoint", uid)
        return endpoint if endpoint and endpoint["project_id"] == project_id else None

    def endpoints_by_owner(self, project_id: str, owner_id: str) -> list[dict[str, Any]]:
        return list(self.lookup("endpoint:owner", (project_id, owner_id)))

    def endpoint_by_url(self, project_id: str, url: str) -> dict[str, Any] | None:
        return next(self.lookup("endpoint:url", (project_id, url)), None)

    def subscriptions_for_endpoint(self, endpoint_id: str) -> list[dict[str, Any]]:
        return list(self.lookup("subscription:endpoint", endpoint_id))

    def subscriptions_for_source(self, source_id: str) -> list[dict[str, Any]]:
        return list(self.lookup("subscription:source", source_id))

    def source_by_mask(self, mask: str) -> dict[str, Any] | None:
        return next(self.lookup("source:mask", mask), None)


def _index_keys(kind: str, value: dict[str, Any]) -> list[tuple[str, Any]]:
    project = value.get("project_id", "")
    keys: list[tuple[str, Any]] = []
    if project:
        keys.append((f"{kind}:project", project))
    if kind == "endpoint":
        if value.get("owner_id"):
            keys.append(("endpoint:owner", (project, value["owner_id"])))
        keys.append(("endpoint:url", (project, value.get("url", ""))))
    elif kind == "subscription":
        if value.get("endpoint_id"):
            keys.append(("subscription:endpoint", value["endpoint_id"]))
        if value.get("source_id"):
            keys.append(("subscription:source", value["source_id"]))
    elif kind == "source" and value.get("mask_id"):
        keys.append(("source:mask", value["mask_id"]))
    return keys

