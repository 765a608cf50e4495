"""A source as Convoy answers it (`datastore.Source`)."""

from __future__ import annotations

from typing import Any

from ..secrets_redaction import SOURCE_SECRET_PATHS, redact
from . import with_defaults

DEFAULTS: dict[str, Any] = {
    "provider": "", "is_disabled": False, "url": "", "mask_id": "", "provider_config": None, "pub_sub": None,
    "event_type_location": "", "body_function": None, "header_function": None, "deleted_at": None,
}
_VERIFIER_SECTIONS = ("hmac", "basic_auth", "api_key")
_PUB_SUB_SECTIONS = ("sqs", "google", "kafka", "amqp")
_HMAC_FIELDS = ("header", "hash", "secret", "encoding")


def source_answer(source: dict[str, Any], *, show_secrets: bool = False) -> dict[str, Any]:
    """The source as Convoy writes it; secrets shown only when `show_secrets` (at creation)."""
    answer = with_defaults(source if show_secrets else redact(source, SOURCE_SECRET_PATHS), DEFAULTS)
    answer["forward_headers"] = list(answer.get("forward_headers") or [])
    answer["idempotency_keys"] = list(answer.get("idempotency_keys") or [])
    answer["custom_response"] = {"body": "", "content_type": ""} | dict(answer.get("custom_response") or {})
    answer["verifier"] = _verifier(answer.get("verifier"))
    if isinstance(answer.get("pub_sub"), dict):
        answer["pub_sub"] = {section: None for section in _PUB_SUB_SECTIONS} | answer["pub_sub"]
    return answer


def _verifier(verifier: Any) -> dict[str, Any]:
    """Convoy writes each verifier section, null when unused; an HMAC section has all four fields."""
    shaped: dict[str, Any] = {"type": "noop"} | {section: None for section in _VERIFIER_SECTIONS}
    if isinstance(verifier, dict):
        shaped |= verifier
    if isinstance(shaped.get("hmac"), dict):
        shaped["hmac"] = {field: "" for field in _HMAC_FIELDS} | shaped["hmac"]
    return shaped
