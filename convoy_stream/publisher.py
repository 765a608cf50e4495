"""Durable writes onto the ingest and dead-letter topics.

Every way in calls `Publisher.publish` and answers its caller only after it
returns: Kafka has then acknowledged the record with acks=all. A failure or a
timeout raises `KafkaUnavailable` and the caller answers 503 / does not ack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from . import metrics
from .codecs import dumps_record
from .faust_ext import producer as faust_producer
from .kafka_connection import KafkaConnection, client_options, connection
from .ids import by_partition, mint_id, partition_for, partition_of, scoped
from .records import IngestRecord
from .topic_layout import Layout, TopicSpec, ensure_layout

log = logging.getLogger(__name__)


#: The field of a dead-letter topic record that names dead letters to forget (retention).
EXPIRE_DEAD_LETTERS = "expire_dead_letters"


#: The largest ingest record accepted, JSON-encoded. Kafka refuses records over about
#: 1 MB by default (`message.max.bytes`), and the pipeline writes each event again, larger
#: (the stored row lists its deliveries), on topics created with `DOWNSTREAM_MAX_BYTES`.
MAX_RECORD_BYTES = 1_000_000

#: `max.message.bytes` of the topics the pipeline writes (changelogs, deliveries).
DOWNSTREAM_MAX_BYTES = 8 * 1024 * 1024


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge the write in time; nothing was accepted."""


class RecordTooLarge(Exception):
    """The event is larger than `MAX_RECORD_BYTES`: the sender's mistake (413), never retried."""


class Publisher:
    def __init__(self, kafka: str | KafkaConnection, *, ingest_topic: str, dead_letter_topic: str, partitions: int,
                 timeout: float) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.ingest_topic = ingest_topic
        self.dead_letter_topic = dead_letter_topic
        self.partitions = partitions
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "publisher not started"
        return self._producer

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__.
        self._producer = AIOKafkaProducer(
            **self.kafka.client_options(), acks="all", linger_ms=0,
            enable_idempotence=True, request_timeout_ms=int(self.timeout * 1000),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def connected(self) -> bool:
        """Started and holding at least one live broker connection."""
        if self._producer is None:
            return False
        return faust_producer.connected(self._producer)

    def mint_event_id(self, project_id: str, dedup_key: str | None) -> str:
        """An event id naming the partition of its dedup key, or any partition without one (see `ids`)."""
        partition = partition_for(dedup_key, self.partitions) if dedup_key else None
        return mint_id(partition, self.partitions)

    #: Set by the worker: the config offset this process has applied, stamped on
    #: every record so the agent routes it with at least that config.
    config_position: Any = staticmethod(lambda: -1)

    async def publish(self, record: IngestRecord) -> None:
        key, value, partition = self._ingest_write(record)
        await self._send(self.ingest_topic, key, value, partition)
        metrics.record_produced(self.ingest_topic)

    async def publish_many(self, records: Sequence[IngestRecord]) -> list[Exception | None]:
        """Publish a batch and wait for Kafka once: one outcome per record, in order.

        ``None`` is durable; `RecordTooLarge` or `KafkaUnavailable` is not. A bridge hands
        over a whole receive: its records go as one Kafka record batch per partition (one
        future each), not a `send`, a future and a timer per message.
        """
        outcomes: list[Exception | None] = [None] * len(records)
        by_partition: dict[int, list[tuple[int, bytes, bytes]]] = {}
        for i, record in enumerate(records):
            try:
                key, value, partition = self._ingest_write(record)
            except RecordTooLarge as exc:
                outcomes[i] = exc
                continue
            by_partition.setdefault(partition, []).append((i, key, value))
        sending: list[tuple[asyncio.Future[Any], list[int]]] = []
        failure = "not acknowledged"
        try:
            async with asyncio.timeout(self.timeout):
                for partition, rows in by_partition.items():
                    for future, count in await send_records(self.producer, self.ingest_topic, partition,
                                                            [(key, value, []) for _, key, value in rows]):
                        sending.append((future, [i for i, _, _ in rows[:count]]))
                        rows = rows[count:]
                if sending:
                    await asyncio.wait([future for future, _ in sending])
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            failure = str(exc) or type(exc).__name__  # some not sent, or not acknowledged in time
        sent = {i: future for future, indexes in sending for i in indexes}
        durable = 0
        for i in range(len(records)):
            if outcomes[i] is not None:
                continue
            future = sent.get(i)
            if future is None or not future.done() or future.cancelled():
                outcomes[i] = KafkaUnavailable(failure)
            elif (error := future.exception()) is not None:
                outcomes[i] = KafkaUnavailable(str(error) or type(error).__name__)
            else:
                durable += 1
        metrics.record_produced(self.ingest_topic, durable)
        return outcomes

    def _ingest_write(self, record: IngestRecord) -> tuple[bytes, bytes, int]:
        """(key, value, partition) of an ingest record; raises `RecordTooLarge`."""
        if record.config_offset < 0:
            record.config_offset = self.config_position()
        key = scoped(record.project_id, record.uid)
        value = dumps_record(record)
        if len(value) > MAX_RECORD_BYTES:
            raise RecordTooLarge(f"event of {len(value)} bytes encoded, more than {MAX_RECORD_BYTES}")
        return orjson.dumps(key), value, partition_of(key, self.partitions)

    async def dead_letter(self, document: dict[str, Any]) -> dict[str, Any]:
        """Durably record a message that can never become an event (keyed like events)."""
        document = {"uid": mint_id(None, self.partitions), **document}
        key = scoped(str(document.get("project_id", "")), document["uid"])
        value = orjson.dumps(document)
        if len(value) > MAX_RECORD_BYTES:  # keep the reason and the start of the message
            document = {**document, "original": str(document.get("original", ""))[:64 * 1024], "original_truncated": True}
            value = orjson.dumps(document)
        await self._send(self.dead_letter_topic, orjson.dumps(key), value, partition_of(key, self.partitions))
        metrics.record_produced(self.dead_letter_topic)
        metrics.record_dead_letter(str(document.get("source_id") or ""))
        return document

    async def expire_dead_letters(self, project_id: str, uids: list[str]) -> None:
        """Ask the dead-letter agent to forget these dead letters, on their own partitions."""
        for partition, group in by_partition(project_id, uids, self.partitions).items():
            command = {"project_id": project_id, EXPIRE_DEAD_LETTERS: group}
            await self._send(self.dead_letter_topic, orjson.dumps(scoped(project_id, group[0])), orjson.dumps(command), partition)

    async def send_raw(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:
        """One record, durably (acks=all) within the publish timeout; raises `KafkaUnavailable`."""
        await self._send(topic, key, value, partition)

    async def _send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:
        """Kafka's acknowledgement (acks=all) within `timeout`, or `KafkaUnavailable`.

        When the producer knows the topic's partitions, handing the record over waits at
        most for room in the partition's batch, which aiokafka bounds by its request timeout
        (`timeout` too, and already past the deadline then); the wait for the acknowledgement
        is then bounded by one timer that fails the record's future at the deadline, cheaper
        than `asyncio.timeout` (a task cancellation scope) on a path every event takes.
        Otherwise (no metadata yet: the producer may wait for it) the whole send runs under
        `asyncio.timeout`. Either way nothing is acknowledged that Kafka did not acknowledge.
        """
        producer = self.producer
        try:
            if partition is None or not producer.client.cluster.partitions_for_topic(topic):
                async with asyncio.timeout(self.timeout):
                    await producer.send_and_wait(topic, value=value, key=key, partition=partition)
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            future = await producer.send(topic, value=value, key=key, partition=partition)
            if not future.done():
                timer = loop.call_at(deadline, _expire, future)
                try:
                    await future
                finally:
                    timer.cancel()
            else:
                future.result()
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            raise KafkaUnavailable(str(exc) or type(exc).__name__) from exc


def _expire(future: asyncio.Future[Any]) -> None:
    """The publish deadline passed: the waiting request fails (aiokafka skips a done future)."""
    if not future.done():
        future.set_exception(asyncio.TimeoutError("not acknowledged within the publish timeout"))


Row = tuple[bytes, "bytes | None", list[tuple[str, bytes]]]  # key, value (None: a deletion), headers


async def send_records(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: Sequence[Row]) -> list[tuple[asyncio.Future[Any], int]]:
    """Send `records` to one partition in as few record batches as the producer's batch size
    allows: (the batch's future, how many records it holds), in order.

    One future per batch instead of a `send` and a future per record: for a burst of
    records (a bridge's receive, a pipeline batch's rows) most of aiokafka's cost.
    """
    sent: list[tuple[asyncio.Future[Any], int]] = []
    builder, count = producer.create_batch(), 0
    for key, value, headers in records:
        # A full builder refuses the record; an empty one takes it whatever its size.
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            sent.append(await _submit(producer, builder, topic, partition, count))
            builder, count = producer.create_batch(), 0
            builder.append(key=key, value=value, timestamp=None, headers=headers)
        count += 1
    if count:
        sent.append(await _submit(producer, builder, topic, partition, count))
    return sent


async def _submit(producer: AIOKafkaProducer, builder: Any, topic: str, partition: int,
                  count: int) -> tuple[asyncio.Future[Any], int]:
    builder.close()  # complete: the sender need not linger for more
    return await producer.send_batch(builder, topic, partition=partition), count


async def anchor_group(kafka: str | KafkaConnection, group: str, anchors: dict[str, bytes], partitions: int) -> None:
    """Give each empty partition of the `anchors` topics a committed offset of 1 for `group`.

    The agents commit only from a known committed offset (`agent_commits.py`), and Faust
    learns it when partitions are assigned, but aiokafka seeks to (and Faust records)
    committed offsets above 0 only. So, before a worker consumes, an empty partition gets
    one harmless record (its topic's anchor: an expire command for nothing) and the group
    commits past it. (Before the agents counted their own commits, records in flight on a
    partition never committed were skipped after a rebalance: the first record of a
    partition was lost in the two-worker crash test.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**client_options(kafka), group_id=group, enable_auto_commit=False)
    await consumer.start()
    producer: AIOKafkaProducer | None = None
    try:
        tps = [TopicPartition(topic, p) for topic in anchors for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        empty = [tp for tp in tps if ends[tp] == 0 and await consumer.committed(tp) is None]
        if not empty:
            return
        producer = AIOKafkaProducer(**client_options(kafka), acks="all", enable_idempotence=True)
        await producer.start()
        offsets = {}
        for tp in empty:
            sent = await producer.send_and_wait(tp.topic, value=anchors[tp.topic], key=b'"anchor"', partition=tp.partition)
            if sent.offset == 0:  # nothing else landed first: committing past it skips nothing
                offsets[tp] = 1
        if offsets:
            await consumer.commit(offsets)
    except KafkaError as exc:  # a worker of the group is already consuming (and so has anchored)
        log.info("consumer group %s not anchored: %s", group, exc)
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()


def anchor_records(ingest_topic: str, dead_letter_topic: str, **others: bytes) -> dict[str, bytes]:
    """Each agent input topic's harmless record: an expire command for nothing (`others`: topic
    name -> its record, for agents defined elsewhere)."""
    from .ingestion import EXPIRE

    return {
        ingest_topic: IngestRecord(uid="anchor", project_id="", kind=EXPIRE, event_type="", data=[], created_at="").dumps(),
        dead_letter_topic: orjson.dumps({"project_id": "", EXPIRE_DEAD_LETTERS: []}),
        **others,
    }


async def ensure_topics(kafka: str | KafkaConnection, names: list[str], partitions: int, *, compacted: bool = False,
                        max_message_bytes: int | None = None, layout: Layout | None = None) -> None:
    """Create the topics with the partition count ids are minted for, or check those that exist.

    `layout` (replicas, min.insync.replicas) defaults to one replica, for tools and tests; the
    worker creates its topics with the configured layout first (`app.create_topics`).
    """
    specs = [TopicSpec(name, partitions, compacted=compacted, max_message_bytes=max_message_bytes) for name in names]
    await ensure_layout(kafka, specs, layout or Layout())
