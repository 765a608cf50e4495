"""Shared-credential verifiers: noop, HTTP Basic, API key.

Convoy compares these with ``==`` and ignores Basic's scheme word; we check the scheme,
split ``user:password`` on the first colon so passwords may contain ``:``, and compare
in constant time (docs/decisions.md#decision-8,
docs/decisions.md#decision-9).
"""

from __future__ import annotations

import base64
import binascii

from .base import WebhookRequest, header, same_secret
from .errors import AuthHeaderInvalid, AuthMismatch


class NoopVerifier:
    """Accepts every request: a source with no verifier, or ``type: noop``."""

    def verify(self, request: WebhookRequest) -> None:
        return None


class BasicAuthVerifier:
    """``Authorization: Basic base64(user:password)``."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def verify(self, request: WebhookRequest) -> None:
        value = (header(request.headers, "Authorization") or "").strip()
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "basic" or not token:
            raise AuthHeaderInvalid("invalid header structure")
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise AuthHeaderInvalid("invalid header structure") from exc
        username, colon, password = decoded.partition(":")
        if not colon:
            raise AuthHeaderInvalid("invalid basic auth credentials")
        # Evaluate both comparisons: no early exit that would time which one failed.
        user_ok = same_secret(username, self.username)
        password_ok = same_secret(password, self.password)
        if not (user_ok & password_ok):
            raise AuthMismatch("invalid authorization header")


class ApiKeyVerifier:
    """The configured header must carry exactly the configured key.

    With a blank ``header_name`` (legacy Convoy rows only) the key is the second word of
    ``Authorization: <anything> <key>``.
    """

    def __init__(self, header_name: str, header_value: str) -> None:
        self.header_name = header_name.strip()
        self.header_value = header_value

    def verify(self, request: WebhookRequest) -> None:
        if self.header_name:
            provided = header(request.headers, self.header_name)
            if not provided:
                raise AuthHeaderInvalid("api key header missing")
        else:
            parts = (header(request.headers, "Authorization") or "").split(" ")
            if len(parts) != 2:
                raise AuthHeaderInvalid("invalid header structure")
            provided = parts[1]
        if not same_secret(provided, self.header_value):
            raise AuthMismatch("invalid authorization header")
