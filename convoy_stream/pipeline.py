"""The agent: ingest topic -> (dedup, store, match) -> delivery topic."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterable

import orjson

from . import clock, dead_letters, metrics, request_log
from .app import app, dead_letter_topic, dead_letters_table, delivery_topic, ingest_topic, request_log_table, request_log_topic, settings
from .faust_ext.producer import aiokafka_producer
from .ingestion import ingest
from .ids import scoped
from .records import IngestRecord
from .retention import expired, sweep
from .table_writes import Batch


log = logging.getLogger(__name__)

#: How long the agent waits for its config view to reach a record's config offset.
#: Only a cold start or a config partition outage can take this long.
CONFIG_WAIT = 30.0


@app.task
async def process() -> None:
    """Dedup, store and route each ingest record; write a batch's rows and deliveries together.

    The batches come from the ingest feed (`ingest_feed.py`), not a Faust stream. A batch's
    records become committable only once Kafka holds every row and delivery of it
    (`agent_commits`).
    """
    # Never route with an empty config view (a worker starting on a backlog).
    await app.config_store.ready.wait()
    try:
        await app.ingest_feed.run(process_batch)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # Faust crashes the app too; /health says why meanwhile
        app.liveness.failed(f"the pipeline task stopped: {exc!r}")
        raise


async def process_batch(messages: list[Any]) -> None:
    metrics.record_consumed(CONSUMED, len(messages))
    records = [(message, record) for message in messages if (record := _decode(message)) is not None]
    needed = max((record.config_offset for _, record in records), default=-1)
    if app.config_store.position < needed:
        await app.config_store.caught_up_to(needed, timeout=CONFIG_WAIT)
    batch = Batch(app.event_tables, delivery_topic)
    partitions = settings.partitions
    for message, record in records:
        for delivery in ingest(record, config=app.config_store, tables=batch.tables(message.partition)):
            batch.add_delivery(delivery.endpoint_id, delivery, partitions)
    await batch.write(aiokafka_producer(app.producer), PRODUCED)
    app.agent_commits.written(messages)
    metrics.record_produced(PRODUCED, batch.delivery_count)


CONSUMED, PRODUCED = ingest_topic.get_topic_name(), delivery_topic.get_topic_name()


def _decode(message: Any) -> IngestRecord | None:
    """The record our `Publisher` wrote; None (logged, and counted as written) for anything else."""
    try:
        return IngestRecord.from_data(orjson.loads(message.value))
    except Exception:
        log.error("offset %s of %s is not an ingest record; skipped", message.offset, message.tp, exc_info=True)
        metrics.record_skipped(CONSUMED)
        return None


#: Tests only (`dead_letters.TEST_CRASH_ON_DEAD_LETTER`); "" (the default) never matches.
_crash_marker = dead_letters.crash_marker_for_tests()


@app.agent(dead_letter_topic)
async def keep_dead_letters(stream: AsyncIterable[Any]) -> None:
    """Dead letters become listable: `GET /api/v1/projects/{id}/dead-letters`. A record that is
    not a dead letter (another tool wrote it) is skipped, logged and counted (`dead_letters.read`)."""
    consumed = dead_letter_topic.get_topic_name()
    try:
        async for event in stream.events():  # type: ignore[attr-defined]
            metrics.record_consumed(consumed)
            message = event.message
            try:
                record = dead_letters.read(event.key, event.value)
            except dead_letters.NotADeadLetter as exc:
                log.error("%s[%d]@%d is not a dead letter (%s); skipped", message.topic, message.partition,
                          message.offset, exc)
                metrics.record_skipped(consumed)
            else:
                if isinstance(record, dead_letters.Expire):
                    for uid in record.uids:
                        dead_letters_table.pop(scoped(record.project_id, uid), None)
                else:
                    if _crash_marker and _crash_marker in record.key:
                        raise dead_letters.InjectedCrash(record.key)
                    dead_letters_table[record.key] = record.document
            app.agent_commits.written([message])  # Faust flushes its table writes before it commits
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # Faust restarts the agent, which meets the same record again
        app.liveness.failed(f"the dead-letter agent crashed: {exc!r}")
        raise


@app.agent(request_log_topic)
async def keep_request_log(stream: AsyncIterable[Any]) -> None:
    """Turned-away webhook requests become listable: `GET /api/v1/projects/{id}/requests`."""
    consumed = request_log_topic.get_topic_name()
    try:
        async for event in stream.events():  # type: ignore[attr-defined]
            metrics.record_consumed(consumed)
            request_log.apply(request_log_table, event.value)
            app.agent_commits.written([event.message])  # Faust flushes its table writes before it commits
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # Faust restarts the agent, which meets the same record again
        app.liveness.failed(f"the request log agent crashed: {exc!r}")
        raise


@app.timer(interval=settings.retention_sweep_interval)
async def enforce_retention() -> None:
    """Send expire commands for local events and dead letters past their project's retention."""
    if not app.config_store.ready.is_set() or app.rebalancing:
        return
    try:
        projects, active = app.config_store.all("project"), app.active_keys()
        for command in sweep(app.event_tables.events, projects, active=active, partitions=settings.partitions):
            await app.publisher.publish(command)
        for project_id, uids in expired(dead_letters_table, projects, active=active, now=clock.now()):
            await app.publisher.expire_dead_letters(project_id, uids)
        for project_id, uids in request_log.expired(request_log_table, projects, active=active, now=clock.now()):
            for key, value, partition in request_log.expire_commands(project_id, uids, settings.partitions):
                await app.publisher.send_raw(request_log_topic.get_topic_name(), key, value, partition)
    except Exception:  # a failed sweep is retried next interval; it must never stop the worker
        log.exception("retention sweep failed")
