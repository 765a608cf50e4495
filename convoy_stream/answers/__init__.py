"""Answer shapes: a stored record -> the JSON Convoy writes for it.

One module per entity. Each answer carries every field Convoy's models always
write (its Go structs' json tags without `omitempty`), with Convoy's default
where convoy-stream stores nothing (an empty string, an empty list or object,
Convoy's number), and `null` only where Convoy writes null. Fields that have
no meaning here (circuit-breaker state, devices, delivery attempts) get
Convoy's neutral value (README, "Differences from Convoy"). Fields of ours
that Convoy does not have are kept: clients ignore fields they do not know.

Pure functions: the web views call them on rows from any worker, and a
dashboard can call them on the same rows.
"""

from __future__ import annotations

from typing import Any, Protocol


class Lookup(Protocol):
    """The config a shape reads to embed related entities (`tables/config.py` has it)."""

    def get(self, kind: str, uid: str) -> dict[str, Any] | None: ...


def with_defaults(stored: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`stored` with each default put where the field is missing or null."""
    answer = dict(stored)
    for key, value in defaults.items():
        if answer.get(key) is None:
            answer[key] = value
    return answer


def header_map(headers: Any) -> dict[str, list[str]]:
    """Convoy's HTTP header map (`{"Name": ["value", ...]}`) from either stored form."""
    if not isinstance(headers, dict):
        return {}
    return {str(k): [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in headers.items()}
