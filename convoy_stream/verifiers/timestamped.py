"""Providers whose signature covers a timestamp: Stripe, Slack, Standard Webhooks, Svix.

Each follows its official library's rules (docs/decisions.md#decision-10), so that what we accept the
official verifier accepts too. Where a library is lenient in parsing (``int(" 12")``,
base64 that skips junk) we are strict; the set we accept is never larger.

The MAC is always checked before the timestamp: a logged
:class:`TimestampOutsideTolerance` then means "authentic but stale" (replay, or a
backed-up sender), never a forgery.
"""

from __future__ import annotations

import base64
import binascii

from .base import (
    DEFAULT_TOLERANCE_SECONDS,
    Clock,
    Keyring,
    WebhookRequest,
    header,
    mac,
    parse_unix_seconds,
    utf8,
)
from .errors import (
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
    TimestampMissing,
    TimestampOutsideTolerance,
    VerifierConfigError,
)


class StripeVerifier:
    """``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]``.

    Signed message ``"<t>." + body`` with HMAC-SHA256 keyed by the whole ``whsec_...``
    string (no base64 decoding). Any ``v1`` may match (Stripe sends one per active
    secret while rolling). Like stripe-python, only timestamps older than the tolerance
    are refused; a future ``t`` passes.
    """

    HEADER = "Stripe-Signature"

    def __init__(self, keys: Keyring, *, now: Clock, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.keys = keys
        self.now = now
        self.tolerance_seconds = tolerance_seconds

    def verify(self, request: WebhookRequest) -> None:
        value = header(request.headers, self.HEADER)
        if not value:
            raise SignatureMissing("Stripe-Signature header missing")
        timestamp_text: str | None = None
        signatures: list[bytes] = []
        for item in value.split(","):
            key, sep, val = item.partition("=")
            if not sep:
                continue
            if key == "t" and timestamp_text is None:  # stripe-python takes the first t
                timestamp_text = val
            elif key == "v1":
                signatures.append(utf8(val))
        if timestamp_text is None:
            raise TimestampMissing("Stripe-Signature without t")
        timestamp = parse_unix_seconds(timestamp_text)
        if not signatures:
            raise SignatureMissing("Stripe-Signature without v1")
        # stripe-python formats the timestamp with %d, so leading zeros are not signed.
        signed = b"%d." % timestamp + request.body
        # stripe-python compares lower-case hex *strings*; so do we.
        self.keys.require_match(lambda key: mac(key, signed).hex().encode("ascii"), signatures)
        if timestamp < self.now() - self.tolerance_seconds:
            raise TimestampOutsideTolerance("timestamp older than tolerance")


class SlackVerifier:
    """``X-Slack-Signature: v0=<hex>`` over ``"v0:<ts>:" + body`` with
    ``X-Slack-Request-Timestamp``; refused when ``abs(now - ts) > tolerance`` (both
    directions, as slack_sdk's ``SignatureVerifier``)."""

    SIGNATURE_HEADER = "X-Slack-Signature"
    TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"

    def __init__(self, keys: Keyring, *, now: Clock, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.keys = keys
        self.now = now
        self.tolerance_seconds = tolerance_seconds

    def verify(self, request: WebhookRequest) -> None:
        signature = header(request.headers, self.SIGNATURE_HEADER)
        if not signature or not signature.startswith("v0="):
            raise SignatureMissing("X-Slack-Signature missing or without v0=")
        timestamp_text = header(request.headers, self.TIMESTAMP_HEADER)
        timestamp = parse_unix_seconds(timestamp_text)
        assert timestamp_text is not None  # parse_unix_seconds raised otherwise
        signed = b"v0:" + timestamp_text.encode("ascii") + b":" + request.body
        provided = utf8(signature)
        # slack_sdk compares the whole "v0=<lower hex>" string.
        self.keys.require_match(lambda key: b"v0=" + mac(key, signed).hex().encode("ascii"), [provided])
        if abs(self.now() - timestamp) > self.tolerance_seconds:
            raise TimestampOutsideTolerance("timestamp outside tolerance")


def standard_webhooks_key(secret: str) -> bytes:
    """Key derivation shared by Standard Webhooks and Svix: drop an optional ``whsec_``,
    then base64-decode, tolerating missing padding exactly as the official libraries do
    (they append ``==`` and decode leniently)."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_") :]
    try:
        return base64.b64decode(secret + "==")
    except (binascii.Error, ValueError) as exc:
        raise VerifierConfigError("secret is not base64 (after an optional whsec_ prefix)") from exc


class StandardWebhooksVerifier:
    """Standard Webhooks / Svix: ``<family>-id``, ``-timestamp``, ``-signature``.

    Signed message ``"<id>.<ts>." + body``, HMAC-SHA256 with the base64-decoded secret;
    the signature header holds space-separated ``v1,<base64>`` entries, any of which may
    match (other versions, e.g. ``v1a`` ed25519, are skipped). Two-sided tolerance.

    Both header families are read; ``families`` gives the preference per field
    (svix-python prefers ``svix-*`` and falls back to ``webhook-*``).
    """

    def __init__(
        self,
        keys: Keyring,
        *,
        now: Clock,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        families: tuple[str, ...] = ("webhook", "svix"),
    ) -> None:
        self.keys = keys
        self.now = now
        self.tolerance_seconds = tolerance_seconds
        self.families = families

    def _field(self, request: WebhookRequest, name: str) -> str | None:
        for family in self.families:
            value = header(request.headers, f"{family}-{name}")
            if value:
                return value
        return None

    def verify(self, request: WebhookRequest) -> None:
        msg_id = self._field(request, "id")
        signature = self._field(request, "signature")
        timestamp_text = self._field(request, "timestamp")
        if not signature:
            raise SignatureMissing("webhook-signature missing")
        if not msg_id:
            raise SignatureMissing("webhook-id missing")
        timestamp = parse_unix_seconds(timestamp_text)

        provided: list[bytes] = []
        for entry in signature.split():
            version, sep, value = entry.partition(",")
            if not sep:
                # The official libraries fail on such an entry; so do we.
                raise SignatureEncodingInvalid("malformed webhook-signature entry")
            if version != "v1":
                continue
            try:
                provided.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        if not provided:
            raise SignatureMissing("webhook-signature has no v1 entry")

        signed = utf8(msg_id) + b".%d." % timestamp + request.body
        if not self.keys.matches(lambda key: mac(key, signed), provided):
            raise SignatureMismatch("signature does not match")
        now = self.now()
        if timestamp < now - self.tolerance_seconds or timestamp > now + self.tolerance_seconds:
            raise TimestampOutsideTolerance("timestamp outside tolerance")
