"""The one clock: every "now" the worker compares against and every timestamp it writes.

`now()` is the current moment in UTC; `timestamp()` writes a moment the way every stored
record and API answer carries it (RFC 3339, milliseconds, `Z`), so timestamps from the API,
webhooks, broker bridges and retention compare as strings; `seconds()` is the same clock as
Unix seconds, for ULIDs and signature replay windows. Code tested against other moments takes
the moment or the clock as an argument whose default is this module's (the verifiers' `now`,
retention's and list windows' `now`), so tests never patch this module.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import lru_cache


def now() -> datetime:
    """The current moment, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def seconds() -> float:
    """The current moment as Unix seconds."""
    return time.time()


def timestamp(moment: datetime | None = None) -> str:
    """`moment` (default: now) as stored and answered: `2006-01-02T15:04:05.000Z`."""
    if moment is None:
        # Every event is stamped: the text of the current second is made once per second.
        ms = int(time.time() * 1000)
        return f"{_second_text(ms // 1000)}.{ms % 1000:03d}Z"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=4)
def _second_text(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
