"""Convoy's own verifier vectors (docs/convoy-behaviour.md#test-vectors) and the generic schemes.

Every expected value below is copied from docs/convoy-behaviour.md#test-vectors or
docs/convoy-behaviour.md#provider-schemes (the providers' own documentation);
nothing is recomputed with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from convoy_stream.verifiers import (
    HASH_ALGORITHMS,
    PROVIDERS,
    AuthHeaderInvalid,
    AuthMismatch,
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
    WebhookRequest,
    build_verifier,
    twitter_crc_response,
)

PAYLOAD = b"Test Payload Body"
SHA512_HEX = (
    "83306382f5361d35351d6de45998f23b52f40bcf96befe4e92f137c0f1bf4a71"
    "19388b238d8f9d502ac77e6f1a8849a4778272667ed88d530cac8050bd1fee2d"
)
SHA512_B64 = "gzBjgvU2HTU1HW3kWZjyO1L0C8+Wvv5OkvE3wPG/SnEZOIsjjY+dUCrHfm8aiEmkd4JyZn7YjVMMrIBQvR/uLQ=="
SHA256_HEX = "d7a154547e7c35e31c4c820e20237650939c3d34dae136e30a7757ca61abb4cf"
SHA256_B64 = "16FUVH58NeMcTIIOICN2UJOcPTTa4TbjCndXymGrtM8="


def request(headers: dict[str, str], body: bytes = PAYLOAD, url: str = "https://gw.example/ingest/abc") -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


def hmac_source(hash_: str = "SHA512", encoding: str = "hex", header: str = "X-Convoy-Signature", secret: str = "Convoy", **extra: Any) -> dict[str, Any]:
    return {
        "provider": "",
        "verifier": {
            "type": "hmac",
            "hmac": {"header": header, "hash": hash_, "secret": secret, "encoding": encoding, **extra},
        },
    }


def provider_source(provider: str, secret: str = "Convoy", **hmac_extra: Any) -> dict[str, Any]:
    # The dashboard always sends header/hash/encoding; provider verifiers must ignore them.
    return {
        "provider": provider,
        "verifier": {
            "type": "hmac",
            "hmac": {"header": "X-Ignored", "hash": "SHA512", "encoding": "hex", "secret": secret, **hmac_extra},
        },
    }


# --- 9.1 pkg/verifier/verifier_test.go -------------------------------------------------


class TestConvoyHMACVectors:
    def test_valid_hex_request(self) -> None:
        build_verifier(hmac_source()).verify(request({"X-Convoy-Signature": SHA512_HEX}))

    def test_valid_base64_request(self) -> None:
        build_verifier(hmac_source(encoding="base64")).verify(request({"X-Convoy-Signature": SHA512_B64}))

    def test_hex_accepted_in_upper_case(self) -> None:
        build_verifier(hmac_source()).verify(request({"X-Convoy-Signature": SHA512_HEX.upper()}))

    def test_header_lookup_is_case_insensitive(self) -> None:
        verifier = build_verifier(hmac_source(header="X-Convoy-Signature"))
        verifier.verify(request({"x-convoy-signature": SHA512_HEX}))
        verifier.verify(request({"X-CONVOY-SIGNATURE": SHA512_HEX}))

    def test_invalid_signature(self) -> None:
        wrong = b"Obviously wrong hash".hex()
        with pytest.raises(SignatureMismatch):
            build_verifier(hmac_source()).verify(request({"X-Convoy-Signature": wrong}))

    def test_invalid_hex_encoding(self) -> None:
        with pytest.raises(SignatureEncodingInvalid):
            build_verifier(hmac_source()).verify(request({"X-Convoy-Signature": "Hash with characters outside hex"}))

    def test_invalid_base64_encoding(self) -> None:
        with pytest.raises(SignatureEncodingInvalid):
            build_verifier(hmac_source(encoding="base64")).verify(
                request({"X-Convoy-Signature": "Hash with characters outside %^&$*#@ base64"})
            )

    @pytest.mark.parametrize("value", ["", "   "])
    def test_empty_signature(self, value: str) -> None:
        with pytest.raises(SignatureMissing):
            build_verifier(hmac_source(encoding="base64")).verify(request({"X-Convoy-Signature": value}))

    def test_missing_header(self) -> None:
        with pytest.raises(SignatureMissing):
            build_verifier(hmac_source()).verify(request({}))

    def test_generic_hmac_does_not_strip_prefixes(self) -> None:
        # Convoy's custom_get_signature_fn case needs a provider hook; generic HMAC has none.
        with pytest.raises(SignatureEncodingInvalid):
            build_verifier(hmac_source(encoding="base64", header="X-Github-Signature")).verify(
                request({"X-Github-Signature": "sha256=" + SHA512_B64})
            )

    def test_tampered_body(self) -> None:
        with pytest.raises(SignatureMismatch):
            build_verifier(hmac_source()).verify(request({"X-Convoy-Signature": SHA512_HEX}, body=PAYLOAD + b" "))

    def test_wrong_secret(self) -> None:
        with pytest.raises(SignatureMismatch):
            build_verifier(hmac_source(secret="convoy")).verify(request({"X-Convoy-Signature": SHA512_HEX}))


class TestProviderVectors:
    def test_github_valid(self) -> None:
        build_verifier(provider_source("github")).verify(request({"X-Hub-Signature-256": "sha256=" + SHA256_HEX}))

    def test_github_without_prefix_is_missing(self) -> None:
        with pytest.raises(SignatureMissing):
            build_verifier(provider_source("github")).verify(request({"X-Hub-Signature-256": SHA256_HEX}))

    def test_github_tampered(self) -> None:
        with pytest.raises(SignatureMismatch):
            build_verifier(provider_source("github")).verify(
                request({"X-Hub-Signature-256": "sha256=" + SHA256_HEX}, body=b"Test Payload Bodz")
            )

    def test_github_docs_example(self) -> None:
        # docs/convoy-behaviour.md#provider-schemes: GitHub docs, "Testing the webhook payload validation".
        verifier = build_verifier(provider_source("github", secret="It's a Secret to Everybody"))
        sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        verifier.verify(request({"x-hub-signature-256": sig}, body=b"Hello, World!"))
        with pytest.raises(SignatureMismatch):
            verifier.verify(request({"x-hub-signature-256": sig}, body=b"Hello, World?"))

    def test_shopify_valid(self) -> None:
        build_verifier(provider_source("shopify")).verify(request({"X-Shopify-Hmac-SHA256": SHA256_B64}))

    def test_shopify_header_spelling_from_shopify_docs(self) -> None:
        build_verifier(provider_source("shopify")).verify(request({"X-Shopify-Hmac-Sha256": SHA256_B64}))

    def test_shopify_wrong_secret(self) -> None:
        with pytest.raises(SignatureMismatch):
            build_verifier(provider_source("shopify", secret="Convoy2")).verify(request({"X-Shopify-Hmac-SHA256": SHA256_B64}))

    def test_twitter_valid(self) -> None:
        build_verifier(provider_source("twitter")).verify(request({"X-Twitter-Webhooks-Signature": "sha256=" + SHA256_B64}))

    def test_twitter_malformed_signature_without_prefix(self) -> None:
        with pytest.raises(SignatureMissing):
            build_verifier(provider_source("twitter")).verify(request({"X-Twitter-Webhooks-Signature": SHA256_B64}))

    def test_twitter_missing_signature_header(self) -> None:
        with pytest.raises(SignatureMissing):
            build_verifier(provider_source("twitter")).verify(request({}))

    def test_provider_ignores_verifier_type(self) -> None:
        # Convoy: provider set -> provider verifier, whatever verifier.type says.
        source = {"provider": "github", "verifier": {"type": "noop", "hmac": {"secret": "Convoy"}}}
        with pytest.raises(SignatureMissing):
            build_verifier(source).verify(request({}))


class TestBasicAuth:
    @staticmethod
    def source(user: str = "convoy-ingester", password: str = "convoy-password") -> dict[str, Any]:
        return {"verifier": {"type": "basic_auth", "basic_auth": {"username": user, "password": password}}}

    @staticmethod
    def basic(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"{scheme} {token}"}

    @pytest.mark.parametrize("password", ["convoy-ingester", "convoy-password"])
    def test_valid(self, password: str) -> None:
        build_verifier(self.source(password=password)).verify(request(self.basic("convoy-ingester", password)))

    @pytest.mark.parametrize(
        ("user", "password"),
        [("wrong-username", "wrong-password"), ("bad-user", "convoy-password"), ("convoy-ingester", "bad-pass")],
    )
    def test_wrong_credentials(self, user: str, password: str) -> None:
        with pytest.raises(AuthMismatch):
            build_verifier(self.source()).verify(request(self.basic(user, password)))

    @pytest.mark.parametrize("value", ["Basic wrongbase64str", "Basic", "Basic ", "", "Bearer x"])
    def test_invalid_structure(self, value: str) -> None:
        with pytest.raises(AuthHeaderInvalid):
            build_verifier(self.source()).verify(request({"Authorization": value}))

    def test_no_header(self) -> None:
        with pytest.raises(AuthHeaderInvalid):
            build_verifier(self.source()).verify(request({}))

    def test_scheme_word_must_be_basic(self) -> None:
        # docs/decisions.md#decision-8: Convoy accepts "Foo <b64>"; we do not.
        verifier = build_verifier(self.source())
        with pytest.raises(AuthHeaderInvalid):
            verifier.verify(request(self.basic("convoy-ingester", "convoy-password", scheme="Foo")))
        verifier.verify(request(self.basic("convoy-ingester", "convoy-password", scheme="bAsIc")))

    def test_password_may_contain_colon(self) -> None:
        # docs/decisions.md#decision-8: split on the first ':' only.
        build_verifier(self.source(password="pa:ss:word")).verify(request(self.basic("convoy-ingester", "pa:ss:word")))

    def test_no_colon(self) -> None:
        token = base64.b64encode(b"convoy-ingester").decode()
        with pytest.raises(AuthHeaderInvalid):
            build_verifier(self.source()).verify(request({"Authorization": f"Basic {token}"}))

    def test_integration_vectors(self) -> None:
        # 9.2: Convoy/Convoy -> 200, "Convoy X"/"Convoy X" -> 400.
        verifier = build_verifier(self.source("Convoy", "Convoy"))
        verifier.verify(request(self.basic("Convoy", "Convoy")))
        with pytest.raises(AuthMismatch):
            verifier.verify(request(self.basic("Convoy X", "Convoy X")))


class TestApiKey:
    @staticmethod
    def source(header_name: str, value: str) -> dict[str, Any]:
        return {"verifier": {"type": "api_key", "api_key": {"header_name": header_name, "header_value": value}}}

    def test_bearer_is_not_stripped(self) -> None:
        with pytest.raises(AuthMismatch):
            build_verifier(self.source("Authorization", "sec_apikeysecret")).verify(
                request({"Authorization": "Bearer sec_invalidkey"})
            )
        with pytest.raises(AuthMismatch):
            build_verifier(self.source("Authorization", "sec_apikeysecret")).verify(
                request({"Authorization": "Bearer sec_apikeysecret"})
            )

    def test_custom_header(self) -> None:
        build_verifier(self.source("webhook-key", "sec_apikeysecret")).verify(request({"Webhook-Key": "sec_apikeysecret"}))

    def test_integration_vectors(self) -> None:
        verifier = build_verifier(self.source("X-Convoy-Signature", "Convoy"))
        verifier.verify(request({"X-Convoy-Signature": "Convoy"}))
        with pytest.raises(AuthMismatch):
            verifier.verify(request({"X-Convoy-Signature": "Convoy X"}))

    def test_missing_header(self) -> None:
        with pytest.raises(AuthHeaderInvalid):
            build_verifier(self.source("webhook-key", "k")).verify(request({}))

    def test_legacy_blank_header_name_uses_authorization_second_word(self) -> None:
        verifier = build_verifier(self.source("", "sec_apikeysecret"))
        verifier.verify(request({"Authorization": "Bearer sec_apikeysecret"}))
        verifier.verify(request({"Authorization": "Anything sec_apikeysecret"}))
        with pytest.raises(AuthMismatch):
            verifier.verify(request({"Authorization": "Bearer sec_other"}))
        with pytest.raises(AuthHeaderInvalid):
            verifier.verify(request({"Authorization": "sec_apikeysecret"}))


# --- 9.2 api/ingest_integration_test.go ---------------------------------------------


def test_integration_hmac_sha512_vector() -> None:
    verifier = build_verifier(hmac_source())
    body = b'{ "name": "convoy" }'
    good = (
        "4471d491560781f633f3e53fb68574084adf5b803de16e12c88d49e74e13bcaf"
        "a5ddad1247dffa71479ebd7a800c8af16f6f90a1be5a946140308bac4bd60260"
    )
    verifier.verify(request({"X-Convoy-Signature": good}, body=body))
    with pytest.raises(SignatureEncodingInvalid):
        verifier.verify(request({"X-Convoy-Signature": "hash with characters outside the hex range"}, body=body))
    with pytest.raises(SignatureMismatch):
        verifier.verify(request({"X-Convoy-Signature": good}, body=b'{"name":"convoy"}'))


def test_unknown_verifier_type_fails_closed() -> None:
    with pytest.raises(UnknownVerifierType):
        build_verifier({"provider": "", "verifier": {"type": "unknown-verifier"}})
    assert issubclass(UnknownVerifierType, VerifierConfigError)


@pytest.mark.parametrize("source", [{}, {"verifier": None}, {"verifier": {"type": ""}}, {"verifier": {"type": "noop"}}])
def test_noop_accepts_everything(source: dict[str, Any]) -> None:
    verifier = build_verifier(source)
    verifier.verify(request({}))
    verifier.verify(request({"X-Convoy-Signature": "garbage"}, body=b""))


# --- 9.3 Twitter CRC -------------------------------------------------------------------


def test_twitter_crc_vector() -> None:
    assert twitter_crc_response("Convoy", "uzwcfYtzr9") == {
        "response_token": "sha256=HXvxTdsfShG6k2zC9NVANwFquJBdOugRYHax2vNiiOo="
    }


# --- 9.5 Convoy simple / advanced signatures (provider "convoy") -----------------------

SIG_SECRET = "convoy-webhook-secret"
SIG_PAYLOAD = b'{"event":"charge.success","amount":1000,"currency":"NGN"}'
T = 1700000000
VALID_256_HEX = "77b8b9269f25a199846a55a2bd25b3fba151c70fdae60bb1dcd87fbbc943c55c"
WRONG_A = "449623e4897bbde05e35358293f97b8c2f697367ffa3e7466e98178dfba44d19"
WRONG_B = "c7eff1833c41a2ce2e195599451b240cd282b1bc9fa387e428a9fd5a5dc74933"
HUNDRED_YEARS = 3153600000

# (name, hash, encoding, header value, valid)
SIGNATURE_VECTORS = [
    ("simple_sha256_hex", "SHA256", "hex", "244449b7f48cbc2709060c9dcdc2b3aa47a78f540430579015c579fb12defbb4", True),
    ("simple_sha256_base64", "SHA256", "base64", "JERJt/SMvCcJBgydzcKzqkenj1QEMFeQFcV5+xLe+7Q=", True),
    (
        "simple_sha512_hex",
        "SHA512",
        "hex",
        "6cc772dc81942ae1b5ffa91c3a6a07b0d37edc8dc6bd83e3518a219f1f19ff71"
        "ae1b76d6b320940d414c236a1aad7f7930b63e0f1928951955d31219545e1b66",
        True,
    ),
    (
        "simple_sha512_base64",
        "SHA512",
        "base64",
        "bMdy3IGUKuG1/6kcOmoHsNN+3I3GvYPjUYohnx8Z/3GuG3bWsyCUDUFMI2oarX95MLY+DxkolRlV0xIZVF4bZg==",
        True,
    ),
    ("advanced_sha256_hex", "SHA256", "hex", f"t={T},v1={VALID_256_HEX}", True),
    ("advanced_sha256_base64", "SHA256", "base64", f"t={T},v1=d7i5Jp8loZmEalWivSWz+6FRxw/a5gux3Nh/u8lDxVw=", True),
    (
        "advanced_sha512_hex",
        "SHA512",
        "hex",
        f"t={T},v1=b2122e252cd2582cf225cb2b8d4ceede9e34329e2fe95c02619c3ed5d4a3d9a7"
        "3e6beaf2dff8e76d71a693ae198cee40685eed12ad4ee2e033dc2d0399ede057",
        True,
    ),
    (
        "advanced_sha512_base64",
        "SHA512",
        "base64",
        f"t={T},v1=shIuJSzSWCzyJcsrjUzu3p40Mp4v6VwCYZw+1dSj2ac+a+ry3/jnbXGmk64ZjO5AaF7tEq1O4uAz3C0Dme3gVw==",
        True,
    ),
    ("advanced_tamper", "SHA256", "hex", f"t={T},v1={VALID_256_HEX[:-1]}0", False),
    ("advanced_t_not_first", "SHA256", "hex", f"v1={VALID_256_HEX},t={T}", True),
    ("advanced_multi_v1_one_valid", "SHA256", "hex", f"t={T},v1={WRONG_A},v1={VALID_256_HEX}", True),
    ("advanced_multi_v1_none_valid", "SHA256", "hex", f"t={T},v1={WRONG_A},v1={WRONG_B}", False),
    ("advanced_t_infinity", "SHA256", "hex", f"t=Infinity,v1={VALID_256_HEX}", False),
    ("advanced_numeric_signature", "SHA256", "hex", f"t={T},v1=1234567890", False),
    ("advanced_missing_timestamp", "SHA256", "hex", f"v1={VALID_256_HEX},v2={VALID_256_HEX}", False),
    ("simple_tamper", "SHA256", "hex", "244449b7f48cbc2709060c9dcdc2b3aa47a78f540430579015c579fb12defbb0", False),
]


def convoy_verifier(hash_: str, encoding: str, tolerance: int, now: float, **extra: Any):  # type: ignore[no-untyped-def]
    source = {
        "provider": "convoy",
        "verifier": {
            "type": "hmac",
            "hmac": {"secret": SIG_SECRET, "hash": hash_, "encoding": encoding, "tolerance_seconds": tolerance, **extra},
        },
    }
    return build_verifier(source, now=lambda: now)


@pytest.mark.parametrize(
    # The vectors' "valid" cases use a 100-year tolerance so they hold at any real date;
    # check them both at the signing instant and many years later.
    ("tolerance", "now"),
    [(300, float(T)), (HUNDRED_YEARS, float(T + 10 * 365 * 86400))],
)
@pytest.mark.parametrize(("name", "hash_", "encoding", "value", "valid"), SIGNATURE_VECTORS, ids=[v[0] for v in SIGNATURE_VECTORS])
def test_signature_vectors(name: str, hash_: str, encoding: str, value: str, valid: bool, tolerance: int, now: float) -> None:
    verifier = convoy_verifier(hash_, encoding, tolerance, now)
    req = request({"X-Convoy-Signature": value}, body=SIG_PAYLOAD)
    if valid:
        verifier.verify(req)
    else:
        with pytest.raises(VerificationError):
            verifier.verify(req)


def test_signature_vector_failure_reasons() -> None:
    verifier = convoy_verifier("SHA256", "hex", 300, float(T))

    def reason(value: str) -> type[BaseException]:
        with pytest.raises(VerificationError) as info:
            verifier.verify(request({"X-Convoy-Signature": value}, body=SIG_PAYLOAD))
        return info.type

    assert reason(f"t=Infinity,v1={VALID_256_HEX}") is TimestampInvalid
    assert reason(f"v1={VALID_256_HEX},v2={VALID_256_HEX}") is TimestampMissing
    assert reason(f"t={T},v1=1234567890") is SignatureMismatch
    assert reason(f"t={T},v1={WRONG_A},v1={WRONG_B}") is SignatureMismatch
    assert reason(f"t=-{T},v1={VALID_256_HEX}") is TimestampInvalid
    assert reason(f"t={T},t={T},v1={VALID_256_HEX}") is SignatureEncodingInvalid
    assert reason(f"t={T}") is SignatureMissing


def test_signature_vector_advanced_expired() -> None:
    # advanced_expired: the valid sha256 hex header with tolerance 300, 301 s later.
    value = f"t={T},v1={VALID_256_HEX}"
    with pytest.raises(TimestampOutsideTolerance):
        convoy_verifier("SHA256", "hex", 300, float(T + 301)).verify(request({"X-Convoy-Signature": value}, body=SIG_PAYLOAD))
    # exactly at the edge still passes; the future passes (Convoy's SDKs reject only old).
    convoy_verifier("SHA256", "hex", 300, float(T + 300)).verify(request({"X-Convoy-Signature": value}, body=SIG_PAYLOAD))
    convoy_verifier("SHA256", "hex", 300, float(T - 3600)).verify(request({"X-Convoy-Signature": value}, body=SIG_PAYLOAD))


def test_convoy_provider_defaults_and_custom_header() -> None:
    source = {"provider": "convoy", "verifier": {"hmac": {"secret": SIG_SECRET}}}
    verifier = build_verifier(source, now=lambda: float(T))
    verifier.verify(request({"x-convoy-signature": f"t={T},v1={VALID_256_HEX}"}, body=SIG_PAYLOAD))
    custom = build_verifier(
        {"provider": "convoy", "verifier": {"hmac": {"secret": SIG_SECRET, "header": "X-Upstream-Sig"}}}, now=lambda: float(T)
    )
    custom.verify(request({"X-Upstream-Sig": f"t={T},v1={VALID_256_HEX}"}, body=SIG_PAYLOAD))
    with pytest.raises(SignatureMissing):
        custom.verify(request({"X-Convoy-Signature": f"t={T},v1={VALID_256_HEX}"}, body=SIG_PAYLOAD))


def test_convoy_advanced_with_spaces_after_commas() -> None:
    verifier = convoy_verifier("SHA256", "hex", 300, float(T))
    verifier.verify(request({"X-Convoy-Signature": f"t={T}, v1={WRONG_A}, v1={VALID_256_HEX}"}, body=SIG_PAYLOAD))


def test_advanced_header_is_not_accepted_by_generic_hmac() -> None:
    # Convoy's inbound generic HMAC does not parse advanced signatures (spec 2.5).
    source = hmac_source(hash_="SHA256", header="X-Convoy-Signature", secret=SIG_SECRET)
    with pytest.raises(SignatureEncodingInvalid):
        build_verifier(source).verify(request({"X-Convoy-Signature": f"t={T},v1={VALID_256_HEX}"}, body=SIG_PAYLOAD))


# --- all twelve hash names (docs/decisions.md#decision-7) ---------------------------------


@pytest.mark.parametrize("hash_name", HASH_ALGORITHMS)
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_every_validated_hash_name_works(hash_name: str, encoding: str) -> None:
    # Reference digests from hashlib directly; sha512_224 must be the FIPS 180-4
    # SHA-512/224, not a truncated SHA-512.
    digest = hmac.new(b"Convoy", PAYLOAD, lambda d=b"": hashlib.new(hash_name.lower(), d)).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    verifier = build_verifier(hmac_source(hash_=hash_name, encoding=encoding))
    verifier.verify(request({"X-Convoy-Signature": value}))
    with pytest.raises(SignatureMismatch):
        verifier.verify(request({"X-Convoy-Signature": value}, body=PAYLOAD + b"!"))


def test_sha512_224_is_not_truncated_sha512() -> None:
    truncated = hmac.new(b"Convoy", PAYLOAD, hashlib.sha512).digest()[:28].hex()
    with pytest.raises(SignatureMismatch):
        build_verifier(hmac_source(hash_="SHA512_224")).verify(request({"X-Convoy-Signature": truncated}))


def test_hash_algorithms_constant() -> None:
    assert HASH_ALGORITHMS == (
        "MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512",
        "SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512", "SHA512_224", "SHA512_256",
    )  # fmt: skip
    assert set(PROVIDERS) == {"github", "shopify", "twitter", "stripe", "slack", "standard_webhooks", "svix", "twilio", "convoy"}


# --- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "hmac_cfg",
    [
        {"header": "X-Sig", "hash": "SHA256", "secret": "", "encoding": "hex"},
        {"header": "X-Sig", "hash": "SHA256", "secret": "   ", "encoding": "hex"},
        {"header": "", "hash": "SHA256", "secret": "s", "encoding": "hex"},
        {"header": "X-Sig", "hash": "", "secret": "s", "encoding": "hex"},
        {"header": "X-Sig", "hash": "SHA256", "secret": "s", "encoding": ""},
        {"header": "X-Sig", "hash": "WHIRLPOOL", "secret": "s", "encoding": "hex"},
        {"header": "X-Sig", "hash": "SHA256", "secret": "s", "encoding": "base32"},
        {"header": "X-Sig", "hash": "SHA256", "secret": 123, "encoding": "hex"},
    ],
)
def test_bad_hmac_config(hmac_cfg: dict[str, Any]) -> None:
    with pytest.raises(VerifierConfigError):
        build_verifier({"verifier": {"type": "hmac", "hmac": hmac_cfg}})


@pytest.mark.parametrize(
    "verifier",
    [
        {"type": "hmac"},
        {"type": "basic_auth"},
        {"type": "basic_auth", "basic_auth": {"username": "u", "password": ""}},
        {"type": "api_key"},
        {"type": "api_key", "api_key": {"header_name": "X-Key", "header_value": ""}},
        {"type": "HMAC", "hmac": {"header": "X", "hash": "SHA256", "secret": "s", "encoding": "hex"}},
        "hmac",
    ],
)
def test_bad_verifier_config(verifier: Any) -> None:
    with pytest.raises(VerifierConfigError):
        build_verifier({"verifier": verifier})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_requires_secret(provider: str) -> None:
    with pytest.raises(VerifierConfigError):
        build_verifier({"provider": provider, "verifier": {"type": "hmac", "hmac": {"secret": ""}}})
    with pytest.raises(VerifierConfigError):
        build_verifier({"provider": provider, "verifier": {"type": "noop"}})


def test_unknown_provider() -> None:
    with pytest.raises(UnknownProvider):
        build_verifier({"provider": "gitlab", "verifier": {"hmac": {"secret": "s"}}})
    assert issubclass(UnknownProvider, VerifierConfigError)


@pytest.mark.parametrize("tolerance", [0, -5, "300", 1.5, True])
def test_bad_tolerance(tolerance: Any) -> None:
    with pytest.raises(VerifierConfigError):
        build_verifier({"provider": "stripe", "verifier": {"hmac": {"secret": "whsec_x", "tolerance_seconds": tolerance}}})


@pytest.mark.parametrize("expires_at", [None, "", "tomorrow", "2030-01-01T00:00:00", True, float("inf"), ["x"]])
def test_previous_secret_needs_a_valid_expiry(expires_at: Any) -> None:
    cfg: dict[str, Any] = {"header": "X-Sig", "hash": "SHA256", "secret": "new", "encoding": "hex", "previous_secret": "old"}
    if expires_at is not None:
        cfg["previous_secret_expires_at"] = expires_at
    with pytest.raises(VerifierConfigError):
        build_verifier({"verifier": {"type": "hmac", "hmac": cfg}})


# --- secret rotation ----------------------------------------------------------------------

EXPIRY = 1_800_000_000


def sign_hex(secret: str, body: bytes = PAYLOAD) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Every spelling below is the same instant, 1_800_000_000 = 2027-01-15T08:00:00Z.
@pytest.mark.parametrize("expires_at", [EXPIRY, float(EXPIRY), str(EXPIRY), "2027-01-15T08:00:00Z", "2027-01-15T09:00:00+01:00"])
def test_rotated_secret_valid_until_expiry(expires_at: Any) -> None:
    clock = [0.0]
    source = hmac_source(hash_="SHA256", secret="new-secret", previous_secret="old-secret", previous_secret_expires_at=expires_at)
    verifier = build_verifier(source, now=lambda: clock[0])
    deadline = EXPIRY
    old = request({"X-Convoy-Signature": sign_hex("old-secret")})
    new = request({"X-Convoy-Signature": sign_hex("new-secret")})

    clock[0] = deadline - 1
    verifier.verify(old)
    verifier.verify(new)

    clock[0] = deadline  # expiry is exclusive: at expires_at the old secret is gone
    with pytest.raises(SignatureMismatch):
        verifier.verify(old)
    verifier.verify(new)


def test_rotation_applies_to_providers() -> None:
    clock = [float(EXPIRY - 10)]
    source = provider_source("github", secret="new", previous_secret="old", previous_secret_expires_at=EXPIRY)
    verifier = build_verifier(source, now=lambda: clock[0])
    old = request({"X-Hub-Signature-256": "sha256=" + sign_hex("old")})
    verifier.verify(old)
    clock[0] = EXPIRY + 10.0
    with pytest.raises(SignatureMismatch):
        verifier.verify(old)
    with pytest.raises(SignatureMismatch):
        verifier.verify(request({"X-Hub-Signature-256": "sha256=" + sign_hex("unrelated")}))


def test_rotation_applies_to_convoy_advanced() -> None:
    clock = [float(T)]
    source = {
        "provider": "convoy",
        "verifier": {"hmac": {"secret": "rolled", "previous_secret": SIG_SECRET, "previous_secret_expires_at": T + 60}},
    }
    verifier = build_verifier(source, now=lambda: clock[0])
    req = request({"X-Convoy-Signature": f"t={T},v1={VALID_256_HEX}"}, body=SIG_PAYLOAD)
    verifier.verify(req)
    clock[0] = float(T + 61)
    with pytest.raises(SignatureMismatch):
        verifier.verify(req)


# --- hygiene --------------------------------------------------------------------------------


def test_error_messages_never_contain_secret_or_signature() -> None:
    secret = "sup3r-s3cret-value"
    cases = [
        (hmac_source(hash_="SHA256", secret=secret), {"X-Convoy-Signature": sign_hex("other")}),
        (hmac_source(hash_="SHA256", secret=secret), {"X-Convoy-Signature": "zz" + secret}),
        (provider_source("stripe", secret=secret), {"Stripe-Signature": f"t=1,v1={sign_hex(secret)}"}),
        (
            {"verifier": {"type": "basic_auth", "basic_auth": {"username": "u", "password": secret}}},
            {"Authorization": "Basic " + base64.b64encode(f"u:{secret}x".encode()).decode()},
        ),
        ({"verifier": {"type": "api_key", "api_key": {"header_name": "X-Key", "header_value": secret}}}, {"X-Key": secret + "x"}),
    ]
    for source, headers in cases:
        with pytest.raises(VerificationError) as info:
            build_verifier(source, now=lambda: 1e9).verify(request(headers))
        text = str(info.value) + repr(info.value.args)
        assert secret not in text
        for value in headers.values():
            assert value not in text
