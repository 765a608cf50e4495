"""The agent: ingest topic -> (dedup, store, match) -> delivery topic."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterable

from . import direct_handoff, metrics
from .app import active_keys, app, dead_letter_topic, dead_letters_table, delivery_topic, ingest_topic, settings
from .ingestion import ingest
from .ids import scoped
from .publisher import EXPIRE_DEAD_LETTERS
from .retention import expired, sweep
from .table_writes import Batch


log = logging.getLogger(__name__)

#: How long the agent waits for its config view to reach a record's config offset.
#: Only a cold start or a config partition outage can take this long.
CONFIG_WAIT = 30.0


#: At most this many ingest records are processed (and their rows written) together. A batch
#: holds the event loop for its whole processing (about 0.1 ms per record), and the HTTP
#: requests of the same worker wait meanwhile: 1,000 cost REST 12% of its rate and 14 ms of p99.
BATCH_MAX = 200
#: How long a batch collects records before it is processed. Every batch costs a RocksDB
#: write and a Kafka record batch per table partition, so batches of a few records would
#: halve throughput; this is also the most an event waits for its batch.
BATCH_WITHIN = 0.005


@app.agent(ingest_topic)
async def process(records: Any) -> None:
    """Dedup, store and route each record; write a batch's rows and deliveries together.

    A batch's records become committable only once Kafka holds every row and
    delivery of it (`agent_commits`).
    """
    app.agent_commits.install(app.consumer)  # before the first assignment
    direct_handoff.install(app.consumer)
    tables = app.event_tables
    # Never route with an empty config view (a worker starting on a backlog).
    await app.config_store.ready.wait()
    consumed, produced = ingest_topic.get_topic_name(), delivery_topic.get_topic_name()
    partitions = settings.partitions
    async for events in records.take_events(BATCH_MAX, within=BATCH_WITHIN):
        metrics.record_consumed(consumed, len(events))
        needed = max(event.value.config_offset for event in events)
        if app.config_store.position < needed:
            await app.config_store.caught_up_to(needed, timeout=CONFIG_WAIT)
        batch = Batch(tables, delivery_topic)
        for event in events:
            record = event.value
            for delivery in ingest(record, config=app.config_store, tables=batch.tables(event.message.partition)):
                batch.add_delivery(delivery.endpoint_id, delivery, partitions)
        await batch.write(app.producer._ensure_producer(), produced)
        app.agent_commits.written(events)
        metrics.record_produced(produced, batch.delivery_count)


@app.agent(dead_letter_topic)
async def keep_dead_letters(stream: AsyncIterable[Any]) -> None:
    """Dead letters become listable: `GET /api/v1/projects/{id}/dead-letters`."""
    consumed = dead_letter_topic.get_topic_name()
    app.agent_commits.install(app.consumer)
    async for event in stream.events():  # type: ignore[attr-defined]
        metrics.record_consumed(consumed)
        key, document = event.key, event.value
        if isinstance(document, dict) and EXPIRE_DEAD_LETTERS in document:
            for uid in document[EXPIRE_DEAD_LETTERS]:
                dead_letters_table.pop(scoped(document["project_id"], uid), None)
        else:
            dead_letters_table[key] = document
        app.agent_commits.written([event])  # Faust flushes its table writes before it commits


@app.timer(interval=settings.retention_sweep_interval)
async def enforce_retention() -> None:
    """Send expire commands for local events and dead letters past their project's retention."""
    if not app.config_store.ready.is_set() or app.rebalancing:
        return
    try:
        projects, active = app.config_store.all("project"), active_keys(app)
        for command in sweep(app.event_tables.events, projects, active=active, partitions=settings.partitions):
            await app.publisher.publish(command)
        for project_id, uids in expired(dead_letters_table, projects, active=active, now=datetime.now(timezone.utc)):
            await app.publisher.expire_dead_letters(project_id, uids)
    except Exception:  # a failed sweep is retried next interval; it must never stop the worker
        log.exception("retention sweep failed")
