"""Errors raised while building or running a source verifier.

Two families, because the ingest endpoint answers them differently:

* :class:`VerificationError` - the *request* failed verification. The caller answers
  400 ``Request verification failed`` for every subclass (never reveal which part
  failed: docs/decisions.md#decision-1). The subclass name is for logs and metrics only.
* :class:`VerifierConfigError` - the *source* is misconfigured (empty secret, unknown
  verifier type, ...). The caller answers 400 ``source has no valid verifier configured``
  and, at source create/update time, can reject the config up front.

Messages are fixed strings that never contain a secret, a signature or any request
bytes, so ``f"{type(exc).__name__}: {exc}"`` is always safe to log.
"""

from __future__ import annotations


class VerificationError(Exception):
    """The request did not prove it came from the configured sender."""


class SignatureMissing(VerificationError):
    """No signature header, an empty one, or one without the scheme's required prefix."""


class SignatureEncodingInvalid(VerificationError):
    """The signature header is present but is not valid hex/base64 or not parseable."""


class SignatureMismatch(VerificationError):
    """The signature is well formed but no configured secret produces it."""


class SignatureAlgorithmUnsupported(VerificationError):
    """The request names a signing algorithm this verifier does not implement."""


class TimestampMissing(VerificationError):
    """A scheme with replay protection arrived without its timestamp."""


class TimestampInvalid(VerificationError):
    """The timestamp is not a plain non-negative integer of Unix seconds."""


class TimestampOutsideTolerance(VerificationError):
    """Authentic signature, but the timestamp is outside the replay window."""


class BodyHashMissing(VerificationError):
    """Twilio: a non-form body arrived without ``bodySHA256`` in the URL, so the
    signature would not cover it."""


class BodyHashMismatch(VerificationError):
    """Twilio: ``bodySHA256`` in the URL does not match the body that arrived."""


class RequestUrlInvalid(VerificationError):
    """Twilio signs the URL; one we cannot parse cannot be verified."""


class AuthHeaderInvalid(VerificationError):
    """The Authorization (or API-key) header is missing or not in the expected shape."""


class AuthMismatch(VerificationError):
    """Well-formed credentials that do not match the configured ones."""


class VerifierConfigError(Exception):
    """The source's verifier configuration cannot produce a working verifier."""


class UnknownVerifierType(VerifierConfigError):
    """``verifier.type`` is not one of noop, hmac, basic_auth, api_key (fail closed)."""


class UnknownProvider(VerifierConfigError):
    """``provider`` is set to a name we have no verifier for.

    Convoy answers this case with 400 ``Provider type undefined``; catch this subclass
    before :class:`VerifierConfigError` to keep that message.
    """
