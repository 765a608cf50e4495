"""The aiokafka producer under Faust's, and aiokafka's broker connections."""

from __future__ import annotations

from typing import Any


def aiokafka_producer(faust_producer: Any) -> Any:
    """The started `AIOKafkaProducer` Faust's producer sends with (its changelog and topic writes)."""
    return faust_producer._ensure_producer()


def connected(producer: Any) -> bool:
    """Whether an `AIOKafkaProducer` holds at least one live broker connection."""
    conns = getattr(producer.client, "_conns", {})
    return any(conn.connected() for conn in conns.values())
