"""The fixed limits on what a tenant controls, and the checks that enforce them.

Every limit is listed in the README's "Limits" section. The ones here are fixed because
the storage behind them is: a JSON document nested deeper than `MAX_JSON_DEPTH` could not
be encoded again once wrapped in a stored row and an answer (orjson stops at 255 levels),
and nothing larger than `MAX_PAYLOAD_READ_SIZE` fits in an ingest record. The bridge
worker limits are instance settings (`Settings.max_source_workers`, `max_bridge_workers`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

#: Levels of nesting a JSON document may have (a request body, a webhook body, a broker
#: message). The parsers refuse deeper documents, so everything stored can be read back;
#: a stored value deeper than this (stored before the limit) is shown without its data.
MAX_JSON_DEPTH = 128

#: The highest `max_payload_read_size` a project may set: Kafka's default record limit,
#: which the whole ingest record (body and headers) must fit (`publisher.MAX_RECORD_BYTES`).
MAX_PAYLOAD_READ_SIZE = 1_000_000

#: Convoy's 50 KiB: a project's default `max_payload_read_size`, and the largest
#: `custom_response.body` a source may answer with.
CONVOY_SIZE_LIMIT = 51_200
DEFAULT_MAX_PAYLOAD_READ_SIZE = CONVOY_SIZE_LIMIT
MAX_CUSTOM_RESPONSE_SIZE = CONVOY_SIZE_LIMIT

#: Header maps a tenant sends (`custom_headers`, broker messages, header functions).
MAX_HEADER_NAME_BYTES = 256
MAX_HEADER_VALUE_BYTES = 8192
MAX_HEADERS = 100

#: Defaults of the bridge worker settings (`CONVOY_STREAM_MAX_SOURCE_WORKERS`,
#: `CONVOY_STREAM_MAX_BRIDGE_WORKERS`): each bridge worker holds its own broker connections.
DEFAULT_MAX_SOURCE_WORKERS = 16
DEFAULT_MAX_BRIDGE_WORKERS = 64

#: Endpoint, dynamic-event and broker URLs.
MAX_URL_BYTES = 4096

# RFC 9110 5.6.2: token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: field-value is VCHAR / obs-text / SP / HTAB; no other control character.
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 3986: unreserved / reserved / pct-encoded, nothing else (no spaces, controls, non-ASCII).
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")


class JsonTooDeep(ValueError):
    """A JSON document nested deeper than `MAX_JSON_DEPTH` levels."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` has more than `limit` levels of arrays and objects (a scalar is 0).

    Iterative, so an arbitrarily deep value cannot exhaust the stack; it stops at the
    first container past the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def raw_json_may_exceed(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """A cheap bound: a document with at most `limit` brackets cannot nest deeper."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > limit
    return text.count("[") + text.count("{") > limit


def check_json_depth(value: Any, text: str | bytes) -> Any:
    """`value` (parsed from `text`), or `JsonTooDeep`."""
    if raw_json_may_exceed(text) and json_depth_exceeds(value):
        raise JsonTooDeep()
    return value


def header_problem(name: Any, value: Any) -> str | None:
    """Why `name: value` cannot be a header line (RFC 9110), or None."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        return f"header name {str(name)[:64]!r} is not a valid HTTP token"
    if len(name.encode()) > MAX_HEADER_NAME_BYTES:
        return f"header name {name[:64]!r}... is longer than {MAX_HEADER_NAME_BYTES} bytes"
    if not isinstance(value, str):
        return f"header {name} must be a string"
    if _BAD_VALUE_CHAR.search(value):
        return f"header {name} contains a control character (CR, LF, NUL ...)"
    if len(value.encode()) > MAX_HEADER_VALUE_BYTES:
        return f"header {name} is longer than {MAX_HEADER_VALUE_BYTES} bytes"
    return None


def header_map_problem(headers: Mapping[str, Any]) -> str | None:
    """The first reason `headers` cannot be sent as HTTP headers, or None."""
    if len(headers) > MAX_HEADERS:
        return f"at most {MAX_HEADERS} headers are allowed"
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem:
            return problem
    return None


def forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    """The entries of `headers` that can be HTTP headers: a broker's own headers (Kafka record
    headers, AMQP properties) are not the tenant's JSON, so an unusable one is dropped, not fatal."""
    return {name: value for name, value in headers.items() if header_problem(name, value) is None}


def is_token(name: str) -> bool:
    """An RFC 9110 token (a valid header name) of reasonable length."""
    return bool(_TOKEN.fullmatch(name)) and len(name.encode()) <= MAX_HEADER_NAME_BYTES


def is_header_value(value: str) -> bool:
    return not _BAD_VALUE_CHAR.search(value) and len(value.encode()) <= MAX_HEADER_VALUE_BYTES


def is_uri_text(url: str) -> bool:
    """Only RFC 3986 characters (no spaces, CR/LF, controls or raw non-ASCII), bounded length."""
    return len(url) <= MAX_URL_BYTES and bool(_URI_CHARS.fullmatch(url))
