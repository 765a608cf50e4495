"""Convoy subscription filters: which events a subscription receives.

A subscription carries ``filter_config = {event_types, filter: {headers, body}}``. The
event-type list is matched first (:func:`event_type_matches`); the content filters are
Convoy's extended-JSON syntax (Convoy's ``pkg/flatten`` + ``pkg/compare``), evaluated by
:func:`matches` / :func:`matches_headers`.

Filter syntax (what a Convoy user already writes):

* ``{"type": "invoice.paid"}`` - a plain value means equality.
* ``{"data": {"amount": {"$gte": 100}}}`` and ``{"data.amount": {"$gte": 100}}`` are the
  same filter: nested keys and dotted keys both name the path ``data.amount``.
* Array elements are addressed by index (``items.0.id``) or by the positional wildcard
  ``$`` (``items.$.id`` - "any element"), as in Convoy.
* Operators: ``$eq $neq $gt $gte $lt $lte $in $nin $exist $regex $and $or``. ``$and`` /
  ``$or`` take a list of sub-filters and may appear at the top level or under a field
  (then the sub-filters' paths are relative to that field).
* An empty or ``None`` filter matches everything.

Where Convoy's behaviour is accidental we do what a user of a document filter expects
(MongoDB semantics, which Convoy's syntax imitates), and say so here:

* A field missing from the payload fails every positive condition (``$eq``, ``$in``,
  ``$gt``, ``$regex`` ...). Negative conditions (``$neq``, ``$nin``, ``$exist: false``)
  hold for a missing field. Convoy's older comparer silently skipped missing fields.
* Array fields: a plain value, ``$eq`` and ``$in`` match when the whole array equals the
  operand *or any element does* (``{"tags": "a"}`` matches ``{"tags": ["a", "b"]}``);
  ``$neq``/``$nin`` are their exact negations. Ordering operators and ``$regex`` match
  when any element satisfies them.
* With the ``$`` wildcard (or any path reaching several values) a positive condition
  holds when any reached value satisfies it, a negative one when none violates it.
* Numbers compare numerically across int/float (``5 == 5.0``); booleans are never
  numbers (``true != 1``); strings are never coerced to numbers. Ordering operators
  need a number operand (checked by :func:`validate_filter`) and are false for
  non-numeric payload values.
* ``$regex`` uses Python's :mod:`re` with ``re.search`` (unanchored, like Go's
  ``MatchString``); patterns must compile. Python and RE2 syntax differ in rare corners.
* A plain object value is a nested filter, not whole-object equality (Convoy flattens
  it); an *empty* object ``{}`` means "equals ``{}``".
* A path may not end with the ``$`` wildcard (Convoy: ``invalid filter syntax, found
  trailing $``); use ``{"tags": "x"}`` for "array contains".
* Implicit traversal of arrays without an index or ``$`` (MongoDB's ``items.id``) is not
  supported, as in Convoy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "FilterError",
    "OPERATORS",
    "event_type_matches",
    "flatten",
    "matches",
    "matches_headers",
    "validate_filter",
]

_LOGICAL = frozenset({"$and", "$or"})
_ORDERING = frozenset({"$gt", "$gte", "$lt", "$lte"})
_MEMBERSHIP = frozenset({"$in", "$nin"})
OPERATORS: frozenset[str] = frozenset(
    {"$eq", "$neq", "$exist", "$regex"} | _LOGICAL | _ORDERING | _MEMBERSHIP
)

_WILDCARD = "$"
_INDEX = re.compile(r"0|[1-9][0-9]*")
_TRAILING_WILDCARD = "invalid filter syntax, found trailing $"
_LOGICAL_NOT_ARRAY = "the value of $or and $and must be an array"


class FilterError(ValueError):
    """A subscription filter that cannot be evaluated; ``message`` is the API text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------- event types


def event_type_matches(subscription_event_types: Iterable[str] | None, event_type: str) -> bool:
    """Does a subscription listening to ``subscription_event_types`` get ``event_type``?

    ``*`` is the catch-all and an empty list means ``["*"]`` (Convoy's default
    ``filter_config.event_types``). Otherwise the match is exact and case-sensitive.
    """
    types = list(subscription_event_types or ())
    if not types:
        return True
    return "*" in types or event_type in types


# -------------------------------------------------------------------------------- flatten


def _is_operator(key: str) -> bool:
    """``$``-prefixed keys are operators, except the positional wildcard ``$`` / ``$.x``."""
    return key.startswith("$") and key != _WILDCARD and not key.startswith("$.")


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))


def flatten(obj: Any) -> dict[str, Any]:
    """Flatten a JSON value into ``{"dotted.path": leaf}`` the way Convoy's pkg/flatten does.

    Why it exists: Convoy stores and compares payloads and filters in this shape, and the
    API shows it; keeping the same shape keeps filters portable between the two.

    * Object keys are joined with ``.``; an empty object is kept as the leaf ``{}``.
    * Arrays holding objects or arrays are expanded by index (``a.0.b``); every element
      is kept, scalar elements too (``a.1``). Arrays of scalars only, and empty arrays,
      stay whole as one leaf so "array contains" filters can see them (Convoy does the
      same).
    * When flattening a *filter*, the operators of an object (``{"$gte": 5}``) stay
      together as one leaf under the object's path; ``$and``/``$or`` sub-filters are
      flattened in place. Only the known operators are special: a payload key such as
      ``$schema`` is flattened like any other key.
    * A top-level scalar or ``None`` flattens to ``{}`` (there is no key to put it under).

    Keys containing ``.`` are joined verbatim, so ``{"a.b": 1}`` and ``{"a": {"b": 1}}``
    flatten to the same key (the later one wins), as in Convoy.
    """
    out: dict[str, Any] = {}
    _flatten_into(out, "", obj)
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _flatten_logical(value: Any) -> Any:
    if isinstance(value, list):
        return [flatten(v) if isinstance(v, dict) else v for v in value]
    return value


def _flatten_into(out: dict[str, Any], prefix: str, obj: Any) -> None:
    if isinstance(obj, dict):
        if not obj:
            if prefix:
                out[prefix] = {}
            return
        operators = {k: _flatten_logical(v) if k in _LOGICAL else v for k, v in obj.items() if k in OPERATORS}
        if operators:
            if prefix:
                out[prefix] = operators
            else:
                out.update(operators)
        for key, value in obj.items():
            if key not in OPERATORS:
                _flatten_into(out, _join(prefix, key), value)
    elif isinstance(obj, list):
        if prefix and not any(_is_container(v) for v in obj):
            out[prefix] = list(obj)
            return
        for index, value in enumerate(obj):
            _flatten_into(out, _join(prefix, str(index)), value)
    elif prefix:
        out[prefix] = obj


# ----------------------------------------------------------------------------- validation


def validate_filter(filter: Mapping[str, Any] | None) -> None:  # noqa: A002 - API name
    """Reject a filter that :func:`matches` could not evaluate; used at subscription create.

    Raises :class:`FilterError` for: a non-object filter, unknown ``$`` operators,
    ``$and``/``$or`` that are not non-empty arrays of objects, ``$in``/``$nin`` without an
    array, ordering operators without a number, ``$exist`` without a boolean, ``$regex``
    without a compilable string, empty path segments (``a..b``), a trailing ``$`` and
    comparison operators that are not applied to a field.
    """
    if filter is None:
        return
    if not isinstance(filter, Mapping):
        raise FilterError("filter must be a JSON object")
    _validate_doc(filter, ())


def _split_key(key: str) -> tuple[str, ...]:
    parts = tuple(key.split("."))
    if any(part == "" for part in parts):
        raise FilterError(f"invalid filter key {key!r}: empty path segment")
    return parts


def _validate_doc(doc: Mapping[str, Any], path: tuple[str, ...]) -> None:
    for key, value in doc.items():
        if not isinstance(key, str):
            raise FilterError("filter keys must be strings")
        if _is_operator(key):
            _validate_operator(key, value, path)
            continue
        child = path + _split_key(key)
        if isinstance(value, Mapping) and value:
            _validate_doc(value, child)
        elif child[-1] == _WILDCARD:
            raise FilterError(_TRAILING_WILDCARD)


def _validate_operator(op: str, operand: Any, path: tuple[str, ...]) -> None:
    if op not in OPERATORS:
        raise FilterError(f"unknown operator {op}")
    if op in _LOGICAL:
        if not isinstance(operand, list) or not operand:
            raise FilterError(_LOGICAL_NOT_ARRAY)
        for sub in operand:
            if not isinstance(sub, Mapping):
                raise FilterError(f"every element of {op} must be an object")
            _validate_doc(sub, path)
        return
    if not path:
        raise FilterError(f"operator {op} must be applied to a field")
    if path[-1] == _WILDCARD:
        raise FilterError(_TRAILING_WILDCARD)
    if op in _MEMBERSHIP and not isinstance(operand, list):
        raise FilterError(f"the value of {op} must be an array")
    if op in _ORDERING and not _is_number(operand):
        raise FilterError(f"the value of {op} must be a number")
    if op == "$exist" and not isinstance(operand, bool):
        raise FilterError("the value of $exist must be a boolean")
    if op == "$regex":
        if not isinstance(operand, str):
            raise FilterError("the value of $regex must be a string")
        _compile(operand)


@functools.lru_cache(maxsize=512)
def _compile_cached(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return _compile_cached(pattern)
    except re.error as exc:
        raise FilterError(f"invalid regular expression {pattern!r}: {exc}") from None


# ------------------------------------------------------------------------------- matching


def matches(filter: Mapping[str, Any] | None, payload: Any) -> bool:  # noqa: A002 - API name
    """Does ``payload`` (decoded JSON) satisfy ``filter``? See the module docstring.

    The filter may be nested, dotted or Convoy-flattened; all three mean the same thing.
    Raises :class:`FilterError` when the filter itself is malformed (e.g. an unknown
    operator), so a bad stored filter is loud rather than silently matching nothing.
    """
    if not filter:
        return True
    validate_filter(filter)
    return _eval_doc(filter, (), payload)


def matches_headers(filter: Mapping[str, Any] | None, headers: Mapping[str, Any]) -> bool:
    """:func:`matches` for a header filter: header names compare case-insensitively.

    Stored event headers use lower-case names
    (docs/decisions.md#decision-13) while users write
    ``X-GitHub-Event``; field names in the filter are lower-cased before matching.
    Header values may be strings or lists of strings (a list matches if any value does).
    """
    if not filter:
        return True
    lowered = {str(k).lower(): v for k, v in headers.items()}
    return matches(_lower_field_keys(filter), lowered)


def _lower_field_keys(doc: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _LOGICAL and isinstance(value, list):
            out[key] = [_lower_field_keys(v) if isinstance(v, Mapping) else v for v in value]
        elif _is_operator(key):
            out[key] = value
        else:
            out[key.lower()] = value
    return out


def _eval_doc(doc: Mapping[str, Any], path: tuple[str, ...], payload: Any) -> bool:
    for key, operand in doc.items():
        if key in _LOGICAL:
            results = (_eval_doc(sub, path, payload) for sub in operand)
            ok = all(results) if key == "$and" else any(results)
        elif _is_operator(key):
            ok = _eval_operator(key, operand, _resolve(payload, path))
        else:
            child = path + tuple(key.split("."))
            if isinstance(operand, Mapping) and operand:
                ok = _eval_doc(operand, child, payload)
            else:
                ok = _eval_operator("$eq", operand, _resolve(payload, child))
        if not ok:
            return False
    return True


def _eval_operator(op: str, operand: Any, values: list[Any]) -> bool:
    if op == "$exist":
        return bool(values) == operand
    if op == "$neq":
        return not any(_field_eq(v, operand) for v in values)
    if op == "$nin":
        return not any(_field_in(v, operand) for v in values)
    if op == "$eq":
        return any(_field_eq(v, operand) for v in values)
    if op == "$in":
        return any(_field_in(v, operand) for v in values)
    if op == "$regex":
        pattern = _compile(operand)
        return any(_any_element(v, lambda x: isinstance(x, str) and bool(pattern.search(x))) for v in values)
    compare = _ORDER_FUNCS[op]
    return any(_any_element(v, lambda x: _is_number(x) and compare(x, operand)) for v in values)


_ORDER_FUNCS = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _any_element(value: Any, predicate: Callable[[Any], bool]) -> bool:
    if isinstance(value, list):
        return any(predicate(v) for v in value)
    return bool(predicate(value))


def _field_eq(value: Any, operand: Any) -> bool:
    """Equality with array-contains: ``[1, 2]`` equals ``[1, 2]`` and also "equals" 2."""
    if _json_eq(value, operand):
        return True
    return isinstance(value, list) and any(_json_eq(v, operand) for v in value)


def _field_in(value: Any, operand: list[Any]) -> bool:
    return any(_field_eq(value, candidate) for candidate in operand)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_eq(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value across int/float, booleans never equal numbers."""
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is b
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)


def _resolve(node: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value ``path`` reaches in ``node``.

    Object keys may themselves contain dots (``{"a.b": 1}`` is reachable as ``a.b``, as
    with Convoy's flattened payloads); ``$`` fans out over every array element.
    """
    if not path:
        return [node]
    if isinstance(node, Mapping):
        found: list[Any] = []
        for cut in range(len(path), 0, -1):
            key = ".".join(path[:cut])
            if key in node:
                found.extend(_resolve(node[key], path[cut:]))
        return found
    if isinstance(node, list):
        head, rest = path[0], path[1:]
        if head == _WILDCARD:
            return [v for item in node for v in _resolve(item, rest)]
        if _INDEX.fullmatch(head) and int(head) < len(node):
            return _resolve(node[int(head)], rest)
    return []
