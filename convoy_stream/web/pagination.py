"""Convoy's cursor pagination over an in-memory, newest-first list.

Items are ordered by `uid` descending (ULIDs sort by time). A cursor is the
uid of the last item shown, so new items arriving between pages neither
repeat nor shift what follows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .envelope import ApiError

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def per_page(query: Mapping[str, str]) -> int:
    raw = query.get("perPage") or query.get("per_page") or ""
    if not raw:
        return DEFAULT_PER_PAGE
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "perPage must be a whole number") from exc
    if value < 1:
        raise ApiError(400, "perPage must be at least 1")
    return min(value, MAX_PER_PAGE)


def paginate(items: Sequence[dict[str, Any]], query: Mapping[str, str], key: str = "uid") -> dict[str, Any]:
    """`items` must already be sorted newest first by `key`."""
    size = per_page(query)
    direction = query.get("direction", "next") or "next"
    if direction not in ("next", "prev"):
        raise ApiError(400, "direction must be next or prev")
    if direction == "prev" and query.get("prev_page_cursor"):
        cursor = query["prev_page_cursor"]
        older_than_cursor = [item for item in items if item[key] > cursor]
        page = older_than_cursor[-size:]
        has_prev = len(older_than_cursor) > size
        has_next = any(item[key] < page[-1][key] for item in items) if page else False
    else:
        cursor = query.get("next_page_cursor", "")
        remaining = [item for item in items if item[key] < cursor] if cursor else list(items)
        page = remaining[:size]
        has_next = len(remaining) > size
        has_prev = bool(cursor) and any(item[key] > page[0][key] for item in items) if page else bool(cursor)
    return {
        "content": page,
        "pagination": {
            "per_page": size,
            "has_next_page": has_next,
            "has_prev_page": has_prev,
            "next_page_cursor": page[-1][key] if page and has_next else "",
            "prev_page_cursor": page[0][key] if page and has_prev else "",
        },
    }
