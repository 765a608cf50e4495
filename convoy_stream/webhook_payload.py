"""Pure parsing of a webhook arriving on ``/ingest/{maskID}``: body, event type, dedup key.

Everything here works on values the web view already has (content type, body bytes,
header and query mappings) and does no I/O, so it is unit-tested without a server.

* :func:`convert_body` - the stored ``data`` for a request (docs/convoy-behaviour.md#ingest-body; form
  bodies never pick up URL query parameters: docs/decisions.md#decision-11).
* :func:`extract_event_type` / :func:`validate_event_type_location` - ``event_type_location``
  (Convoy 26.3.7; docs/convoy-behaviour.md#ingest-event-type,
  docs/convoy-behaviour.md#source-validation).
* :func:`idempotency_key` / :func:`validate_idempotency_locations` - source
  ``idempotency_keys`` (docs/convoy-behaviour.md#ingest-idempotency, docs/decisions.md#decision-6).
* :func:`redact_headers` / :func:`forwarded_headers` - what is stored and what is sent on
  (docs/decisions.md#decision-5).

Errors are :class:`PayloadError` (a bad request: 400 with ``message``) and its subclass
:class:`LocationError` (a bad configured location: rejected at source create/update and,
should one be stored anyway, 400 at ingest).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from email import errors as email_errors
from email import policy as email_policy
from email.parser import BytesParser
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from .limits import check_json_depth

__all__ = [
    "INVALID_REQUEST_FORMAT",
    "LocationError",
    "PayloadError",
    "REDACTED",
    "convert_body",
    "extract_event_type",
    "forwarded_headers",
    "idempotency_key",
    "loads_json",
    "redact_headers",
    "validate_event_type_location",
    "validate_idempotency_locations",
]

INVALID_REQUEST_FORMAT = "Invalid request format"
REDACTED = "[REDACTED]"

_FORM_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_ALWAYS_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization"})


class PayloadError(ValueError):
    """The request cannot be turned into an event; ``message`` is Convoy's 400 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LocationError(PayloadError):
    """An ``event_type_location`` or idempotency-key location is malformed or not allowed."""


# ------------------------------------------------------------------------ content types


def _media_type(content_type: str | None) -> str:
    """Convoy's normalisation: lower-case, trimmed, cut at the first ``;``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _go_json_object(fields: Mapping[str, str]) -> bytes:
    """Encode ``{key: value}`` exactly as Go's ``json.Marshal`` of a ``map[string]string``.

    Why byte-exact: Convoy verifies a signature against the raw body first and then
    against these converted bytes (PR #2392); producing the same bytes keeps that
    fallback behaving identically. Go sorts keys and escapes ``<``, ``>``, ``&``,
    U+2028 and U+2029.
    """
    text = json.dumps(dict(sorted(fields.items())), ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text.encode("utf-8")


_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _urlencoded_fields(body: bytes) -> dict[str, str]:
    """First value per key of an ``application/x-www-form-urlencoded`` body.

    Like Go's ``url.ParseQuery``: ``&`` separates pairs, ``+`` is a space, a key without
    ``=`` has the value ``""``, a malformed ``%`` escape is an error. Unlike old Go we do
    not split on ``;`` (it is literal text). Text must be UTF-8.
    """
    if _BAD_PERCENT.search(body):
        raise PayloadError(INVALID_REQUEST_FORMAT)
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeError, ValueError):
        raise PayloadError(INVALID_REQUEST_FORMAT) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """First value per name of the non-file parts of a ``multipart/form-data`` body.

    Parsed with the stdlib MIME parser, which tolerates anything but reports defects;
    any defect (no boundary, missing start or close delimiter) means the body is not the
    form it claims to be. A part is a file when its Content-Disposition carries a
    non-empty ``filename`` (Go's rule); file parts are dropped. Base64 and
    quoted-printable transfer encodings are decoded; values must be text in the part's
    charset (UTF-8 by default).
    """
    if "\r" in content_type or "\n" in content_type:
        raise PayloadError(INVALID_REQUEST_FORMAT)
    try:
        head = b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
        message = BytesParser(policy=email_policy.compat32).parsebytes(head + body)
        boundary = message.get_boundary()
        if boundary is not None and body.strip() == b"--" + boundary.encode("latin-1") + b"--":
            return {}  # a form with no fields at all
        if boundary is None or message.defects or not message.is_multipart():
            raise PayloadError(INVALID_REQUEST_FORMAT)
        fields: dict[str, str] = {}
        for part in message.get_payload():
            if part.get_content_disposition() != "form-data":
                continue
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str) or not name or part.get_filename():
                continue
            raw = part.get_payload(decode=True)
            if raw is None:  # a nested multipart: not a plain field
                continue
            fields.setdefault(name, raw.decode(part.get_content_charset() or "utf-8"))
        return fields
    except PayloadError:
        raise
    except (UnicodeError, LookupError, ValueError, TypeError, binascii.Error, email_errors.MessageError):
        raise PayloadError(INVALID_REQUEST_FORMAT) from None


def _form_fields(content_type: str | None, body: bytes) -> dict[str, str] | None:
    """Form fields of a form body; ``None`` when the body is not a form."""
    media = _media_type(content_type)
    if media == _FORM_URLENCODED:
        return _urlencoded_fields(body)
    if media == _MULTIPART:
        return _multipart_fields(content_type or "", body)
    return None


def convert_body(content_type: str | None, body: bytes) -> bytes:
    """The event ``data`` for a webhook body (docs/convoy-behaviour.md#ingest-body,
    docs/decisions.md#decision-11).

    * JSON, a missing Content-Type and every other type: the bytes unchanged. They are
      not JSON-validated, exactly like Convoy (a provider posting XML still gets its
      event stored).
    * ``application/x-www-form-urlencoded`` and ``multipart/form-data``: a JSON object
      ``{name: first value}`` of the *body* fields, keys sorted, Go-compatible bytes.
      URL query parameters are never merged in (Convoy leaked them,
      docs/decisions.md#decision-11);
      multipart file parts are dropped.
    * An empty body, whatever its type, becomes ``b"{}"``.

    Raises :class:`PayloadError` ``Invalid request format`` when a form body cannot be
    decoded.
    """
    if not body:
        return b"{}"
    fields = _form_fields(content_type, body)
    if fields is None:
        return body
    return _go_json_object(fields)


# -------------------------------------------------------------------- JSON with exact numbers


class _Number(str):
    """A JSON number kept as its source text, so ``38562979`` renders as ``38562979``."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):  # keeps _Number instances, which never hold surrogates
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


#: The integers orjson (and so Kafka records, tables and answers) can encode.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _go_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _go_int(text: str) -> int | float:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else _go_float(text)


def loads_json(text: str, *, exact_numbers: bool = False) -> Any:
    """``json.loads`` with Go's rules, shared by every parser of request JSON.

    ``NaN``/``Infinity`` are rejected and an unpaired ``\\uD800`` escape becomes U+FFFD
    (as Go does), so decoded strings always encode as UTF-8 - orjson and Kafka refuse
    lone surrogates. An integer beyond 64 bits becomes a float (Go decodes every
    number into a float64) and a number beyond float range (``1e400``) is refused, as
    Go's decoder does: orjson cannot encode either, and the record must reach Kafka.
    With ``exact_numbers`` numbers stay as their source text (Go's ``UseNumber``), for
    values that are rendered back as text. A document nested deeper than
    ``limits.MAX_JSON_DEPTH`` raises ``limits.JsonTooDeep`` (a ``ValueError``): it could
    not be encoded again once stored. Raises ``ValueError`` (``json.JSONDecodeError`` for
    syntax errors) or ``RecursionError``.
    """
    if not exact_numbers:
        try:
            # Valid JSON decodes the same with orjson, several times faster; what it refuses
            # (NaN, lone surrogates, infinite numbers, bad syntax) takes the path below,
            # which applies Go's rules and builds Convoy's error messages.
            return check_json_depth(orjson.loads(text), text)
        except orjson.JSONDecodeError:
            pass
    hooks: dict[str, Any] = ({"parse_int": _Number, "parse_float": _Number} if exact_numbers
                             else {"parse_int": _go_int, "parse_float": _go_float})
    value = json.loads(text, parse_constant=_reject_constant, **hooks)
    check_json_depth(value, text)
    if "\\u" in text:  # only an escape can produce a lone surrogate
        value = _replace_surrogates(value)
    return value


def _loads_exact(body: bytes) -> Any:
    return loads_json(body.decode("utf-8", errors="replace"), exact_numbers=True)


def _canonical(value: Any) -> str:
    """Stable text of a JSON value: compact, sorted keys, numbers as written."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_canonical(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _scalar_text(value: Any) -> str | None:
    """Text of a JSON scalar; ``None`` for null, objects and arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # includes _Number
        return str(value)
    return None


# ------------------------------------------------------------------ request lookups


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (Go canonicalises names)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _query_value(query: Mapping[str, list[str]] | str, name: str) -> str | None:
    """First value of a query parameter; ``query`` may be the raw query string."""
    if isinstance(query, str):
        query = urllib.parse.parse_qs(query.lstrip("?"), keep_blank_values=True)
    values = query.get(name)
    if not values:
        return None
    return values[0]


# ------------------------------------------------------------------- event type location


class _Location(NamedTuple):
    scope: str  # "body", "header" or "query"
    selector: str


_EVENT_TYPE_SCOPES = {"body": "body", "header": "header", "query": "query", "queryparam": "query"}
_PREFIXES = frozenset({"request", "req"})

_E_SHAPE = ("invalid event type location {loc!r}: expected request.<body|header|query>.<selector>")
_E_WHITESPACE = "invalid event type location {loc!r}: parts may not have surrounding whitespace"
_E_PREFIX = "invalid event type location {loc!r}: must start with request or req"
_E_SCOPE = "invalid event type location {loc!r}: source must be one of body, header, query"
_E_NESTED = "nested selector unsupported for {scope} event type location {loc!r}"
_E_SIGNATURE = ("event type location cannot use request headers or query parameters "
                "with payload signature verification")


def _parse_event_type_location(location: str) -> _Location:
    parts = location.split(".", 2) if isinstance(location, str) else []
    if len(parts) != 3 or any(part == "" for part in parts):
        raise LocationError(_E_SHAPE.format(loc=location))
    if any(part != part.strip() for part in parts):
        raise LocationError(_E_WHITESPACE.format(loc=location))
    prefix, scope, selector = parts
    if prefix.lower() not in _PREFIXES:
        raise LocationError(_E_PREFIX.format(loc=location))
    scope = _EVENT_TYPE_SCOPES.get(scope.lower(), "")
    if not scope:
        raise LocationError(_E_SCOPE.format(loc=location))
    if scope != "body" and "." in selector:
        raise LocationError(_E_NESTED.format(scope=scope, loc=location))
    if scope == "body" and any(part == "" for part in selector.split(".")):
        raise LocationError(_E_SHAPE.format(loc=location))
    return _Location(scope, selector)


def validate_event_type_location(location: str, *, payload_signature: bool) -> None:
    """Check an ``event_type_location`` at source create/update and again at ingest.

    ``payload_signature`` is true when the source's verifier signs only the body (any
    provider, or ``verifier.type == "hmac"``): headers and the query string are then not
    covered by the signature, so a replayed signed body could be relabelled through
    them; Convoy forbids header/query locations in that case and so do we.

    An empty location means "not configured" and is valid. Raises :class:`LocationError`.
    """
    if location == "":
        return
    parsed = _parse_event_type_location(location)
    if payload_signature and parsed.scope != "body":
        raise LocationError(_E_SIGNATURE)


def extract_event_type(
    location: str,
    *,
    headers: Mapping[str, str],
    query: Mapping[str, list[str]] | str,
    body: bytes,
) -> str:
    """The event type at ``location`` (docs/convoy-behaviour.md#ingest-event-type,
    vectors: docs/convoy-behaviour.md#event-type-vectors).

    Pass the *converted* payload (:func:`convert_body`) as ``body``, so form fields are
    reachable as ``request.body.<field>``. Body paths walk object keys only; numbers
    come back exactly as written (``38562979``), booleans as ``true``/``false``. The
    value is trimmed. Callers use the source's mask id when no location is configured.

    Raises :class:`LocationError` for a malformed location and :class:`PayloadError`
    with Convoy's text when the request has no usable value there.
    """
    parsed = _parse_event_type_location(location)
    if parsed.scope == "header":
        value = _header(headers, parsed.selector)
    elif parsed.scope == "query":
        value = _query_value(query, parsed.selector)
    else:
        value = _body_event_type(location, parsed.selector, body)
    value = _LONE_SURROGATE.sub("\ufffd", value or "").strip()
    if not value:
        raise PayloadError(f"event type not found in request at {location}")
    return value


def _body_event_type(location: str, path: str, body: bytes) -> str:
    try:
        node = _loads_exact(body)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"failed to read event type from request body: {exc}") from None
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise PayloadError(f"event type not found in request body at {path}")
        node = node[key]
    if isinstance(node, (dict, list)):
        raise PayloadError(f"event type at {location} must be a scalar value")
    text = _scalar_text(node)
    if text is None:  # JSON null
        raise PayloadError(f"event type not found in request body at {path}")
    return text


# ------------------------------------------------------------------ idempotency locations


_IDEMPOTENCY_SCOPES = {"header": "header", "Header": "header", "body": "body", "Body": "body",
                       "query": "query", "QueryParam": "query"}


def _parse_idempotency_location(location: str) -> _Location:
    """Convoy's rules: split on ``.``, at least 3 parts, ``request|req``, a known source."""
    parts = location.split(".") if isinstance(location, str) else []
    if len(parts) < 3 or not ".".join(parts[2:]):
        raise LocationError(f"not enough parts set for idempotency key location with value: {location}")
    if parts[0] not in _PREFIXES or parts[1] not in _IDEMPOTENCY_SCOPES:
        raise LocationError(f"unsupported input format for idempotency key location with value: {location}")
    return _Location(_IDEMPOTENCY_SCOPES[parts[1]], ".".join(parts[2:]))


def validate_idempotency_locations(locations: Iterable[str] | None) -> None:
    """Check a source's ``idempotency_keys`` with Convoy's messages
    (docs/convoy-behaviour.md#source-validation).

    Locations are ``request.header.<Name>``, ``request.query.<name>`` (or
    ``req.QueryParam.<name>``) and ``request.body.<path>``. Raises :class:`LocationError`.
    """
    if locations is None:
        return
    if isinstance(locations, (str, bytes)) or not isinstance(locations, Iterable):
        raise LocationError("idempotency_keys must be a list of locations")
    for location in locations:
        if not isinstance(location, str):
            raise LocationError("idempotency_keys must be a list of locations")
        _parse_idempotency_location(location)


def idempotency_key(
    source_id: str,
    locations: list[str],
    *,
    headers: Mapping[str, str],
    query: Mapping[str, list[str]] | str,
    body: bytes,
    content_type: str | None,
) -> str | None:
    """The dedup key of a webhook for a source keyed on ``locations``
    (docs/decisions.md#decision-6).

    Returns ``None`` - the event is not deduplicated - when no location yields a value.
    Convoy instead hashed the source name alone, so every such request collided.

    Otherwise the key is the lower-hex SHA-256 of the source **id** followed by one
    entry per location, in order: a yielded value as ``<utf-8 byte length>:<value>,``
    (a netstring), a location without a value as ``~``. Length prefixes make the
    encoding unambiguous (``"ab"+"c"`` differs from ``"a"+"bc"``) and keying on the id
    means renaming a source does not reset dedup.

    What "yields a value" means (spec silent, decided here):

    * header: present and non-empty (case-insensitive name lookup).
    * query: the first value of the parameter, if present and non-empty. A missing
      parameter yields no value (Convoy answered 400 ``Failed to process request``).
    * body, JSON (any body that parses as JSON, whatever its Content-Type): the path is
      walked through object keys and array indexes (``request.body.items.0.id``);
      strings as-is, numbers as written, booleans ``true``/``false``, objects and arrays
      as compact sorted JSON; a missing path, ``null`` or an unparsable body yields none.
    * body, urlencoded or multipart form: the first value of the field named by the
      whole selector (``request.body.a.b`` reads the field ``a.b``); an undecodable
      form yields none.
    """
    if not locations:
        return None
    parsed = [_parse_idempotency_location(location) for location in locations]
    body_reader = _BodyReader(content_type, body)
    values: list[str | None] = []
    for location in parsed:
        if location.scope == "header":
            value = _header(headers, location.selector)
        elif location.scope == "query":
            value = _query_value(query, location.selector)
        else:
            value = body_reader.value(location.selector)
        values.append(value or None)
    if all(value is None for value in values):
        return None
    digest = hashlib.sha256(_netstring(source_id))
    for value in values:
        digest.update(b"~" if value is None else _netstring(value))
    return digest.hexdigest()


def _netstring(text: str) -> bytes:
    # surrogatepass: header strings may carry surrogate-escaped bytes; hashing must not fail
    raw = text.encode("utf-8", "surrogatepass")
    return str(len(raw)).encode("ascii") + b":" + raw + b","


class _BodyReader:
    """Parses the body once, on first use, for all body locations of one request."""

    _UNSET: Any = object()

    def __init__(self, content_type: str | None, body: bytes) -> None:
        self._content_type = content_type
        self._body = body
        self._form: dict[str, str] | None = self._UNSET
        self._json: Any = self._UNSET

    def value(self, selector: str) -> str | None:
        if self._form is self._UNSET:
            try:
                self._form = _form_fields(self._content_type, self._body)
            except PayloadError:
                self._form = {}
        if self._form is not None:
            return self._form.get(selector)
        if self._json is self._UNSET:
            try:
                self._json = _loads_exact(self._body)
            except (ValueError, RecursionError):
                self._json = None
        return _json_path_text(self._json, selector.split("."))


_INDEX = re.compile(r"0|[1-9][0-9]*")


def _json_path_text(node: Any, path: list[str]) -> str | None:
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and _INDEX.fullmatch(key) and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    if node is None:
        return None
    if isinstance(node, (dict, list)):
        return _canonical(node)
    return _scalar_text(node)


# ------------------------------------------------------------------------------- headers


@lru_cache(maxsize=4096)  # a few names recur on every webhook; bounded against made-up ones
def canonical_header_name(name: str) -> str:
    """Go's canonical form of a header name (``textproto.CanonicalMIMEHeaderKey``), the case
    Convoy stores a webhook's headers in: ``content-type`` -> ``Content-Type``. A name that is
    not an RFC 9110 token is kept as sent, as Go does."""
    if not name or any(not (c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")) for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def redact_headers(headers: Mapping[str, str], *, extra: Iterable[str] = ()) -> dict[str, str]:
    """Headers as stored on the event (docs/decisions.md#decision-5): Go's canonical names, as
    Convoy stores them, credentials hidden. Names are compared case-insensitively everywhere
    (filters, forwarding, redaction); only their stored spelling follows Convoy.

    ``Authorization``, ``Cookie``, ``Proxy-Authorization`` and the ``extra`` names (the
    api_key verifier's header) keep their name, for audit, but their value becomes
    ``[REDACTED]`` so a credential never lands in Kafka or reaches an endpoint.
    """
    hidden = _ALWAYS_REDACTED | {name.lower() for name in extra}
    return {canonical_header_name(name): REDACTED if name.lower() in hidden else value for name, value in headers.items()}


def forwarded_headers(stored: Mapping[str, str], forward: list[str] | None) -> dict[str, str]:
    """Stored headers that are sent on to endpoints (docs/decisions.md#decision-5).

    With a non-empty ``forward`` list only those names pass (case-insensitive);
    otherwise every stored header does. Redacted headers never pass, not even when
    listed: their real value is gone and forwarding ``[REDACTED]`` would only confuse
    the receiver.
    """
    wanted = {name.lower() for name in forward or ()}
    return {
        name: value
        for name, value in stored.items()
        if value != REDACTED
        and (name.lower() in wanted if wanted else name.lower() not in HOP_BY_HOP)
    }


#: Headers that describe the provider's connection to us, not the event: a
#: dispatcher must not copy them onto its own request to the endpoint.
HOP_BY_HOP = frozenset({
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
    "upgrade", "expect", "proxy-connection", "accept-encoding",
})
