"""From an event to its deliveries: which subscriptions match, what each delivery carries.

Pure functions over the event and a config view, so matching is tested
without Kafka. Convoy's rules (docs/convoy-behaviour.md#routing):
- outgoing single: the endpoint's subscriptions; none -> a catch-all;
- outgoing fan-out: the same for every endpoint of the owner;
- outgoing broadcast: the same for every endpoint of the project;
- incoming (webhooks): subscriptions bound to the event's source;
then event types (`*` catch-all) and body/header filters.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Protocol

from .filters import event_type_matches, matches, matches_headers
from .records import Delivery, IngestRecord

IDEMPOTENCY_HEADER = "X-Convoy-Idempotency-Key"


class ConfigView(Protocol):
    def endpoint(self, project_id: str, uid: str) -> dict[str, Any] | None: ...
    def endpoints_by_owner(self, project_id: str, owner_id: str) -> list[dict[str, Any]]: ...
    def subscriptions_for_endpoint(self, endpoint_id: str) -> list[dict[str, Any]]: ...
    def subscriptions_for_source(self, source_id: str) -> list[dict[str, Any]]: ...
    def project_entities(self, kind: str, project_id: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Match:
    subscription: dict[str, Any]
    endpoint: dict[str, Any]


def catch_all_subscription(endpoint: dict[str, Any]) -> dict[str, Any]:
    """The subscription Convoy creates for an endpoint that has none."""
    return {
        "uid": f"default-{endpoint['uid']}",
        "name": f"{endpoint.get('name', '')}-subscription",
        "project_id": endpoint["project_id"],
        "endpoint_id": endpoint["uid"],
        "source_id": "",
        "filter_config": {"event_types": ["*"], "filter": {"headers": {}, "body": {}}},
    }


def candidates(record: IngestRecord, config: ConfigView) -> list[Match]:
    """Subscriptions the event could go to, before type and content filters."""
    if record.kind == "webhook":
        return _with_endpoints(config, record.project_id, config.subscriptions_for_source(record.source_id))
    if record.kind == "broadcast":
        endpoints = config.project_entities("endpoint", record.project_id)
    elif record.kind == "fanout":
        endpoints = config.endpoints_by_owner(record.project_id, record.owner_id)
    else:
        endpoint = config.endpoint(record.project_id, record.endpoint_id)
        endpoints = [endpoint] if endpoint else []
    found: list[Match] = []
    for endpoint in endpoints:
        subscriptions = config.subscriptions_for_endpoint(endpoint["uid"]) or [catch_all_subscription(endpoint)]
        found.extend(Match(subscription, endpoint) for subscription in subscriptions)
    return found


def _with_endpoints(config: ConfigView, project_id: str, subscriptions: Iterable[dict[str, Any]]) -> list[Match]:
    found = []
    for subscription in subscriptions:
        endpoint = config.endpoint(project_id, subscription.get("endpoint_id", ""))
        if endpoint is not None:
            found.append(Match(subscription, endpoint))
    return found


def subscription_accepts(subscription: dict[str, Any], record: IngestRecord) -> bool:
    filter_config = subscription.get("filter_config") or {}
    if not event_type_matches(filter_config.get("event_types") or ["*"], record.event_type):
        return False
    content = filter_config.get("filter") or {}
    if content.get("body") and not matches(content["body"], record.data):
        return False
    if content.get("headers") and not matches_headers(content["headers"], _all_headers(record)):
        return False
    return True


def _all_headers(record: IngestRecord) -> dict[str, str]:
    headers = {**record.headers, **{k.lower(): v for k, v in record.forward_headers.items()}}
    if record.broker_message_id:
        headers["x-broker-message-id"] = record.broker_message_id
    return headers


def route(record: IngestRecord, config: ConfigView) -> list[Match]:
    return [m for m in candidates(record, config) if subscription_accepts(m.subscription, record)]


def delivery_uid(event_uid: str, subscription_uid: str) -> str:
    """`<event uid>` + 8 characters derived from the subscription.

    The same for a replayed event (consumers drop repeats by uid), sorts with
    its event, and names the event it belongs to, so a lookup by delivery id
    goes straight to the worker and table row holding that event.
    """
    return event_uid + _subscription_suffix(subscription_uid)


@lru_cache(maxsize=65536)
def _subscription_suffix(subscription_uid: str) -> str:
    """Cached: the same few subscriptions recur in every batch (base32 is pure Python)."""
    digest = hashlib.blake2b(subscription_uid.encode(), digest_size=5).digest()
    return base64.b32encode(digest).decode()


def event_uid_of(delivery_uid_: str) -> str:
    return delivery_uid_[:EVENT_UID_LENGTH]


EVENT_UID_LENGTH = 26


def build_deliveries(record: IngestRecord, matches_: list[Match]) -> list[Delivery]:
    """One delivery per match."""
    headers = dict(record.forward_headers)
    if record.idempotency_key:
        headers[IDEMPOTENCY_HEADER] = record.idempotency_key
    if record.broker_message_id:
        headers["x-broker-message-id"] = record.broker_message_id
    deliveries = []
    for match in matches_:
        subscription, endpoint = match.subscription, match.endpoint
        deliveries.append(Delivery.build(
            uid=delivery_uid(record.uid, subscription["uid"]),
            event_id=record.uid,
            project_id=record.project_id,
            endpoint_id=endpoint["uid"],
            subscription_id=subscription["uid"],
            event_type=record.event_type,
            status="Scheduled" if endpoint.get("status", "active") == "active" else "Discarded",
            headers=headers,
            data=record.data if record.raw is None else record.raw,
            created_at=record.created_at,
            source_id=record.source_id,
            idempotency_key=record.idempotency_key,
            broker_message_id=record.broker_message_id,
            url=endpoint.get("url", ""),
        ))
    return deliveries
