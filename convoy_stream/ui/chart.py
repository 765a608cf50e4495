"""The small counts chart: accepted, duplicate and rejected requests per hour, as SVG shapes.

The chart is drawn on the server (no script, nothing for the Content-Security-Policy to
allow): this module turns counts into bar geometry, the template writes the `<rect>`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

KINDS = ("accepted", "duplicate", "rejected")


def merge_counts(results: Iterable[dict[str, Any]], *, start_ms: int, buckets: int, bucket_ms: int) -> dict[str, Any]:
    """Every worker's counts (`tables/counts.py`) summed, as one list of buckets per series.

    Returns {"total": [bucket...], "by_source": {source: [bucket...]}, "capped": bool}; a
    bucket is {"start": ms, "accepted": n, "duplicate": n, "rejected": n}.
    """
    def empty() -> list[dict[str, int]]:
        return [{"start": start_ms + i * bucket_ms, **{k: 0 for k in KINDS}} for i in range(buckets)]

    total, by_source, capped = empty(), {}, False

    def add(series: list[dict[str, int]], found: dict[str, Any]) -> None:
        for bucket, cell in found.items():
            index = (int(bucket) - start_ms) // bucket_ms
            if 0 <= index < buckets:
                for kind, n in cell.items():
                    if kind in KINDS:
                        series[index][kind] += int(n)

    for result in results:
        capped = capped or bool(result.get("capped"))
        add(total, result.get("buckets") or {})
        for source, found in (result.get("by_source") or {}).items():
            add(by_source.setdefault(source, empty()), found)
    return {"total": total, "by_source": by_source, "capped": capped}


@dataclass
class Bar:
    x: float
    width: float
    label: str
    segments: list[tuple[str, float, float, int]] = field(default_factory=list)  # (kind, y, height, count)


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    totals: dict[str, int]
    peak: int
    first: str
    last: str

    @classmethod
    def of(cls, series: list[dict[str, int]] | dict[str, Any], *, small: bool = False) -> "Chart":
        buckets = list(series) if isinstance(series, list) else []
        width, height = (240, 40) if small else (720, 120)
        peak = max((sum(b[k] for k in KINDS) for b in buckets), default=0)
        totals = {k: sum(b[k] for b in buckets) for k in KINDS}
        slot = width / max(len(buckets), 1)
        bars = []
        for i, b in enumerate(buckets):
            bar = Bar(x=round(i * slot + 1, 2), width=round(max(slot - 2, 1), 2), label=_hour(b["start"]))
            y = float(height)
            for kind in KINDS:
                if b[kind] and peak:
                    h = max(round(b[kind] / peak * (height - 4), 2), 1.5)
                    y -= h
                    bar.segments.append((kind, round(y, 2), h, b[kind]))
            bars.append(bar)
        first = _hour(buckets[0]["start"]) if buckets else ""
        last = _hour(buckets[-1]["start"]) if buckets else ""
        return cls(width, height, bars, totals, peak, first, last)


def _hour(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%H:00")
