"""Twilio: ``X-Twilio-Signature``, an HMAC over the URL (and form parameters).

Mirrors ``twilio.request_validator.RequestValidator`` (twilio-python 9.x):

* string to sign = full URL + for each POST parameter name (sorted, distinct) each of its
  distinct values (sorted) appended as ``name + value``; HMAC keyed by the auth token,
  base64. HMAC-SHA1 unless ``X-Twilio-Webhooks-Signature-Settings`` says
  ``algorithm=HMAC_SHA256`` (SharedKey webhooks); any other algorithm is refused.
* for non-form bodies (JSON) Twilio puts ``bodySHA256=<hex sha256(body)>`` in the URL,
  so the URL signature covers the body through that hash; we check it.
* the URL is tried with the port removed and with the scheme's default port added,
  because Twilio's signing side is inconsistent about it.

One deliberate difference, failing closed: a non-empty, non-form body with no
``bodySHA256`` is refused (the official validator would accept it on the URL alone,
leaving the body unauthenticated). A form body's ``bodySHA256``, if present, is checked
too.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import ParseResult, parse_qs, parse_qsl, urlparse

from .base import Keyring, WebhookRequest, header, mac, same, utf8
from .errors import (
    BodyHashMismatch,
    BodyHashMissing,
    RequestUrlInvalid,
    SignatureAlgorithmUnsupported,
    SignatureEncodingInvalid,
    SignatureMismatch,
    SignatureMissing,
)

_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def _without_port(uri: ParseResult) -> str:
    if not uri.port:
        return uri.geturl()
    return uri._replace(netloc=uri.netloc.split(":")[0]).geturl()


def _with_port(uri: ParseResult) -> str:
    if uri.port:
        return uri.geturl()
    port = 443 if uri.scheme == "https" else 80
    return uri._replace(netloc=f"{uri.netloc}:{port}").geturl()


def _algorithm(settings: str | None) -> str:
    """Algorithm named by ``X-Twilio-Webhooks-Signature-Settings``; HMAC_SHA1 if none."""
    for part in (settings or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


class TwilioVerifier:
    """Twilio webhook signature (see module docstring for the exact string signed)."""

    SIGNATURE_HEADER = "X-Twilio-Signature"
    SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

    def __init__(self, keys: Keyring) -> None:
        self.keys = keys

    def verify(self, request: WebhookRequest) -> None:
        signature = (header(request.headers, self.SIGNATURE_HEADER) or "").strip()
        if not signature:
            raise SignatureMissing("X-Twilio-Signature missing")
        hash_name = _ALGORITHMS.get(_algorithm(header(request.headers, self.SETTINGS_HEADER)))
        if hash_name is None:
            raise SignatureAlgorithmUnsupported("unsupported Twilio signature algorithm")

        try:
            uri = urlparse(request.url)
            urls = {_without_port(uri), _with_port(uri)}
        except ValueError as exc:  # e.g. a non-numeric port
            raise RequestUrlInvalid("request URL cannot be parsed") from exc

        content_type = (header(request.headers, "Content-Type") or "").split(";")[0].strip().lower()
        body_hashes = parse_qs(uri.query).get("bodySHA256")
        if body_hashes:
            expected = hashlib.sha256(request.body).hexdigest().encode("ascii")
            if not same(expected, utf8(body_hashes[0])):
                raise BodyHashMismatch("bodySHA256 does not match the body")

        params: dict[str, set[str]] = {}
        if content_type == FORM_CONTENT_TYPE:
            try:
                text = request.body.decode("utf-8")
                pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
            except (UnicodeDecodeError, ValueError) as exc:
                raise SignatureEncodingInvalid("form body is not valid UTF-8") from exc
            for name, value in pairs:
                params.setdefault(name, set()).add(value)
        elif request.body and not body_hashes:
            raise BodyHashMissing("non-form body without bodySHA256 in the URL")

        suffix = "".join(name + value for name in sorted(params) for value in sorted(params[name]))
        # The official validator compares base64 *strings*; so do we (no lenient decode).
        provided = [utf8(signature)]
        for url in sorted(urls):
            message = utf8(url + suffix)
            if self.keys.matches(lambda key, m=message: base64.b64encode(mac(key, m, hash_name)), provided):
                return
        raise SignatureMismatch("signature does not match")
