"""The field table: one declaration per request field, read by the validators and the OpenAPI schema.

A :class:`Field` says what a field is (JSON type, enum, lower bound), what Convoy answers when
it is missing or out of range, and any extra OpenAPI keywords (pattern, example,
description). The readers (`text`, `opt_int`, `opt_object`, ...) type-check a field as Go's
decoder would (a wrong JSON type is ``body contains incorrect JSON type for field
"<path>"``, checked before any rule), and :func:`problem` applies its plain rules;
:meth:`Shape.schema` describes the same rules in OpenAPI 3.0. Messages follow Convoy's ``util.Validate``: ``"<json_field>:<message>"``, every
failing field of a step reported, joined by ``", "`` in declaration order.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..limits import MAX_URL_BYTES, is_token, is_uri_text

Schema = dict[str, Any]
Kind = Literal["string", "integer", "boolean", "object", "array", "map", "any"]

#: govalidator's text for a `valid:"required"` tag without a custom message.
REQUIRED = "non zero value required"


class ValidationError(ValueError):
    """A request body the API rejects; ``message`` is the exact 400 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Field:
    """One field of a request body.

    ``required`` is Convoy's message when the field is missing (:func:`missing`), and
    marks it required in the schema unless ``schema_required`` says otherwise;
    ``enum``/``enum_message`` and ``minimum``/``bound_message`` likewise (``enum_message``
    may name the value sent as ``{value}``). ``shape`` is an object's fields (or an
    array's item object); ``items`` an array's item field. ``fold`` is ``"upper"``/``"lower"``
    for enums accepted in any case and stored folded; ``blank_is_missing`` makes a
    whitespace-only string count as missing (else only ``""``). ``extra`` holds OpenAPI
    keywords the validator checks in code (a pattern, a maximum) or that only document.
    """

    name: str
    kind: Kind = "string"
    required: str | None = None
    enum: tuple[str, ...] = ()
    enum_message: str = ""
    minimum: int | None = None
    bound_message: str = ""
    shape: Shape | None = None
    items: Field | None = None
    fold: Literal["", "upper", "lower"] = ""
    blank_is_missing: bool = False
    schema_required: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def in_schema_required(self) -> bool:
        return bool(self.required) if self.schema_required is None else self.schema_required

    def canonical(self, value: str) -> str:
        return value.upper() if self.fold == "upper" else value.lower() if self.fold == "lower" else value

    def schema(self) -> Schema:
        if self.kind == "object":
            out: Schema = self.shape.schema() if self.shape is not None else {"type": "object"}
        elif self.kind == "array":
            item = self.shape.schema() if self.shape is not None else (self.items or Field("")).schema()
            out = {"type": "array", "items": item}
        elif self.kind == "map":
            out = {"type": "object", "additionalProperties": {"type": "string"}}
        elif self.kind == "any":
            out = {}
        else:
            out = {"type": self.kind}
        if self.enum:
            out["enum"] = list(self.enum)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if (self.kind == "string" and self.required and self.in_schema_required and not self.enum
                and "pattern" not in self.extra):
            out["minLength"] = 1  # a blank value is a missing one
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Shape:
    """The fields of one JSON object, in Convoy's declaration order (the order of its messages)."""

    fields: tuple[Field, ...]
    description: str = ""
    nullable: bool = False

    def __getitem__(self, name: str) -> Field:
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(name)

    def without(self, *names: str) -> Shape:
        return replace(self, fields=tuple(f for f in self.fields if f.name not in names))

    def schema(self, *, all_optional: bool = False, description: str | None = None) -> Schema:
        out: Schema = {"type": "object", "properties": {f.name: f.schema() for f in self.fields}}
        required = [] if all_optional else [f.name for f in self.fields if f.in_schema_required]
        if required:
            out["required"] = required
        text = self.description if description is None else description
        if text:
            out["description"] = text
        if self.nullable:
            out["nullable"] = True
        return out


class FieldErrors:
    """Collects ``field:message`` failures so all of them are reported at once."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, name: str, message: str) -> None:
        self._items.append(f"{name}:{message}")

    def check(self, spec: Field, value: Any) -> None:
        """Add the field's plain-rule failure, if any (see :func:`problem`)."""
        message = problem(spec, value)
        if message:
            self.add(spec.name, message)

    def raise_if_any(self) -> None:
        if self._items:
            raise ValidationError(", ".join(self._items))


def missing(spec: Field, value: Any) -> bool:
    """Absent, ``null``, or for a string ``""`` or (with ``blank_is_missing``) only whitespace."""
    if spec.kind == "string" and isinstance(value, str):
        return not (value.strip() if spec.blank_is_missing else value)
    return value is None


def problem(spec: Field, value: Any) -> str | None:
    """The message of the first plain rule ``value`` breaks: required, enum, lower bound."""
    if missing(spec, value):
        return spec.required
    if spec.enum and isinstance(value, str) and spec.canonical(value) not in spec.enum:
        return spec.enum_message.replace("{value}", value)
    if spec.minimum is not None and isinstance(value, int) and value < spec.minimum:
        return spec.bound_message
    return None


# ------------------------------------------------------------------------------- reading


def type_error(path: str) -> ValidationError:
    return ValidationError(f'body contains incorrect JSON type for field "{path}"')


def join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def as_object(value: Any, path: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        if path:
            raise type_error(path)
        raise ValidationError("body contains incorrect JSON type (at character 1)")
    return value


def opt_object(obj: Mapping[str, Any], key: str, parent: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    return as_object(value, join(parent, key))


def opt_str(obj: Mapping[str, Any], key: str, parent: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise type_error(join(parent, key))


def text(obj: Mapping[str, Any], key: str, parent: str = "") -> str:
    """A string field, ``""`` when absent or null (Go's zero value)."""
    return opt_str(obj, key, parent) or ""


def opt_bool(obj: Mapping[str, Any], key: str, parent: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise type_error(join(parent, key))


def opt_int(obj: Mapping[str, Any], key: str, parent: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # Go's int64 fields: a number that does not fit is a type error there, and here it could
    # not be stored (orjson encodes 64-bit integers only).
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise type_error(join(parent, key))


def opt_str_list(obj: Mapping[str, Any], key: str, parent: str = "") -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    path = join(parent, key)
    if not isinstance(value, list):
        raise type_error(path)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise type_error(f"{path}.{index}")
    return list(value)


def str_map(obj: Mapping[str, Any], key: str, parent: str = "") -> dict[str, str]:
    """A ``map[string]string`` field; ``{}`` when absent."""
    value = opt_object(obj, key, parent) or {}
    path = join(parent, key)
    for name, item in value.items():
        if not isinstance(item, str):
            raise type_error(f"{path}.{name}")
    return dict(value)


def required_strings(raw: Mapping[str, Any], shape: Shape, parent: str) -> dict[str, str]:
    """Every string field of ``shape``, ``""`` when absent; a missing required one is reported."""
    values = {spec.name: text(raw, spec.name, parent) for spec in shape.fields if spec.kind == "string"}
    errors = FieldErrors()
    for spec in shape.fields:
        if spec.required and not values.get(spec.name):
            errors.add(spec.name, spec.required)
    errors.raise_if_any()
    return values


# ------------------------------------------------------------------------- shared rules


def blank(value: str | None) -> bool:
    return value is None or not value.strip()


def check_header_name(value: str, name: str) -> None:
    if value and not is_token(value):
        raise ValidationError(f"{name}:please provide a valid header name")


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, only RFC 3986 characters (no spaces or CR/LF)."""
    if not is_uri_text(value):
        return False
    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


#: http(s), then only RFC 3986 characters (`limits.is_uri_text`); the host must also parse.
URL_PATTERN = "[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=%-]+"
#: An http(s) URL field (`is_http_url` also parses its host).
URL_SCHEMA: Schema = {"pattern": f"^{URL_PATTERN}$", "maxLength": MAX_URL_BYTES,
                      "example": "https://example.com/webhooks"}
#: A URL field that may also be empty (none).
OPTIONAL_URL_SCHEMA: Schema = {"pattern": f"^({URL_PATTERN})?$", "maxLength": MAX_URL_BYTES, "nullable": True}
INVALID_URL = "please provide a valid http or https url"
NULLABLE: Schema = {"nullable": True}

# ----------------------------------------------------------------------- shared shapes

#: A header sent with a request: the api_key verifier's and an endpoint's authentication
#: (Convoy declares header_value first, so its message comes first).
API_KEY = Shape((Field("header_value", required=REQUIRED), Field("header_name", required=REQUIRED)))
