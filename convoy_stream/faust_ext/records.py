"""A Faust record's internal state, written directly.

Faust's `Record.__init__` and `from_data` run a setter per field, a large share of the
pipeline's CPU (docs/mechanisms.md#hot-path). `assemble` writes the state `__init__` would:
every field in `__dict__`, the record class's defaults for absent ones, and Faust's (empty)
set of evaluated fields. `tests/unit/test_library_seams.py` compares the two.
"""

from __future__ import annotations

from typing import Any


def required_fields(cls: Any) -> frozenset[str]:
    """The fields of a record class without a default."""
    options = cls._options
    return frozenset(f for f in options.fields if f not in options.defaults)


def assemble(cls: Any, fields: dict[str, Any]) -> Any:
    """The record Faust's `__init__` would build: every field in `__dict__`, defaults for absent ones."""
    record = cls.__new__(cls)
    state = record.__dict__
    state.update(cls._options.defaults)
    state.update(fields)
    state["__evaluated_fields__"] = set()
    return record


def assemble_payload(cls: Any, data: dict[str, Any]) -> Any:
    """`assemble` from a decoded payload, without the type marker Faust serializes with a record."""
    record = assemble(cls, data)
    record.__dict__.pop("__faust", None)
    return record
