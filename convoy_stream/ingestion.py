"""What happens to one ingest record: dedup, store, match, build deliveries.

Plain functions over mapping-like tables so they are the same code in the
Faust agent and in unit tests. They run in the agent that owns the record's
partition, the only writer of these keys, so the dedup check is exact.

Table keys (all on the event's partition, see `ids.mint_id`):
- events:      "<project>/<event uid>"     -> event document, with its deliveries
- idempotency: "<project>:<idempotency key>" -> [first event uid, repeats...]
- broker_ids:  "<project>/<broker message id>" -> [event uids]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, MutableMapping

from .ids import scoped
from .records import Delivery, IngestRecord, deliveries_of, event_document
from .replay import REPLAY, replay_event
from .routing import ConfigView, build_deliveries, route

#: How many event ids one idempotency key or broker message id remembers:
#: the first (the original, which decides dedup) and the latest repeats.
MAX_IDS_PER_KEY = 100

#: `IngestRecord.kind` of the retention sweeper's delete commands (`retention.py`).
EXPIRE = "expire"


@dataclass
class Tables:
    events: MutableMapping[str, Any]
    idempotency: MutableMapping[str, Any]
    broker_ids: MutableMapping[str, Any]


def ingest(record: IngestRecord, *, config: ConfigView, tables: Tables) -> list[Delivery]:
    """Store the event and return the deliveries to emit.

    A record seen before (Kafka redelivers after a crash) re-emits the
    deliveries it already produced, with the same uids, so consumers can drop
    the repeats; it never becomes a duplicate of itself.
    """
    if record.kind == EXPIRE:
        expire(record.project_id, list(record.data or []), tables)
        return []
    if record.kind == REPLAY:
        return replay(record, config=config, tables=tables)
    key = scoped(record.project_id, record.uid)
    stored = tables.events.get(key)
    if stored is not None:
        # Written again on purpose: if the worker died before the first write's
        # changelog record left it, the row exists only in its local store, and
        # the next owner of the partition (recovering from the changelog) would
        # not have it.
        tables.events[key] = stored
        if record.dedup_key and record.uid in (tables.idempotency.get(record.dedup_key) or []):
            tables.idempotency[record.dedup_key] = tables.idempotency[record.dedup_key]
        _index_broker_message_id(record, tables)
        return [Delivery.from_data(d) for d in deliveries_of(stored)]

    duplicate = False
    if record.dedup_key:
        seen = tables.idempotency.get(record.dedup_key) or []
        duplicate = bool(seen) and seen[0] != record.uid
        if record.uid not in seen:
            tables.idempotency[record.dedup_key] = _bounded([*seen, record.uid])

    emitted = [] if duplicate else build_deliveries(record, route(record, config))
    status = "Duplicate" if duplicate else ("Success" if emitted else "Failure")
    tables.events[key] = event_document(record, is_duplicate=duplicate, deliveries=emitted, status=status)
    _index_broker_message_id(record, tables)
    return emitted


def replay(record: IngestRecord, *, config: ConfigView, tables: Tables) -> list[Delivery]:
    """Apply a replay command (`replay.py`) to the events it names that this partition holds."""
    command = record.data if isinstance(record.data, dict) else {}
    emitted: list[Delivery] = []
    for uid in command.get("events") or []:
        key = scoped(record.project_id, uid)
        document = tables.events.get(key)
        if document is None:  # expired meanwhile
            continue
        updated, deliveries = replay_event(document, config, replay_id=str(command.get("replay_id", "")),
                                           replayed_at=record.created_at)
        tables.events[key] = updated
        emitted.extend(deliveries)
    return emitted


def _index_broker_message_id(record: IngestRecord, tables: Tables) -> None:
    """Add the event to its broker message id's entry, or write the entry again (a replay)."""
    if record.broker_message_id:
        index_key = scoped(record.project_id, record.broker_message_id)
        indexed = tables.broker_ids.get(index_key) or []
        tables.broker_ids[index_key] = indexed if record.uid in indexed else _bounded([*indexed, record.uid])


def expire(project_id: str, event_uids: list[str], tables: Tables) -> None:
    """Forget events past retention, with their deliveries and index entries.

    Dropping the idempotency entry when its original expires is what bounds
    the dedup window to the retention period (docs/decisions.md#decision-15).
    """
    for uid in event_uids:
        document = tables.events.get(scoped(project_id, uid))
        if document is None:
            continue
        if document.get("dedup_key"):
            _forget(tables.idempotency, document["dedup_key"], uid, whole_if_first=True)
        if document.get("broker_message_id"):
            _forget(tables.broker_ids, scoped(project_id, document["broker_message_id"]), uid, whole_if_first=False)
        tables.events.pop(scoped(project_id, uid), None)


def _forget(index: MutableMapping[str, Any], key: str, uid: str, *, whole_if_first: bool) -> None:
    ids = index.get(key)
    if not ids or uid not in ids:
        return
    if whole_if_first and ids[0] == uid:
        index.pop(key, None)
        return
    remaining = [i for i in ids if i != uid]
    if remaining:
        index[key] = remaining
    else:
        index.pop(key, None)


def _bounded(ids: list[str]) -> list[str]:
    if len(ids) <= MAX_IDS_PER_KEY:
        return ids
    return [ids[0], *ids[-(MAX_IDS_PER_KEY - 1):]]
