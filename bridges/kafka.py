"""Kafka bridge (aiokafka): an external cluster, or convoy-stream's own ("direct production").

- group: ``consumer_group_id``, else ``convoy-stream-<source uid>`` (Convoy used a single
  space, which made unrelated sources share a group). A new group starts at the earliest
  offset, as Convoy's kafka-go reader. Only committed transactional records are read.
- empty ``brokers`` means convoy-stream's own cluster (``kafka_bootstrap``, with its TLS/SASL
  settings): services that already speak Kafka produce to a topic there and this bridge
  ingests it.
- ack: offsets are committed manually. Per partition the bridge remembers the offsets it
  handed out in order; after an ack it commits just past the longest acked prefix, so a
  message that is still in flight or was rejected is never skipped (Convoy's later commits
  silently skipped failed messages). Offsets are tracked as delivered, not as ``+1``
  arithmetic, because transaction markers and compaction leave gaps.
- reject: seek each partition back to its earliest rejected offset, so the rejected message
  and everything after it is fetched again (messages after it that were already ingested come
  again and are deduplicated downstream: at-least-once).
- message id: the record key as text, or ``topic/partition/offset`` when there is no key.
  Headers: the record headers.
- auth: SASL PLAIN or SCRAM (SHA512 unless ``hash`` is SHA256, as Convoy), TLS with the
  system CAs when ``tls`` is true; unlike Convoy, ``tls`` also applies without ``auth``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from convoy_stream.kafka_connection import KafkaConnection, build_ssl_context, connection

from .base import DEFAULT_BATCH_SIZE, BrokerMessage, header_text, lower_headers

log = logging.getLogger(__name__)

RECEIVE_WAIT_MS = 1000


def group_id_for(source: Mapping[str, Any]) -> str:
    config = (source.get("pub_sub") or {}).get("kafka") or {}
    group = (config.get("consumer_group_id") or "").strip()
    return group or f"convoy-stream-{source.get('uid', '')}"


def security_options(auth: Mapping[str, Any] | None) -> dict[str, Any]:
    """aiokafka connection options for the source's ``auth`` block."""
    auth = auth or {}
    tls = bool(auth.get("tls"))
    kind = (auth.get("type") or "").lower()
    options: dict[str, Any] = {}
    if tls:
        options["ssl_context"] = build_ssl_context()
    if kind in ("plain", "scram"):
        options["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        if kind == "plain":
            options["sasl_mechanism"] = "PLAIN"
        else:
            hash_name = (auth.get("hash") or "SHA512").upper().replace("-", "")
            options["sasl_mechanism"] = "SCRAM-SHA-256" if hash_name == "SHA256" else "SCRAM-SHA-512"
        options["sasl_plain_username"] = auth.get("username") or ""
        options["sasl_plain_password"] = auth.get("password") or ""
    elif kind:
        raise ValueError("unsupported auth type")
    else:
        options["security_protocol"] = "SSL" if tls else "PLAINTEXT"
    return options


class _Tracker(ConsumerRebalanceListener):
    """Offsets handed out per partition, in order, with their acked flag.

    Partition state is dropped when the partition is assigned or revoked: whatever was in
    flight for it is re-read from the last commit by its (new) owner.
    """

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, OrderedDict[int, bool]] = {}

    def reset(self, partitions: Any) -> None:
        for tp in partitions:
            self.pending.pop(tp, None)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.reset(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.reset(assigned)


class KafkaConsumer:
    """One Kafka worker: one aiokafka consumer in the source's consumer group."""

    broker = "kafka"

    def __init__(
        self,
        source: Mapping[str, Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        kafka_bootstrap: str | KafkaConnection | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
    ) -> None:
        config = (source.get("pub_sub") or {}).get("kafka") or {}
        brokers = config.get("brokers") or []
        if isinstance(brokers, str):
            brokers = [b for b in brokers.split(",") if b.strip()]
        external = ",".join(b.strip() for b in brokers)
        own = connection(kafka_bootstrap) if kafka_bootstrap and not external else None
        self.bootstrap: str | None = external or (own.bootstrap if own else None)
        #: The connection options: the source's ``auth`` for an external cluster, the app's own
        #: settings for its own cluster.
        self._security = own.client_options() if own else None
        self.topic: str = config.get("topic_name") or ""
        self.group_id = group_id_for(source)
        self._auth = config.get("auth") or {}
        self.batch_size = batch_size
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._tracker = _Tracker()

    async def connect(self) -> None:
        await self.close()
        if not self.bootstrap:
            raise ValueError("brokers list is required (no own Kafka cluster configured)")
        if not self.topic:
            raise ValueError("topic name is required")
        self._tracker = _Tracker()
        consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            client_id="convoy-stream-bridge",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.batch_size,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            request_timeout_ms=15_000,  # Convoy's dial timeout
            **(self._security or {"bootstrap_servers": self.bootstrap, **security_options(self._auth)}),
        )
        consumer.subscribe(topics=[self.topic], listener=self._tracker)
        self._consumer = consumer
        try:
            await consumer.start()
        except BaseException:
            await self.close()
            raise

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        assert self._consumer is not None, "connect() first"
        batches = await self._consumer.getmany(timeout_ms=RECEIVE_WAIT_MS, max_records=max_messages)
        messages: list[BrokerMessage] = []
        for tp, records in batches.items():
            pending = self._tracker.pending.setdefault(tp, OrderedDict())
            for record in records:
                pending[record.offset] = False
                key = header_text(record.key) if record.key else ""
                messages.append(
                    BrokerMessage(
                        body=record.value or b"",
                        headers=lower_headers(record.headers or ()),
                        message_id=key or f"{record.topic}/{record.partition}/{record.offset}",
                        handle=(tp, record.offset),
                        delivery_id=f"{record.topic}/{record.partition}/{record.offset}",
                    )
                )
        return messages

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        assert self._consumer is not None, "connect() first"
        touched: set[TopicPartition] = set()
        for message in messages:
            tp, offset = message.handle
            pending = self._tracker.pending.get(tp)
            if pending is not None and offset in pending:
                pending[offset] = True
                touched.add(tp)
        commits: dict[TopicPartition, int] = {}
        for tp in touched:
            pending = self._tracker.pending[tp]
            last = None
            while pending:
                offset, acked = next(iter(pending.items()))
                if not acked:
                    break
                pending.popitem(last=False)
                last = offset
            if last is not None:
                commits[tp] = last + 1
        assigned = self._consumer.assignment()
        commits = {tp: offset for tp, offset in commits.items() if tp in assigned}
        if not commits:
            return
        try:
            await self._consumer.commit(commits)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            # The partitions moved to another worker mid-batch; it re-reads from the last
            # commit, so these records are ingested twice (deduplicated), never lost.
            log.info("kafka commit skipped after rebalance (%s): %s", self.group_id, exc)

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        assert self._consumer is not None, "connect() first"
        earliest: dict[TopicPartition, int] = {}
        for message in messages:
            tp, offset = message.handle
            earliest[tp] = min(offset, earliest.get(tp, offset))
        assigned = self._consumer.assignment()
        for tp, offset in earliest.items():
            pending = self._tracker.pending.get(tp)
            if pending is not None:
                for later in [o for o in pending if o >= offset]:
                    del pending[later]
            if tp in assigned:
                self._consumer.seek(tp, offset)

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:
                log.debug("kafka consumer stop failed", exc_info=True)
