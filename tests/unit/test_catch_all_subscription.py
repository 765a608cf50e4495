"""The catch-all subscription an endpoint gets with its first event (`web/events.py`).

The first events for a new endpoint often arrive together, on several workers: each finds
no subscription and stores one. They must all store the same one, or every later event
of the endpoint gets one delivery per copy (seen in the rebalance churn test).
"""

from __future__ import annotations

import asyncio
from typing import Any

from convoy_stream.web.events import _ensure_subscription


class Config:
    """The config view as the handler sees it: a write shows once Kafka has it."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}

    def subscriptions_for_endpoint(self, endpoint_id: str) -> list[dict[str, Any]]:
        return [s for s in self.subscriptions.values() if s["endpoint_id"] == endpoint_id]

    async def put(self, kind: str, uid: str, value: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)  # Kafka's acknowledgement
        self.subscriptions[uid] = value


class Context:
    def __init__(self) -> None:
        self.config = Config()


def test_first_events_arriving_together_store_one_catch_all_subscription() -> None:
    endpoint = {"uid": "e1", "project_id": "p1", "name": "billing"}

    async def scenario() -> list[dict[str, Any]]:
        c = Context()
        await asyncio.gather(*(_ensure_subscription(c, endpoint) for _ in range(3)))  # type: ignore[arg-type]
        return c.config.subscriptions_for_endpoint("e1")

    [subscription] = asyncio.run(scenario())
    assert subscription["uid"] == "default-e1"  # the uid deliveries used before it was stored
    assert subscription["filter_config"]["event_types"] == ["*"]
