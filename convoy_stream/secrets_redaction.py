"""Secrets are shown once, at creation, and never again.

Read answers replace every secret in a source or endpoint with a marker. An
update that sends the marker back (a client that did GET then PUT) keeps the
stored secret instead of overwriting it with the marker.
"""

from __future__ import annotations

import copy
from typing import Any

MARKER = "[REDACTED]"

#: Paths of secret fields inside a source document.
SOURCE_SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("verifier", "hmac", "secret"),
    ("verifier", "hmac", "previous_secret"),
    ("verifier", "basic_auth", "password"),
    ("verifier", "api_key", "header_value"),
    ("pub_sub", "sqs", "secret_key"),
    ("pub_sub", "google", "service_account"),
    ("pub_sub", "kafka", "auth", "password"),
    ("pub_sub", "amqp", "auth", "password"),
)
ENDPOINT_SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("secret",),
    ("authentication", "api_key", "header_value"),  # the credential sent to the endpoint
)


def _walk(document: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any], str] | None:
    node: Any = document
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    if isinstance(node, dict) and node.get(path[-1]):
        return node, path[-1]
    return None


def redact(document: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    shown = copy.deepcopy(document)
    for path in paths:
        found = _walk(shown, path)
        if found:
            node, key = found
            node[key] = MARKER
    return shown


def keep_stored_secrets(new: dict[str, Any], old: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    for path in paths:
        found = _walk(new, path)
        if found and found[0][found[1]] == MARKER:
            previous = _walk(old, path)
            found[0][found[1]] = previous[0][previous[1]] if previous else ""
    return new
