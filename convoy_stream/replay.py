"""Replay: an event sent afresh to the subscriptions that match it now.

Convoy's `PUT /events/{id}/replay` and `POST /events/batchreplay`. A replay is
a command on the ingest topic (kind `replay`), on the partition of the events
it names, so the agent that owns them applies it (`ingestion.ingest`): only
that agent writes their rows. The API answers once Kafka holds the command;
the agent then emits the fresh delivery records.

Which subscriptions, as in Convoy: an event of a source (a webhook or a broker
message of an incoming project) goes to the source's subscriptions; any other
goes to the subscriptions of the endpoints it went to (`endpoints`), or their
catch-all. Each is filtered again by event type, body and headers, with the
config as it is now: an endpoint deleted since is skipped, a subscription
added since is included.

Each delivery of a replay gets a new uid: its event's uid, the subscription's
8 characters (`routing.delivery_uid`) and 8 from the replay id. Applying the
same command twice (Kafka redelivers after a crash) gives the same uids, and
the row keeps each once. A duplicate event (`is_duplicate_event`) is never
replayed: its original is the event to replay.

Pure functions; `replay_event` is what a dashboard calls to know what a replay
of a stored event would emit.
"""

from __future__ import annotations

from typing import Any, Iterable

from ulid import ULID

from .ids import by_partition
from .records import Delivery, IngestRecord
from .routing import EVENT_UID_LENGTH, ConfigView, Match, _subscription_suffix, build_deliveries, catch_all_subscription, delivery_uid, route, subscription_accepts

#: `IngestRecord.kind` of a replay command.
REPLAY = "replay"

#: Most deliveries one event row keeps; the oldest replays' deliveries are dropped first
#: (their records were emitted; only their lookups go). Bounds a row replayed many times.
MAX_DELIVERIES_PER_EVENT = 1000


def replay_commands(project_id: str, event_uids: Iterable[str], *, replay_id: str, now: str,
                    partitions: int) -> list[IngestRecord]:
    """One command per partition, naming the events of that partition (their ids name it)."""
    return [IngestRecord.build(uid=uids[0], project_id=project_id, kind=REPLAY, event_type="",
                               data={"replay_id": replay_id, "events": uids}, created_at=now)
            for uids in by_partition(project_id, event_uids, partitions).values()]


def replay_delivery_uid(event_uid: str, subscription_uid: str, replay_id: str) -> str:
    """A replay's delivery uid: starts with its event's, so lookups find it on the event's row."""
    return delivery_uid(event_uid, subscription_uid) + _subscription_suffix(replay_id)


def is_replay_delivery(delivery_uid: str) -> bool:
    """Whether a delivery was emitted by a replay (its uid carries a replay's 8 characters)."""
    return len(delivery_uid) > EVENT_UID_LENGTH + 8


def emitted_by(delivery_uid: str, replay_id: str) -> bool:
    """Whether a delivery was emitted by the replay `replay_id` (`replay_delivery_uid`)."""
    return is_replay_delivery(delivery_uid) and delivery_uid.endswith(_subscription_suffix(replay_id))


#: How long after a replay a dashboard waits for its deliveries before it says none came
#: (a replay that matches no subscription now emits nothing).
SETTLE_SECONDS = 60


def progress(replay_id: str, deliveries: list[dict[str, Any]], *, now: float) -> dict[str, Any] | None:
    """What became of the replay `replay_id` among an event's `deliveries` (None: not a replay id).

    `uids`: the deliveries it emitted; `waiting`: none yet, and it is recent enough that the
    pipeline may still be applying it (its id's time is when it was queued).
    """
    try:
        queued_at = ULID.from_str(replay_id).timestamp
    except ValueError:
        return None
    uids = [d["uid"] for d in deliveries if emitted_by(d.get("uid", ""), replay_id)]
    return {"id": replay_id, "uids": uids, "waiting": not uids and now - queued_at < SETTLE_SECONDS}


def replayable(document: dict[str, Any]) -> bool:
    return not document.get("is_duplicate_event")


def replay_event(document: dict[str, Any], config: ConfigView, *, replay_id: str,
                 replayed_at: str) -> tuple[dict[str, Any], list[Delivery]]:
    """The stored event row after the replay, and the deliveries to emit (fresh uids).

    `document` is the row the events table holds (`records.event_document`).
    """
    if not replayable(document):
        return document, []
    record = _record_of(document)
    emitted = [Delivery.build(**{**d.asdict(), "uid": replay_delivery_uid(record.uid, d.subscription_id, replay_id),
                                 "created_at": replayed_at})
               for d in build_deliveries(record, _current_matches(document, record, config))]
    known = {d["uid"] for d in document.get("deliveries", [])}
    added = [{k: v for k, v in d.asdict().items() if k != "data"} for d in emitted if d.uid not in known]
    deliveries = [*document.get("deliveries", []), *added][-MAX_DELIVERIES_PER_EVENT:]
    updated = {
        **document,
        "deliveries": deliveries,
        "endpoints": sorted({*document.get("endpoints", []), *(d.endpoint_id for d in emitted)}),
        "status": "Success" if emitted else document.get("status", "Failure"),
        "updated_at": replayed_at,
        "acknowledged_at": replayed_at,
    }
    return updated, emitted


def _record_of(document: dict[str, Any]) -> IngestRecord:
    """The event as the router reads it. Deliveries carry the headers the first ones did."""
    first = (document.get("deliveries") or [{}])[0]
    headers = dict(first.get("headers") or {}) or {
        name: values[0] for name, values in (document.get("headers") or {}).items()
        if values and name.lower() != "x-broker-message-id"}
    for generated in ("X-Convoy-Idempotency-Key", "x-broker-message-id"):
        headers.pop(generated, None)  # build_deliveries adds them again
    raw = document.get("raw") or None
    return IngestRecord.build(
        uid=document["uid"], project_id=document["project_id"], kind="webhook" if document.get("source_id") else "single",
        event_type=document.get("event_type", ""), data=document.get("data"), created_at=document.get("created_at", ""),
        owner_id=document.get("owner_id", ""), source_id=document.get("source_id", ""),
        idempotency_key=document.get("idempotency_key", ""), headers={k.lower(): v for k, v in headers.items()},
        forward_headers=headers, broker_message_id=document.get("broker_message_id", ""), raw=raw,
    )


def _current_matches(document: dict[str, Any], record: IngestRecord, config: ConfigView) -> list[Match]:
    if record.source_id:
        return route(record, config)
    found: list[Match] = []
    for endpoint_id in document.get("endpoints") or []:
        endpoint = config.endpoint(record.project_id, endpoint_id)
        if endpoint is None:
            continue
        subscriptions = config.subscriptions_for_endpoint(endpoint_id) or [catch_all_subscription(endpoint)]
        found.extend(Match(s, endpoint) for s in subscriptions if subscription_accepts(s, record))
    return found
