"""Provider schemes checked against each provider's official Python library.

Signatures are produced at test time by the official library, and every case asserts
both what our verifier does *and* that the official verifier agrees (accepts what we
accept, refuses what we refuse), so a drift in either shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from twilio.request_validator import RequestValidator

from convoy_stream.verifiers import (
    BodyHashMismatch,
    BodyHashMissing,
    SignatureAlgorithmUnsupported,
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
    TimestampInvalid,
    TimestampMissing,
    TimestampOutsideTolerance,
    VerificationError,
    VerifierConfigError,
    WebhookRequest,
    build_verifier,
)

BODY = b'{"id":"evt_1","type":"invoice.paid","amount":4200,"note":"caf\xc3\xa9"}'
URL = "https://gw.example/ingest/3xMaskId3xMask16"


def req(headers: dict[str, str], body: bytes = BODY, url: str = URL) -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


def source(provider: str, secret: str, **hmac_extra: Any) -> dict[str, Any]:
    return {"provider": provider, "verifier": {"type": "hmac", "hmac": {"secret": secret, **hmac_extra}}}


def accepts(verifier: Any, request: WebhookRequest) -> bool:
    try:
        verifier.verify(request)
    except VerificationError:
        return False
    return True


# --- Stripe -------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_test_9xJ2vQm0d8kq3LwZ"


def stripe_official_accepts(body: bytes, header: str, secret: str = STRIPE_SECRET, tolerance: int = 300) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError:
        return False
    return True


def stripe_header(body: bytes, timestamp: int, secret: str = STRIPE_SECRET) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode("utf-8"), secret, timestamp=timestamp)


class TestStripe:
    # Real clock: stripe-python reads time.time() itself; every timestamp below is far
    # from the tolerance edge so the two clocks cannot disagree.
    @staticmethod
    def verifier(secret: str = STRIPE_SECRET, **extra: Any) -> Any:
        return build_verifier(source("stripe", secret, **extra), now=time.time)

    def check(self, header: str | None, body: bytes = BODY, *, expect: type[VerificationError] | None, **extra: Any) -> None:
        headers = {} if header is None else {"Stripe-Signature": header}
        if expect is None:
            self.verifier(**extra).verify(req(headers, body))
        else:
            with pytest.raises(expect):
                self.verifier(**extra).verify(req(headers, body))
        tolerance = extra.get("tolerance_seconds", 300)
        assert stripe_official_accepts(body, header or "", tolerance=tolerance) is (expect is None)

    def test_official_header_verifies(self) -> None:
        self.check(stripe_header(BODY, int(time.time())), expect=None)

    def test_construct_event_agrees(self) -> None:
        header = stripe_header(BODY, int(time.time()))
        self.verifier().verify(req({"stripe-signature": header}))
        event = stripe.Webhook.construct_event(BODY, header, STRIPE_SECRET)
        assert event["id"] == "evt_1"

    def test_any_v1_may_match(self) -> None:
        now = int(time.time())
        good = stripe_header(BODY, now).split("v1=")[1]
        other = stripe_header(BODY, now, secret="whsec_other").split("v1=")[1]
        self.check(f"t={now},v1={other},v1={good},v0=deadbeef", expect=None)

    def test_tampered_body(self) -> None:
        self.check(stripe_header(BODY, int(time.time())), BODY.replace(b"4200", b"4201"), expect=SignatureMismatch)

    def test_wrong_secret(self) -> None:
        self.check(stripe_header(BODY, int(time.time()), secret="whsec_wrong"), expect=SignatureMismatch)

    def test_expired_timestamp(self) -> None:
        self.check(stripe_header(BODY, int(time.time()) - 400), expect=TimestampOutsideTolerance)

    def test_configurable_tolerance(self) -> None:
        self.check(stripe_header(BODY, int(time.time()) - 400), expect=None, tolerance_seconds=600)

    def test_future_timestamp_passes_like_stripe_python(self) -> None:
        self.check(stripe_header(BODY, int(time.time()) + 3600), expect=None)

    def test_upper_case_hex_refused_like_stripe_python(self) -> None:
        header = stripe_header(BODY, int(time.time()))
        t, v1 = header.split(",")
        self.check(f"{t},{v1.upper().replace('V1=', 'v1=')}", expect=SignatureMismatch)

    def test_missing_header(self) -> None:
        self.check(None, expect=SignatureMissing)

    def test_only_v0(self) -> None:
        now = int(time.time())
        sig = stripe_header(BODY, now).split("v1=")[1]
        self.check(f"t={now},v0={sig}", expect=SignatureMissing)

    def test_missing_timestamp(self) -> None:
        sig = stripe_header(BODY, int(time.time())).split("v1=")[1]
        self.check(f"v1={sig}", expect=TimestampMissing)

    def test_non_integer_timestamp(self) -> None:
        self.check("t=soon,v1=00", expect=TimestampInvalid)

    def test_injected_clock(self) -> None:
        header = stripe_header(BODY, 1_700_000_000)
        build_verifier(source("stripe", STRIPE_SECRET), now=lambda: 1_700_000_300.0).verify(req({"Stripe-Signature": header}))
        with pytest.raises(TimestampOutsideTolerance):
            build_verifier(source("stripe", STRIPE_SECRET), now=lambda: 1_700_000_301.0).verify(req({"Stripe-Signature": header}))

    def test_rotated_secret(self) -> None:
        now = int(time.time())
        header = stripe_header(BODY, now, secret="whsec_old")
        cfg = {"previous_secret": "whsec_old", "previous_secret_expires_at": now + 3600}
        build_verifier(source("stripe", STRIPE_SECRET, **cfg), now=lambda: float(now)).verify(req({"Stripe-Signature": header}))
        with pytest.raises(SignatureMismatch):
            build_verifier(source("stripe", STRIPE_SECRET, **cfg), now=lambda: float(now + 3600)).verify(
                req({"Stripe-Signature": header})
            )


# --- Slack --------------------------------------------------------------------------------

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_NOW = 1_700_000_000


class FixedClock(slack_sdk.signature.Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


class TestSlack:
    @staticmethod
    def headers(ts: int, body: bytes = BODY, secret: str = SLACK_SECRET) -> dict[str, str]:
        official = slack_sdk.signature.SignatureVerifier(secret)
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": official.generate_signature(timestamp=str(ts), body=body)}

    def check(self, headers: dict[str, str], body: bytes = BODY, *, expect: type[VerificationError] | None, now: int = SLACK_NOW) -> None:
        verifier = build_verifier(source("slack", SLACK_SECRET), now=lambda: float(now))
        if expect is None:
            verifier.verify(req(headers, body))
        else:
            with pytest.raises(expect):
                verifier.verify(req(headers, body))
        official = slack_sdk.signature.SignatureVerifier(SLACK_SECRET, clock=FixedClock(now))
        assert official.is_valid_request(body, headers) is (expect is None)

    def test_valid(self) -> None:
        self.check(self.headers(SLACK_NOW), expect=None)

    def test_lower_case_header_names(self) -> None:
        self.check({k.lower(): v for k, v in self.headers(SLACK_NOW).items()}, expect=None)

    def test_tampered_body(self) -> None:
        self.check(self.headers(SLACK_NOW), BODY + b"\n", expect=SignatureMismatch)

    def test_wrong_secret(self) -> None:
        self.check(self.headers(SLACK_NOW, secret="another-signing-secret"), expect=SignatureMismatch)

    def test_expired(self) -> None:
        self.check(self.headers(SLACK_NOW - 301), expect=TimestampOutsideTolerance)

    def test_future_beyond_tolerance_refused(self) -> None:
        self.check(self.headers(SLACK_NOW + 301), expect=TimestampOutsideTolerance)

    def test_edges_pass(self) -> None:
        self.check(self.headers(SLACK_NOW - 300), expect=None)
        self.check(self.headers(SLACK_NOW + 300), expect=None)

    def test_missing_signature(self) -> None:
        headers = self.headers(SLACK_NOW)
        del headers["X-Slack-Signature"]
        self.check(headers, expect=SignatureMissing)

    def test_missing_timestamp(self) -> None:
        headers = self.headers(SLACK_NOW)
        del headers["X-Slack-Request-Timestamp"]
        self.check(headers, expect=TimestampMissing)

    def test_replayed_signature_with_new_timestamp(self) -> None:
        headers = self.headers(SLACK_NOW - 3600)
        headers["X-Slack-Request-Timestamp"] = str(SLACK_NOW)
        self.check(headers, expect=SignatureMismatch)

    def test_tolerance_is_configurable(self) -> None:
        verifier = build_verifier(source("slack", SLACK_SECRET, tolerance_seconds=30), now=lambda: float(SLACK_NOW))
        with pytest.raises(TimestampOutsideTolerance):
            verifier.verify(req(self.headers(SLACK_NOW - 31)))
        verifier.verify(req(self.headers(SLACK_NOW - 30)))


# --- Standard Webhooks and Svix -------------------------------------------------------------

RAW_KEY = bytes(range(32))  # 32 bytes: base64 has one '=' of padding
WHSEC = "whsec_" + base64.b64encode(RAW_KEY).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def std_sign(ts: int, body: bytes = BODY, secret: str = WHSEC, msg_id: str = MSG_ID) -> str:
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    return standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode("utf-8"))


def std_headers(ts: int, signature: str, family: str = "webhook", msg_id: str = MSG_ID) -> dict[str, str]:
    return {f"{family}-id": msg_id, f"{family}-timestamp": str(ts), f"{family}-signature": signature}


def std_official_accepts(body: bytes, headers: dict[str, str]) -> bool:
    try:
        standardwebhooks.Webhook(WHSEC).verify(body, headers, json_parse=False)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def svix_official_accepts(body: bytes, headers: dict[str, str]) -> bool:
    try:
        svix.webhooks.Webhook(WHSEC).verify(body, headers)
    except svix.webhooks.WebhookVerificationError:
        return False
    return True


class TestStandardWebhooks:
    # The official libraries read the real clock; timestamps stay far from the edges.
    @staticmethod
    def verifier(secret: str = WHSEC, **extra: Any) -> Any:
        return build_verifier(source("standard_webhooks", secret, **extra), now=time.time)

    def check(self, headers: dict[str, str], body: bytes = BODY, *, expect: type[VerificationError] | None) -> None:
        if expect is None:
            self.verifier().verify(req(headers, body))
        else:
            with pytest.raises(expect):
                self.verifier().verify(req(headers, body))
        assert std_official_accepts(body, headers) is (expect is None)

    def test_valid(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, std_sign(now)), expect=None)

    @pytest.mark.parametrize(
        "secret",
        [WHSEC, WHSEC.removeprefix("whsec_"), WHSEC.rstrip("="), WHSEC.removeprefix("whsec_").rstrip("=")],
        ids=["prefixed", "bare", "unpadded", "bare-unpadded"],
    )
    def test_secret_spellings(self, secret: str) -> None:
        now = int(time.time())
        self.verifier(secret).verify(req(std_headers(now, std_sign(now))))

    def test_several_signatures_and_v1a_ignored(self) -> None:
        now = int(time.time())
        other = std_sign(now, secret="whsec_" + base64.b64encode(b"x" * 24).decode())
        ed25519 = "v1a," + base64.b64encode(b"\x01" * 64).decode()
        self.check(std_headers(now, f"{ed25519} {other} {std_sign(now)}"), expect=None)

    def test_tampered_body(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, std_sign(now)), BODY[:-1] + b" }", expect=SignatureMismatch)

    def test_tampered_id(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, std_sign(now), msg_id="msg_other"), expect=SignatureMismatch)

    def test_wrong_secret(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, std_sign(now, secret="whsec_" + base64.b64encode(b"y" * 32).decode())), expect=SignatureMismatch)

    def test_expired(self) -> None:
        then = int(time.time()) - 400
        self.check(std_headers(then, std_sign(then)), expect=TimestampOutsideTolerance)

    def test_future_refused(self) -> None:
        later = int(time.time()) + 400
        self.check(std_headers(later, std_sign(later)), expect=TimestampOutsideTolerance)

    def test_missing_headers(self) -> None:
        now = int(time.time())
        full = std_headers(now, std_sign(now))
        for name, error in [("webhook-signature", SignatureMissing), ("webhook-id", SignatureMissing), ("webhook-timestamp", TimestampMissing)]:
            headers = {k: v for k, v in full.items() if k != name}
            self.check(headers, expect=error)

    @pytest.mark.parametrize("version", ["v2", "v1a", "V1"])
    def test_valid_hmac_under_another_version_label_is_refused(self, version: str) -> None:
        now = int(time.time())
        self.check(std_headers(now, std_sign(now).replace("v1,", f"{version},")), expect=SignatureMissing)

    def test_malformed_entry(self) -> None:
        now = int(time.time())
        with pytest.raises(SignatureEncodingInvalid):
            self.verifier().verify(req(std_headers(now, "garbage " + std_sign(now))))

    def test_injected_clock_two_sided(self) -> None:
        ts = 1_700_000_000
        headers = std_headers(ts, std_sign(ts))
        for now, ok in [(ts - 301, False), (ts - 300, True), (ts + 300, True), (ts + 301, False)]:
            verifier = build_verifier(source("standard_webhooks", WHSEC), now=lambda n=now: float(n))
            assert accepts(verifier, req(headers)) is ok, now

    def test_rotated_secret(self) -> None:
        ts = 1_700_000_000
        old = "whsec_" + base64.b64encode(b"old-key-material-0123456789abcd").decode()
        headers = std_headers(ts, std_sign(ts, secret=old))
        cfg = {"previous_secret": old, "previous_secret_expires_at": "2023-11-14T22:20:00Z"}  # ts + 7200
        before = build_verifier(source("standard_webhooks", WHSEC, **cfg), now=lambda: float(ts))
        after = build_verifier(source("standard_webhooks", WHSEC, **cfg), now=lambda: float(ts + 7200))
        before.verify(req(headers))
        with pytest.raises(SignatureMismatch):
            after.verify(req(headers))

    def test_svix_family_also_accepted(self) -> None:
        now = int(time.time())
        self.verifier().verify(req(std_headers(now, std_sign(now), family="svix")))

    def test_not_base64_secret_is_config_error(self) -> None:
        with pytest.raises(VerifierConfigError):
            build_verifier(source("standard_webhooks", "whsec_a"))


class TestSvix:
    @staticmethod
    def sign(ts: int, body: bytes = BODY, secret: str = WHSEC) -> str:
        return svix.webhooks.Webhook(secret).sign(MSG_ID, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode("utf-8"))

    def check(self, headers: dict[str, str], body: bytes = BODY, *, expect: type[VerificationError] | None) -> None:
        verifier = build_verifier(source("svix", WHSEC), now=time.time)
        if expect is None:
            verifier.verify(req(headers, body))
        else:
            with pytest.raises(expect):
                verifier.verify(req(headers, body))
        assert svix_official_accepts(body, headers) is (expect is None)

    def test_valid(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, self.sign(now), family="svix"), expect=None)

    def test_webhook_family_also_accepted(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, self.sign(now), family="webhook"), expect=None)

    def test_svix_headers_take_precedence(self) -> None:
        now = int(time.time())
        headers = std_headers(now, self.sign(now), family="svix") | std_headers(now, "v1,AAAA", family="webhook")
        self.check(headers, expect=None)

    def test_tampered_body(self) -> None:
        now = int(time.time())
        self.check(std_headers(now, self.sign(now), family="svix"), b"{}", expect=SignatureMismatch)

    def test_wrong_secret(self) -> None:
        now = int(time.time())
        wrong = "whsec_" + base64.b64encode(b"z" * 32).decode()
        self.check(std_headers(now, self.sign(now, secret=wrong), family="svix"), expect=SignatureMismatch)

    def test_expired_and_future(self) -> None:
        now = int(time.time())
        self.check(std_headers(now - 400, self.sign(now - 400), family="svix"), expect=TimestampOutsideTolerance)
        self.check(std_headers(now + 400, self.sign(now + 400), family="svix"), expect=TimestampOutsideTolerance)

    def test_missing_signature(self) -> None:
        now = int(time.time())
        headers = std_headers(now, self.sign(now), family="svix")
        del headers["svix-signature"]
        self.check(headers, expect=SignatureMissing)


# --- Twilio -----------------------------------------------------------------------------------

AUTH_TOKEN = "12345678901234567890123456789012"
FORM = "application/x-www-form-urlencoded"


class MultiParams(dict):  # type: ignore[type-arg]
    """The shape twilio-python reads repeated parameters from (``getall``, as Flask's)."""

    def getall(self, name: str) -> list[str]:
        return list(self[name])


def twilio_verifier(token: str = AUTH_TOKEN, **extra: Any) -> Any:
    return build_verifier(source("twilio", token, **extra))


class TestTwilio:
    PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030", "To": "+18005551212"}
    URL = "https://gw.example/ingest/3xMaskId3xMask16?foo=1&bar=2"

    def test_form_post(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, self.PARAMS)
        body = urlencode(self.PARAMS).encode()
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        twilio_verifier().verify(req(headers, body, self.URL))
        assert RequestValidator(AUTH_TOKEN).validate(self.URL, self.PARAMS, signature)

    def test_form_post_with_charset_and_lower_case_headers(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, self.PARAMS)
        headers = {"x-twilio-signature": signature, "content-type": FORM + "; charset=UTF-8"}
        twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), self.URL))

    def test_form_post_with_escaped_and_unicode_values(self) -> None:
        params = {"Body": "héllo wörld & more=stuff+", "Empty": ""}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, params)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        twilio_verifier().verify(req(headers, urlencode(params).encode(), self.URL))

    def test_repeated_params(self) -> None:
        body = b"To=%2B2&Body=hi&To=%2B1&To=%2B2"
        params = MultiParams(To=["+2", "+1", "+2"], Body=["hi"])
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, params)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        twilio_verifier().verify(req(headers, body, self.URL))
        assert RequestValidator(AUTH_TOKEN).validate(self.URL, params, signature)

    def test_tampered_form(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, self.PARAMS)
        tampered = dict(self.PARAMS, Digits="9999")
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        with pytest.raises(SignatureMismatch):
            twilio_verifier().verify(req(headers, urlencode(tampered).encode(), self.URL))
        assert not RequestValidator(AUTH_TOKEN).validate(self.URL, tampered, signature)

    def test_tampered_url(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, self.PARAMS)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        other = self.URL.replace("foo=1", "foo=2")
        with pytest.raises(SignatureMismatch):
            twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), other))
        assert not RequestValidator(AUTH_TOKEN).validate(other, self.PARAMS, signature)

    def test_json_body_sha256(self) -> None:
        body = BODY
        url = self.URL + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
        twilio_verifier().verify(req(headers, body, url))
        assert RequestValidator(AUTH_TOKEN).validate(url, body.decode(), signature)

        tampered = body.replace(b"4200", b"4201")
        with pytest.raises(BodyHashMismatch):
            twilio_verifier().verify(req(headers, tampered, url))
        assert not RequestValidator(AUTH_TOKEN).validate(url, tampered.decode(), signature)

    def test_json_body_without_body_hash_refused(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, {})
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
        with pytest.raises(BodyHashMissing):
            twilio_verifier().verify(req(headers, BODY, self.URL))
        # An empty body has nothing to protect: the URL alone is signed.
        twilio_verifier().verify(req(headers, b"", self.URL))

    @pytest.mark.parametrize(
        ("signed_url", "request_url"),
        [
            ("https://gw.example:443/ingest/m?x=1", "https://gw.example/ingest/m?x=1"),
            ("https://gw.example/ingest/m?x=1", "https://gw.example:443/ingest/m?x=1"),
            ("http://gw.example:80/ingest/m", "http://gw.example/ingest/m"),
        ],
    )
    def test_default_port_variants(self, signed_url: str, request_url: str) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_url, self.PARAMS)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), request_url))
        assert RequestValidator(AUTH_TOKEN).validate(request_url, self.PARAMS, signature)

    def test_sha256_signature_settings(self) -> None:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(self.URL, self.PARAMS, algorithm="HMAC_SHA256")
        settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM, "X-Twilio-Webhooks-Signature-Settings": settings}
        twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), self.URL))
        # The same signature without the settings header is checked as SHA-1 and fails.
        del headers["X-Twilio-Webhooks-Signature-Settings"]
        with pytest.raises(SignatureMismatch):
            twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), self.URL))

    def test_unsupported_algorithm(self) -> None:
        headers = {"X-Twilio-Signature": "AAAA", "Content-Type": FORM, "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"}
        with pytest.raises(SignatureAlgorithmUnsupported):
            twilio_verifier().verify(req(headers, b"", self.URL))

    def test_missing_signature(self) -> None:
        with pytest.raises(SignatureMissing):
            twilio_verifier().verify(req({"Content-Type": FORM}, urlencode(self.PARAMS).encode(), self.URL))

    def test_wrong_token(self) -> None:
        signature = RequestValidator("another-token").compute_signature(self.URL, self.PARAMS)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        with pytest.raises(SignatureMismatch):
            twilio_verifier().verify(req(headers, urlencode(self.PARAMS).encode(), self.URL))

    def test_rotated_token(self) -> None:
        signature = RequestValidator("old-token").compute_signature(self.URL, self.PARAMS)
        headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
        cfg = {"previous_secret": "old-token", "previous_secret_expires_at": 2_000_000_000}
        body = urlencode(self.PARAMS).encode()
        build_verifier(source("twilio", AUTH_TOKEN, **cfg), now=lambda: 1_999_999_999.0).verify(req(headers, body, self.URL))
        with pytest.raises(SignatureMismatch):
            build_verifier(source("twilio", AUTH_TOKEN, **cfg), now=lambda: 2_000_000_000.0).verify(req(headers, body, self.URL))
