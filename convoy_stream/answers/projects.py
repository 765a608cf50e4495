"""A project and its API key as Convoy answers them (`datastore.Project`, `datastore.APIKeyResponse`)."""

from __future__ import annotations

from typing import Any

from . import with_defaults

#: Written on every project by Convoy. `statistics` is null as on Convoy's project reads
#: (Convoy fills it on its statistics route only); no event counts are kept (`retained_events`).
DEFAULTS: dict[str, Any] = {
    "logo_url": "", "organisation_id": "", "statistics": None, "retained_events": 0, "deleted_at": None,
}

#: Written in every project config by Convoy, with the values that say what convoy-stream
#: does: no trace headers are added, a project may subscribe an endpoint more than once, a
#: dynamic event's URL makes its endpoint on demand, http endpoint URLs are accepted, and
#: there are no meta events or circuit breaker.
CONFIG_DEFAULTS: dict[str, Any] = {
    "add_event_id_trace_headers": False, "multiple_endpoint_subscriptions": True, "verify_dynamic_events": False,
    "allow_unmatched_dynamic_urls": True, "search_policy": "", "circuit_breaker": None,
}


def signature_version_uid(project_uid: str, index: int) -> str:
    """The id of a signature version: stable, so a client sees the same version every read."""
    return f"{project_uid}-signature-{index}"


def project_answer(project: dict[str, Any]) -> dict[str, Any]:
    """The project as Convoy writes it (its internal bookkeeping left out)."""
    answer = with_defaults({k: v for k, v in project.items() if k != "internal"}, DEFAULTS)
    config = dict(answer.get("config") or {})
    config = with_defaults(config, CONFIG_DEFAULTS)
    config["ssl"] = {"enforce_secure_endpoints": False} | dict(config.get("ssl") or {})
    config["meta_event"] = {"is_enabled": False, "type": "", "event_type": [], "url": "", "secret": "",
                            "pub_sub": None} | dict(config.get("meta_event") or {})
    signature = config.get("signature")
    if isinstance(signature, dict):
        config["signature"] = signature | {"versions": [
            {"uid": signature_version_uid(project["uid"], i), "created_at": project.get("created_at", "")} | version
            for i, version in enumerate(signature.get("versions") or [])]}
    answer["config"] = config
    return answer


def api_key_answer(api_key: dict[str, Any], key: str) -> dict[str, Any]:
    """The key as Convoy answers it at creation: the only time `key` (the secret) is shown."""
    shown = {k: v for k, v in api_key.items() if k != "digest"}
    return with_defaults(shown, {"expires_at": None}) | {"key": key}
