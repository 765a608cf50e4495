"""The OpenAPI request schemas, generated from the field tables the validators read."""

from __future__ import annotations

from typing import Any

from .endpoints import ENDPOINT
from .events import EVENT_SHAPES
from .projects import PROJECT, PROJECT_UPDATE
from .sources import SOURCE
from .subscriptions import SUBSCRIPTION


def request_schemas() -> dict[str, dict[str, Any]]:
    """Component name -> schema of every request body the API validates."""
    return {
        "ProjectCreate": PROJECT.schema(),
        "ProjectUpdate": PROJECT_UPDATE.schema(),
        "EndpointInput": ENDPOINT.schema(),
        "SubscriptionInput": SUBSCRIPTION.schema(),
        "SubscriptionUpdate": SUBSCRIPTION.schema(all_optional=True, description="Only the fields sent change."),
        "SourceInput": SOURCE.schema(),
        "EventSingle": EVENT_SHAPES["single"].schema(),
        "EventFanout": EVENT_SHAPES["fanout"].schema(),
        "EventBroadcast": EVENT_SHAPES["broadcast"].schema(),
        "EventDynamic": EVENT_SHAPES["dynamic"].schema(),
    }
