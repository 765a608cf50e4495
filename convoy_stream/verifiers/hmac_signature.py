"""Body-only HMAC schemes: generic (Convoy ``hmac``), GitHub, Shopify, Twitter, and
Convoy's own simple/advanced outbound signatures.

These mirror Convoy's ``pkg/verifier`` HMAC verifier: read one header, optionally strip
a provider prefix, decode, and compare against HMAC(secret, raw body) in constant time.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from .base import (
    DEFAULT_TOLERANCE_SECONDS,
    Clock,
    Keyring,
    WebhookRequest,
    decode_signature,
    header,
    mac,
    parse_unix_seconds,
)
from .errors import (
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
    TimestampMissing,
    TimestampOutsideTolerance,
)

Extract = Callable[[str], str]


def strip_prefix(prefix: str) -> Extract:
    """Provider hook (Convoy's ``GetSignature``): keep what follows ``prefix``.

    A value without the prefix yields ``""`` and so fails as *missing*, which is what
    Convoy's Twitter test expects for ``malformed_signature_without_prefix``.
    """

    def extract(value: str) -> str:
        return value[len(prefix) :] if value.startswith(prefix) else ""

    return extract


class HMACVerifier:
    """``HMAC(hash, secret, body)`` carried in one header as hex or base64.

    No prefix handling unless a provider passes ``extract``; no timestamp (Convoy's
    generic HMAC has none, so it cannot protect against replay).
    """

    def __init__(
        self,
        *,
        header_name: str,
        hash_name: str,
        encoding: str,
        keys: Keyring,
        extract: Extract | None = None,
    ) -> None:
        self.header_name = header_name
        self.hash_name = hash_name
        self.encoding = encoding
        self.keys = keys
        self.extract = extract

    def verify(self, request: WebhookRequest) -> None:
        value = header(request.headers, self.header_name) or ""
        if self.extract is not None:
            value = self.extract(value)
        value = value.strip()
        if not value:
            raise SignatureMissing("signature cannot be empty")
        provided = decode_signature(value, self.encoding)
        self.keys.require_match(lambda key: mac(key, request.body, self.hash_name), [provided])


class GitHubVerifier(HMACVerifier):
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""

    def __init__(self, keys: Keyring) -> None:
        super().__init__(
            header_name="X-Hub-Signature-256",
            hash_name="sha256",
            encoding="hex",
            keys=keys,
            extract=strip_prefix("sha256="),
        )


class ShopifyVerifier(HMACVerifier):
    """``X-Shopify-Hmac-SHA256: <base64 HMAC-SHA256(secret, body)>``."""

    def __init__(self, keys: Keyring) -> None:
        super().__init__(
            header_name="X-Shopify-Hmac-SHA256", hash_name="sha256", encoding="base64", keys=keys
        )


class TwitterVerifier(HMACVerifier):
    """``X-Twitter-Webhooks-Signature: sha256=<base64 HMAC-SHA256(secret, body)>``."""

    def __init__(self, keys: Keyring) -> None:
        super().__init__(
            header_name="X-Twitter-Webhooks-Signature",
            hash_name="sha256",
            encoding="base64",
            keys=keys,
            extract=strip_prefix("sha256="),
        )


def twitter_crc_response(secret: str, crc_token: str) -> dict[str, str]:
    """Answer to X's CRC challenge (``GET ?crc_token=T``); proves we hold the secret."""
    digest = mac(secret.encode("utf-8"), crc_token.encode("utf-8"), "sha256")
    return {"response_token": "sha256=" + base64.b64encode(digest).decode("ascii")}


_ADVANCED_START = re.compile(r"^(?:t|v[0-9]+)=")
_VERSION_KEY = re.compile(r"^v[0-9]+$")


class ConvoyVerifier:
    """Webhooks signed by another Convoy instance (``pkg/signature``).

    *Simple*: the header is ``enc(HMAC(hash, secret, body))``, verified like generic HMAC.
    *Advanced*: ``t=<unix>,v1=<sig>[,v1=...][,v2=...]`` with keys in any order, signing
    ``"<t>," + body``; any ``v*`` value may match (rolled secrets, several versions).
    Timestamps older than the tolerance are refused; future ones pass, as Convoy's SDKs do.

    A value is treated as advanced if it contains a comma or starts with ``t=``/``vN=``:
    neither hex nor base64 of a real MAC can look like that, so a stripped advanced
    header can never be mistaken for a simple one.
    """

    def __init__(
        self,
        *,
        header_name: str,
        hash_name: str,
        encoding: str,
        keys: Keyring,
        now: Clock,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        self.simple = HMACVerifier(header_name=header_name, hash_name=hash_name, encoding=encoding, keys=keys)
        self.header_name = header_name
        self.hash_name = hash_name
        self.encoding = encoding
        self.keys = keys
        self.now = now
        self.tolerance_seconds = tolerance_seconds

    def verify(self, request: WebhookRequest) -> None:
        value = (header(request.headers, self.header_name) or "").strip()
        if "," in value or _ADVANCED_START.match(value):
            self._verify_advanced(value, request.body)
        else:
            self.simple.verify(request)

    def _verify_advanced(self, value: str, body: bytes) -> None:
        timestamps: list[str] = []
        signatures: list[str] = []
        for item in value.split(","):
            key, sep, val = item.strip().partition("=")
            if not sep:
                raise SignatureEncodingInvalid("malformed advanced signature header")
            if key == "t":
                timestamps.append(val)
            elif _VERSION_KEY.match(key):
                signatures.append(val)
        if not timestamps:
            raise TimestampMissing("advanced signature without timestamp")
        if len(timestamps) > 1:
            raise SignatureEncodingInvalid("advanced signature with several timestamps")
        ts_text = timestamps[0]
        timestamp = parse_unix_seconds(ts_text)
        if not signatures:
            raise SignatureMissing("advanced signature without v* values")
        provided: list[bytes] = []
        for sig in signatures:
            try:
                provided.append(decode_signature(sig, self.encoding))
            except (SignatureEncodingInvalid, SignatureMissing):
                continue  # another v* value may still match; an undecodable one cannot
        signed = ts_text.encode("ascii") + b"," + body
        if not self.keys.matches(lambda key: mac(key, signed, self.hash_name), provided):
            raise SignatureMismatch("signature does not match")
        # Checked after the MAC so a logged TimestampOutsideTolerance means "authentic
        # but stale" (a replay or a slow queue), never a forgery.
        if timestamp < self.now() - self.tolerance_seconds:
            raise TimestampOutsideTolerance("timestamp older than tolerance")
