"""Inbound webhook verification for HTTP sources (Convoy's ``pkg/verifier``, extended).

The web view builds a :class:`WebhookRequest` from the raw request, gets a verifier with
:func:`build_verifier` and calls ``verify``; any :class:`VerificationError` means 400
``Request verification failed``, a :class:`VerifierConfigError` means the source cannot
verify anything (400 ``source has no valid verifier configured``).
"""

from .auth import ApiKeyVerifier, BasicAuthVerifier, NoopVerifier
from .base import DEFAULT_TOLERANCE_SECONDS, ENCODINGS, HASH_ALGORITHMS, Keyring, Verifier, WebhookRequest
from .errors import (
    AuthHeaderInvalid,
    AuthMismatch,
    BodyHashMismatch,
    BodyHashMissing,
    RequestUrlInvalid,
    SignatureAlgorithmUnsupported,
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
    TimestampInvalid,
    TimestampMissing,
    TimestampOutsideTolerance,
    UnknownProvider,
    UnknownVerifierType,
    VerificationError,
    VerifierConfigError,
)
from .factory import PROVIDERS, VERIFIER_TYPES, build_verifier
from .hmac_signature import (
    ConvoyVerifier,
    GitHubVerifier,
    HMACVerifier,
    ShopifyVerifier,
    TwitterVerifier,
    twitter_crc_response,
)
from .timestamped import SlackVerifier, StandardWebhooksVerifier, StripeVerifier
from .twilio_signature import TwilioVerifier

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "ENCODINGS",
    "HASH_ALGORITHMS",
    "PROVIDERS",
    "VERIFIER_TYPES",
    "ApiKeyVerifier",
    "AuthHeaderInvalid",
    "AuthMismatch",
    "BasicAuthVerifier",
    "BodyHashMismatch",
    "BodyHashMissing",
    "ConvoyVerifier",
    "GitHubVerifier",
    "HMACVerifier",
    "Keyring",
    "NoopVerifier",
    "RequestUrlInvalid",
    "ShopifyVerifier",
    "SignatureAlgorithmUnsupported",
    "SignatureEncodingInvalid",
    "SignatureMismatch",
    "SignatureMissing",
    "SlackVerifier",
    "StandardWebhooksVerifier",
    "StripeVerifier",
    "TimestampInvalid",
    "TimestampMissing",
    "TimestampOutsideTolerance",
    "TwilioVerifier",
    "TwitterVerifier",
    "UnknownProvider",
    "UnknownVerifierType",
    "VerificationError",
    "Verifier",
    "VerifierConfigError",
    "WebhookRequest",
    "build_verifier",
    "twitter_crc_response",
]
