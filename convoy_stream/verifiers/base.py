"""Shared building blocks: the request value, the verifier interface, keys and decoding.

Everything here is pure: no I/O, and time only through an injected ``now`` callable so
replay windows and secret expiry can be tested at any instant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .errors import (
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
    TimestampInvalid,
    TimestampMissing,
    VerifierConfigError,
)

Clock = Callable[[], float]

#: The twelve hash names Convoy's source validation accepts (``config/algo``). Convoy
#: itself only implements SHA256 and SHA512 at runtime; we implement all of them
#: (docs/decisions.md#decision-7) through hashlib, whose name is the lower-cased Convoy name.
HASH_ALGORITHMS: tuple[str, ...] = (
    "MD5",
    "SHA1",
    "SHA224",
    "SHA256",
    "SHA384",
    "SHA512",
    "SHA3_224",
    "SHA3_256",
    "SHA3_384",
    "SHA3_512",
    "SHA512_224",
    "SHA512_256",
)

#: Signature encodings accepted by Convoy's HMAC verifier.
ENCODINGS: tuple[str, ...] = ("hex", "base64")

DEFAULT_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class WebhookRequest:
    """What a verifier may look at. Built by the web layer from the raw HTTP request.

    ``url`` is the full public URL as the provider called it (Twilio signs it), and
    ``body`` the raw bytes before any JSON/form conversion (signatures are over bytes).
    ``headers`` may use any case; use :func:`header` to read it.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


class Verifier(Protocol):
    """One method, as Convoy's ``VerifyRequest``: raise to refuse, return to accept."""

    def verify(self, request: WebhookRequest) -> None: ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP names are case-insensitive; Go canonicalises
    them, Python frameworks and test dicts do not). The first match wins."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def mac(key: bytes, message: bytes, hash_name: str = "sha256") -> bytes:
    """HMAC digest; ``hash_name`` is a hashlib name (lower-cased Convoy name)."""
    return hmac.digest(key, message, hash_name)


def hashlib_name(convoy_name: str) -> str:
    """Map a Convoy hash name (any case) to hashlib's, checking the platform has it
    (an OpenSSL in FIPS mode may lack MD5): better a config error than a 400 per request."""
    upper = convoy_name.strip().upper()
    if upper not in HASH_ALGORITHMS:
        raise VerifierConfigError(f"unsupported hash algorithm, expected one of {', '.join(HASH_ALGORITHMS)}")
    name = upper.lower()
    try:
        hashlib.new(name)
    except ValueError as exc:
        raise VerifierConfigError("hash algorithm not available on this platform") from exc
    return name


def decode_signature(value: str, encoding: str) -> bytes:
    """Decode a signature as Convoy does: hex in any case, or standard padded base64.

    Both decoders are strict (no embedded whitespace, no foreign characters), so a
    header cannot carry junk that a lenient decoder would silently drop.
    """
    if not value:
        raise SignatureMissing("signature cannot be empty")
    try:
        if encoding == "hex":
            return binascii.unhexlify(value)
        if encoding == "base64":
            return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureEncodingInvalid(f"cannot decode {encoding} encoded signature") from exc
    raise SignatureEncodingInvalid("invalid signature encoding")


def utf8(text: str) -> bytes:
    """Header text to bytes without ever raising: odd characters just fail to match."""
    return text.encode("utf-8", "surrogatepass")


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality for values whose length is public (MAC digests)."""
    return hmac.compare_digest(a, b)


def same_secret(a: str, b: str) -> bool:
    """Constant-time equality for secrets whose *length* is also secret (passwords,
    API keys): compare fixed-size digests so neither content nor length leaks."""
    return hmac.compare_digest(
        hashlib.sha256(utf8(a)).digest(),
        hashlib.sha256(utf8(b)).digest(),
    )


@dataclass(frozen=True)
class Keyring:
    """The HMAC keys a source accepts right now.

    ``previous`` lets an operator rotate a secret without dropping in-flight webhooks:
    it keeps verifying until ``previous_expires_at`` (Unix seconds), judged by the
    injected clock at each request, so expiry needs no config reload.
    """

    current: bytes
    previous: bytes | None = None
    previous_expires_at: float | None = None
    now: Clock | None = None

    def active(self) -> tuple[bytes, ...]:
        if self.previous is None or self.previous_expires_at is None or self.now is None:
            return (self.current,)
        if self.now() < self.previous_expires_at:
            return (self.current, self.previous)
        return (self.current,)

    def matches(self, sign: Callable[[bytes], bytes], candidates: list[bytes]) -> bool:
        """True if any active key signs to any of ``candidates`` (constant-time each)."""
        for key in self.active():
            expected = sign(key)
            for candidate in candidates:
                if same(expected, candidate):
                    return True
        return False

    def require_match(self, sign: Callable[[bytes], bytes], candidates: list[bytes]) -> None:
        if not self.matches(sign, candidates):
            raise SignatureMismatch("signature does not match")


def parse_unix_seconds(value: str | None) -> int:
    """Parse a replay-protection timestamp: ASCII digits only.

    Stricter than ``int()`` on purpose (no sign, spaces, underscores, ``Infinity`` or
    fractions), so the string we put in the signed message can only mean one instant.
    """
    if value is None or value == "":
        raise TimestampMissing("timestamp missing")
    if not (value.isascii() and value.isdigit()):
        raise TimestampInvalid("timestamp is not an integer number of seconds")
    return int(value)
