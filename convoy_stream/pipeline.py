"""The agent: ingest topic -> (dedup, store, match) -> delivery topic."""

from __future__ import annotations

from typing import AsyncIterable

from .app import app, delivery_topic, ingest_topic, settings
from .ingestion import ingest
from .records import IngestRecord


@app.agent(ingest_topic)
async def process(records: AsyncIterable[IngestRecord]) -> None:
    tables = app.event_tables
    async for record in records:
        for delivery in ingest(
            record,
            config=app.config_store,
            events=tables.events,
            idempotency=tables.idempotency,
            deliveries=tables.deliveries,
            broker_ids=tables.broker_ids,
            partitions=settings.partitions,
        ):
            await delivery_topic.send(key=delivery.endpoint_id, value=delivery)
