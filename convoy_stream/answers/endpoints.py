"""An endpoint as Convoy answers it (`datastore.Endpoint`)."""

from __future__ import annotations

from typing import Any

from ..secrets_redaction import ENDPOINT_SECRET_PATHS, redact
from . import with_defaults

#: Convoy's `HTTP_TIMEOUT` (seconds), what it stores when no timeout is given.
HTTP_TIMEOUT = 10
CONTENT_TYPE = "application/json"

#: Written on every endpoint by Convoy; `null` where Convoy writes null when its circuit
#: breaker and delivery statistics are off, which is always the case here (no deliveries).
DEFAULTS: dict[str, Any] = {
    "owner_id": "", "description": "", "slack_webhook_url": "", "teams_webhook_url": "", "support_email": "",
    "advanced_signatures": True, "status": "active", "http_timeout": HTTP_TIMEOUT, "authentication": None,
    "rate_limit": 0, "rate_limit_duration": 0, "content_type": CONTENT_TYPE,
    "failure_rate": None, "cb_state": None, "period_failure_rate": None,
    "success_count": None, "failure_count": None, "retry_count": None, "deleted_at": None,
}


def secret_uid(endpoint: dict[str, Any]) -> str:
    """The id of the endpoint's one secret: stable, so a client sees the same secret every read."""
    return f"{endpoint['uid']}-secret"


def endpoint_answer(endpoint: dict[str, Any], *, show_secret: bool = False) -> dict[str, Any]:
    """The endpoint as Convoy writes it; its secret shown only when `show_secret` (at creation)."""
    shown = endpoint if show_secret else redact(endpoint, ENDPOINT_SECRET_PATHS)
    answer = with_defaults(shown, DEFAULTS)
    answer["secrets"] = [{
        "uid": secret_uid(endpoint), "value": shown.get("secret") or "", "expires_at": None,
        "created_at": endpoint.get("created_at", ""), "updated_at": endpoint.get("updated_at", ""), "deleted_at": None,
    }] if endpoint.get("secret") else []
    return answer
