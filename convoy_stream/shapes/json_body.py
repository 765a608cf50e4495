"""A REST request body decoded with the errors Convoy's ``util.ReadJSON`` gives."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..limits import MAX_JSON_DEPTH, JsonTooDeep, check_json_depth
from ..webhook_payload import loads_json
from .fields import ValidationError

_WS = " \t\r\n"


def decode_json_body(raw: bytes, *, expect_object: bool = True) -> Any:
    """Decode a REST request body with the errors Convoy's ``util.ReadJSON`` gives.

    * empty (or whitespace-only) body: ``body must not be empty``
    * a syntax error: ``body contains badly-formed JSON (at character N)``, N being the
      1-based byte offset of the offending byte, as Go's ``SyntaxError.Offset``
    * a truncated document: ``body contains badly-formed JSON``
    * with ``expect_object`` a non-object document:
      ``body contains incorrect JSON type (at character N)``

    Trailing data after the value is a syntax error (Go's ``Unmarshal`` rule).
    ``NaN``/``Infinity`` are rejected, and so is nesting deeper than ``MAX_JSON_DEPTH``
    (``body contains JSON nested deeper than 128 levels``). Invalid UTF-8 and lone
    ``\\uD800`` escapes inside strings become U+FFFD, as in Go, so the result is always
    re-encodable.
    """
    try:
        # A well-formed body decodes the same with orjson straight from the bytes (what it
        # refuses, including invalid UTF-8 and numbers Go would convert, takes the path below).
        value = check_json_depth(orjson.loads(raw), raw)
    except (orjson.JSONDecodeError, JsonTooDeep, RecursionError):
        pass
    else:
        if isinstance(value, dict) or not expect_object:
            return value
    if not raw.strip(_WS.encode()):
        raise ValidationError("body must not be empty")
    text = raw.decode("utf-8", errors="replace")
    try:
        value = loads_json(text)
    except json.JSONDecodeError as exc:
        rest = text[exc.pos:]
        if exc.msg.startswith("Unterminated string") or not rest.strip(_WS):
            raise ValidationError("body contains badly-formed JSON") from None
        offset = len(text[:exc.pos].encode("utf-8")) + 1
        raise ValidationError(f"body contains badly-formed JSON (at character {offset})") from None
    except (JsonTooDeep, RecursionError):
        raise ValidationError(f"body contains JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise ValidationError("body contains badly-formed JSON") from None
    if expect_object and not isinstance(value, dict):
        stripped = text.lstrip(_WS)
        start = len(text) - len(stripped)
        offset = start + 1 if isinstance(value, list) else len(text.rstrip(_WS).encode("utf-8"))
        raise ValidationError(f"body contains incorrect JSON type (at character {offset})")
    return value
