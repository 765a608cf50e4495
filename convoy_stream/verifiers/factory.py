"""Turn a Convoy source object into a verifier, failing closed on anything unclear.

Selection order is Convoy's (``api/ingest.go``):

1. ``provider`` non-empty: that provider's verifier keyed with ``verifier.hmac.secret``,
   whatever ``verifier.type`` says.
2. otherwise ``verifier.type``: ``hmac``, ``basic_auth``, ``api_key``, ``noop``; an empty
   or absent type is ``noop`` (Convoy's read layer does the same).
3. any other type or provider: :class:`VerifierConfigError` (issue #2656: never fall
   back to accepting everything).

Because building is pure and raises only :class:`VerifierConfigError`, the same call
can validate a source at create/update time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .. import clock
from .auth import ApiKeyVerifier, BasicAuthVerifier, NoopVerifier
from .base import DEFAULT_TOLERANCE_SECONDS, ENCODINGS, Clock, Keyring, Verifier, hashlib_name
from .errors import UnknownProvider, UnknownVerifierType, VerifierConfigError
from .hmac_signature import ConvoyVerifier, GitHubVerifier, HMACVerifier, ShopifyVerifier, TwitterVerifier
from .timestamped import SlackVerifier, StandardWebhooksVerifier, StripeVerifier, standard_webhooks_key
from .twilio_signature import TwilioVerifier

#: Provider names accepted in ``source.provider`` (docs/decisions.md#decision-18).
PROVIDERS: tuple[str, ...] = (
    "github",
    "shopify",
    "twitter",
    "stripe",
    "slack",
    "standard_webhooks",
    "svix",
    "twilio",
    "convoy",
)

#: Values of ``verifier.type`` (the empty string also means noop).
VERIFIER_TYPES: tuple[str, ...] = ("noop", "hmac", "basic_auth", "api_key")

CONVOY_DEFAULT_HEADER = "X-Convoy-Signature"


def build_verifier(source: Mapping[str, Any], *, now: Callable[[], float] = clock.seconds) -> Verifier:
    """Build the verifier for ``source`` (a Convoy source object,
    docs/convoy-behaviour.md#source-entity).

    ``now`` is the only clock any verifier reads (replay windows, secret expiry).
    Raises :class:`VerifierConfigError` (or its subclasses :class:`UnknownProvider`,
    :class:`UnknownVerifierType`) when the config cannot verify anything.
    """
    verifier = _mapping(source.get("verifier"), "verifier")
    provider = source.get("provider") or ""
    if not isinstance(provider, str):
        raise UnknownProvider("provider must be a string")
    if provider:
        return _provider_verifier(provider, _mapping(verifier.get("hmac"), "verifier.hmac"), now)

    kind = verifier.get("type") or ""
    if kind in ("", "noop"):
        return NoopVerifier()
    if kind == "hmac":
        hmac_cfg = _mapping(verifier.get("hmac"), "verifier.hmac", required="invalid verifier config for hmac")
        return HMACVerifier(
            header_name=_required_str(hmac_cfg, "header", "header cannot be empty"),
            hash_name=hashlib_name(_required_str(hmac_cfg, "hash", "hash algorithm cannot be empty")),
            encoding=_encoding(_required_str(hmac_cfg, "encoding", "encoding cannot be empty")),
            keys=_keyring(hmac_cfg, now),
        )
    if kind == "basic_auth":
        cfg = _mapping(verifier.get("basic_auth"), "verifier.basic_auth", required="invalid verifier config for basic auth")
        return BasicAuthVerifier(
            username=_required_str(cfg, "username", "basic auth username cannot be empty"),
            password=_required_str(cfg, "password", "basic auth password cannot be empty"),
        )
    if kind == "api_key":
        cfg = _mapping(verifier.get("api_key"), "verifier.api_key", required="invalid verifier config for api key")
        header_name = cfg.get("header_name") or ""
        if not isinstance(header_name, str):
            raise VerifierConfigError("api key header_name must be a string")
        return ApiKeyVerifier(
            header_name=header_name,
            header_value=_required_str(cfg, "header_value", "api key header_value cannot be empty"),
        )
    raise UnknownVerifierType("unknown verifier type")


def _provider_verifier(provider: str, hmac_cfg: Mapping[str, Any], now: Clock) -> Verifier:
    if provider not in PROVIDERS:
        raise UnknownProvider("provider type undefined")
    tolerance = _tolerance(hmac_cfg)
    if provider in ("standard_webhooks", "svix"):
        keys = _keyring(hmac_cfg, now, derive=standard_webhooks_key)
        families = ("webhook", "svix") if provider == "standard_webhooks" else ("svix", "webhook")
        return StandardWebhooksVerifier(keys, now=now, tolerance_seconds=tolerance, families=families)
    keys = _keyring(hmac_cfg, now)
    if provider == "github":
        return GitHubVerifier(keys)
    if provider == "shopify":
        return ShopifyVerifier(keys)
    if provider == "twitter":
        return TwitterVerifier(keys)
    if provider == "stripe":
        return StripeVerifier(keys, now=now, tolerance_seconds=tolerance)
    if provider == "slack":
        return SlackVerifier(keys, now=now, tolerance_seconds=tolerance)
    if provider == "twilio":
        return TwilioVerifier(keys)
    # provider == "convoy": the hmac fields are meaningful here, with Convoy's defaults.
    return ConvoyVerifier(
        header_name=_optional_str(hmac_cfg, "header") or CONVOY_DEFAULT_HEADER,
        hash_name=hashlib_name(_optional_str(hmac_cfg, "hash") or "SHA256"),
        encoding=_encoding(_optional_str(hmac_cfg, "encoding") or "hex"),
        keys=keys,
        now=now,
        tolerance_seconds=tolerance,
    )


def _mapping(value: Any, field: str, *, required: str | None = None) -> Mapping[str, Any]:
    if value is None:
        if required is not None:
            raise VerifierConfigError(required)
        return {}
    if not isinstance(value, Mapping):
        raise VerifierConfigError(f"{field} must be an object")
    return value


def _optional_str(cfg: Mapping[str, Any], key: str) -> str:
    value = cfg.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise VerifierConfigError(f"{key} must be a string")
    return value.strip()


def _required_str(cfg: Mapping[str, Any], key: str, message: str) -> str:
    value = cfg.get(key)
    if not isinstance(value, str) or not value.strip():
        raise VerifierConfigError(message)
    return value


def _encoding(value: str) -> str:
    encoding = value.strip().lower()
    if encoding not in ENCODINGS:
        raise VerifierConfigError("please provide a valid encoding type")
    return encoding


def _tolerance(cfg: Mapping[str, Any]) -> int:
    value = cfg.get("tolerance_seconds")
    if value is None:
        return DEFAULT_TOLERANCE_SECONDS
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise VerifierConfigError("tolerance_seconds must be a positive integer")
    return value


def _utf8_key(secret: str) -> bytes:
    return secret.encode("utf-8")


def _keyring(cfg: Mapping[str, Any], now: Clock, *, derive: Callable[[str], bytes] = _utf8_key) -> Keyring:
    """Current secret plus, during a rotation, the previous one and its expiry."""
    secret = cfg.get("secret")
    if not isinstance(secret, str) or not secret.strip():
        raise VerifierConfigError("secret cannot be empty")
    current = derive(secret)
    if not current:
        raise VerifierConfigError("secret cannot be empty")

    previous_secret = cfg.get("previous_secret")
    if previous_secret is None or previous_secret == "":
        return Keyring(current)
    if not isinstance(previous_secret, str) or not previous_secret.strip():
        raise VerifierConfigError("previous_secret must be a non-empty string")
    previous = derive(previous_secret)
    if not previous:
        raise VerifierConfigError("previous_secret cannot be empty")
    # A previous secret with no expiry would stay valid forever: refuse the config.
    expires_at = _instant(cfg.get("previous_secret_expires_at"))
    return Keyring(current, previous, expires_at, now)


def _instant(value: Any) -> float:
    """``previous_secret_expires_at``: RFC 3339 with an offset, or Unix seconds."""
    if isinstance(value, bool) or value is None or value == "":
        raise VerifierConfigError("previous_secret_expires_at is required with previous_secret")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            seconds = float(text)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError as exc:
                raise VerifierConfigError("previous_secret_expires_at is not RFC 3339") from exc
            if parsed.tzinfo is None:
                raise VerifierConfigError("previous_secret_expires_at needs a UTC offset")
            seconds = parsed.timestamp()
    else:
        raise VerifierConfigError("previous_secret_expires_at must be a string or a number")
    if not math.isfinite(seconds):
        raise VerifierConfigError("previous_secret_expires_at must be finite")
    return seconds
