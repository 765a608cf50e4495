"""What happens to one ingest record: dedup, store, match, build deliveries.

Plain function over mapping-like tables so it is the same code in the Faust
agent and in unit tests. Runs in the agent that owns the record's partition,
which is the only writer of these keys, so the dedup check is exact.
"""

from __future__ import annotations

from typing import Any, MutableMapping

from .records import Delivery, IngestRecord, event_document
from .routing import ConfigView, build_deliveries, route


def ingest(
    record: IngestRecord,
    *,
    config: ConfigView,
    events: MutableMapping[str, Any],
    idempotency: MutableMapping[str, Any],  # dedup key -> [first event id, repeats...]
    deliveries: MutableMapping[str, Any],
    broker_ids: MutableMapping[str, Any],
    partitions: int,
) -> list[Delivery]:
    """Store the event and return the deliveries to emit.

    A record seen before (Kafka redelivers after a crash) re-emits the
    deliveries it already produced, with the same uids, so consumers can drop
    the repeats; it never becomes a duplicate of itself.
    """
    stored = events.get(record.uid)
    if stored is not None:
        return [Delivery.from_data(deliveries[uid]) for uid in stored["delivery_ids"] if uid in deliveries]

    duplicate = False
    if record.dedup_key:
        seen = idempotency.get(record.dedup_key) or []
        duplicate = bool(seen) and seen[0] != record.uid
        if record.uid not in seen:
            idempotency[record.dedup_key] = _bounded([*seen, record.uid])

    emitted = [] if duplicate else build_deliveries(record, route(record, config), partitions=partitions)
    status = "Duplicate" if duplicate else ("Success" if emitted else "Failure")
    events[record.uid] = event_document(
        record,
        is_duplicate=duplicate,
        endpoint_ids=sorted({d.endpoint_id for d in emitted}),
        delivery_ids=[d.uid for d in emitted],
        status=status,
    )
    for delivery in emitted:
        deliveries[delivery.uid] = delivery.asdict()
    if record.broker_message_id:
        key = f"{record.project_id}/{record.broker_message_id}"
        broker_ids[key] = _bounded([*(broker_ids.get(key) or []), record.uid])
    return emitted


#: How many event ids one idempotency key or broker message id remembers:
#: the first (the original, which decides dedup) and the latest repeats.
MAX_IDS_PER_KEY = 100


def _bounded(ids: list[str]) -> list[str]:
    if len(ids) <= MAX_IDS_PER_KEY:
        return ids
    return [ids[0], *ids[-(MAX_IDS_PER_KEY - 1):]]
