"""Query parameters of the event and delivery lists, and merging pages from workers.

Convoy's parameters: `startDate`/`endDate` (`2006-01-02T15:04:05`, default
the last 7 days), `perPage`, `direction` (`next`/`prev`),
`next_page_cursor`/`prev_page_cursor`. Rows are ordered by uid (ULIDs sort
by time), newest first; a cursor is a uid, so rows arriving while a client
pages through never repeat or shift a page.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from tables.events import READ_THROUGH, Page
from tables.scan import HIGH

from .. import clock
from ..ids import lowest_uid_at
from .envelope import ApiError
from .pagination import per_page

DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
DEFAULT_WINDOW = timedelta(days=7)


def _parse_date(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return datetime.strptime(raw, DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise ApiError(400, f"please specify a {name} in the format 2006-01-02T15:04:05") from exc


def page_of(query: Mapping[str, str], *, now: datetime | None = None) -> tuple[Page, int]:
    """The scan bounds and direction for this request, and the page size."""
    size = per_page(query)
    start = _parse_date(query, "startDate") or (now or clock.now()) - DEFAULT_WINDOW
    end = _parse_date(query, "endDate")
    if end is not None and end < start:
        raise ApiError(400, "startDate cannot be later than endDate")
    lower = lowest_uid_at(start - timedelta(milliseconds=1))
    upper = lowest_uid_at(end + timedelta(seconds=1)) if end else HIGH
    direction = query.get("direction") or "next"
    if direction not in ("next", "prev"):
        raise ApiError(400, "direction must be next or prev")
    if direction == "prev" and query.get("prev_page_cursor"):
        return Page(limit=size + 1, lower=max(lower, query["prev_page_cursor"]), upper=upper, descending=False), size
    cursor = query.get("next_page_cursor")
    return Page(limit=size + 1, lower=lower, upper=min(upper, cursor) if cursor else upper), size


def merge(results: Iterable[list[dict[str, Any]]], page: Page, size: int, *, cursor_given: bool) -> dict[str, Any]:
    """One Convoy page from every worker's local page.

    A worker whose walk ran out of budget read every row only down to (walking
    up: up to) its READ_THROUGH bound; rows of other workers beyond the
    tightest such bound are left for the next page, so nothing is skipped.
    Such a page may be short (even empty) and still have a next page: its
    cursor is the bound, and the next request walks on from there.
    """
    found = [row for rows in results for row in rows]
    bounds = [row["uid"] for row in found if row.get(READ_THROUGH)]
    rows = [row for row in found if not row.get(READ_THROUGH)]
    cut = (max(bounds) if page.descending else min(bounds)) if bounds else None
    if cut is not None:
        rows = [r for r in rows if (r["uid"] >= cut if page.descending else r["uid"] <= cut)]
    rows.sort(key=lambda r: r["uid"], reverse=page.descending)
    more = len(rows) > size
    rows = rows[:size]
    short = cut is not None and not more
    continue_from = cut if short else (rows[-1]["uid"] if rows else "")
    if page.descending:
        content, has_next, has_prev = rows, more or short, cursor_given
        next_cursor, prev_cursor = continue_from, content[0]["uid"] if content else ""
    else:
        content, has_next, has_prev = list(reversed(rows)), True, more or short
        next_cursor, prev_cursor = content[-1]["uid"] if content else "", continue_from
    has_next = has_next and bool(next_cursor)
    has_prev = has_prev and bool(prev_cursor)
    return {
        "content": content,
        "pagination": {
            "per_page": size,
            "has_next_page": has_next,
            "has_prev_page": has_prev,
            "next_page_cursor": next_cursor if has_next else "",
            "prev_page_cursor": prev_cursor if has_prev else "",
        },
    }


def many(query: Any, name: str) -> frozenset[str]:
    """A repeatable parameter (`sourceId=a&sourceId=b`, also `sourceId[]=a`)."""
    values = list(query.getall(name, [])) + list(query.getall(name + "[]", []))
    return frozenset(v for v in values if v)
