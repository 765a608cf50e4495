"""Turn py-spy's raw (folded) stacks into a text summary and a small self-contained SVG
flame graph. Folded lines look like `thread (123);main (cli.py:94);run (faust/x.py:10) 42`.

Usable alone: `python bench/profile_summary.py bench/results/pipeline-profile.folded`.
"""

from __future__ import annotations

import html
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")

# Coarse areas, checked in order, so the summary can say where the time goes.
AREAS = [
    ("convoy-stream", ("convoy_stream/", "tables/", "bridges/")),
    ("faust", ("faust/",)),
    ("mode", ("mode/",)),
    ("aiokafka", ("aiokafka/",)),
    ("rocksdb", ("rocksdict",)),
    ("json/orjson", ("json/", "orjson")),
    ("asyncio", ("asyncio/", "selectors.py", "uvloop")),
    ("aiohttp", ("aiohttp/", "yarl/", "multidict/")),
    ("ulid/ids", ("ulid/",)),
    ("logging", ("logging/",)),
]


# Frames every sample of an asyncio program passes through; left out of the inclusive list.
OUTER_FRAMES = {"_run_module_as_main", "_run_code", "<module>", "main", "cmd_worker", "_run_worker",
                "Worker.execute_from_commandline", "BaseEventLoop.run_until_complete", "BaseEventLoop.run_forever",
                "BaseEventLoop._run_once", "Handle._run", "run", "Runner.run", "execute_from_commandline"}


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _frame(raw: str) -> tuple[str, str]:
    match = _FRAME.match(raw.strip())
    if not match:
        return raw.strip(), ""
    return match.group("name"), _short(match.group("path"))


def area_of(path: str) -> str:
    for name, needles in AREAS:
        if any(n in path for n in needles):
            return name
    return "other"


def parse(folded: str) -> list[tuple[str, list[tuple[str, str]], int]]:
    """[(thread, frames root->leaf as (function, file), count)]"""
    stacks = []
    for line in folded.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        parts = stack.split(";")
        thread = parts[0] if parts and parts[0].startswith(("thread", "process")) else "thread (?)"
        frames = [_frame(p) for p in parts if not p.startswith(("thread", "process"))]
        stacks.append((thread, frames, n))
    return stacks


def summarize_folded(folded: str, *, title: str = "profile", rate: int = 100, seconds: float | None = None,
                     top: int = 30) -> str:
    stacks = parse(folded)
    if not stacks:
        return f"{title}\n(no samples)\n"
    per_thread: Counter[str] = Counter()
    for thread, _, n in stacks:
        per_thread[thread] += n
    main = per_thread.most_common(1)[0][0]
    busy = [(frames, n) for thread, frames, n in stacks if thread == main]
    total = sum(n for _, n in busy)
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, n in busy:
        if not frames:
            continue
        name, path = frames[-1]
        self_time[f"{name}  ({path})"] += n
        areas[area_of(path)] += n
        seen = set()
        for fname, fpath in frames:
            key = f"{fname}  ({fpath})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    lines = [title, "=" * len(title), ""]
    lines.append("Samples are taken only while a thread is on the CPU (py-spy without --idle), 100 per second;")
    lines.append("so samples / (100 x seconds) is the share of one core a thread used.")
    lines.append("")
    lines.append("threads (samples):")
    for thread, n in per_thread.most_common():
        share = f", {100 * n / (rate * seconds):.0f}% of a core" if seconds else ""
        lines.append(f"  {thread}: {n}{share}{'   <- summarised below' if thread == main else ''}")
    lines.append("")
    lines.append(f"self time by area (where the CPU actually is), {total} samples:")
    for name, n in areas.most_common():
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    lines.append("")
    tasks: Counter[str] = Counter()
    for frames, n in busy:
        names = [f[0] for f in frames]
        if "Handle._run" in names:
            i = names.index("Handle._run")
            name, path = frames[i + 1] if i + 1 < len(frames) else ("(the event loop itself)", "")
        else:
            inner = [f for f in frames if f[0] not in OUTER_FRAMES]
            name, path = inner[0] if inner else ("(the event loop itself)", "")
        tasks[f"{name}  ({path})" if path else name] += n
    lines.append("what the event loop was running (the frame right under asyncio's Handle._run):")
    for key, n in tasks.most_common(12):
        lines.append(f"  {100 * n / total:5.1f}%  {key}")
    lines.append("")
    lines.append(f"top {top} functions by self time:")
    for key, n in self_time.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {key}")
    lines.append("")
    lines.append(f"top {top} functions by inclusive time (on the stack):")
    shown = 0
    for key, n in inclusive.most_common():
        if key.split("  (")[0] in OUTER_FRAMES:
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {key}")
        shown += 1
        if shown >= top:
            break
    lines.append("")
    for thread, n in per_thread.most_common()[1:4]:
        if n < 0.05 * total:
            continue
        leafs: Counter[str] = Counter()
        for th, frames, count in stacks:
            if th == thread and frames:
                name, path = frames[-1]
                leafs[f"{name}  ({path})"] += count
        lines.append(f"{thread}: top functions by self time, {n} samples:")
        lines.extend(f"  {100 * c / n:5.1f}%  {key}" for key, c in leafs.most_common(8))
        lines.append("")
    return "\n".join(lines)


def write_flamegraph_svg(folded: str, path: Path, *, title: str = "flame graph", width: int = 1800) -> None:
    """A minimal flame graph (root at the bottom) of the busiest thread; hover shows the frame."""
    stacks = parse(folded)
    per_thread: Counter[str] = Counter()
    for thread, _, n in stacks:
        per_thread[thread] += n
    if not per_thread:
        return
    main = per_thread.most_common(1)[0][0]
    def node() -> dict[str, Any]:
        return {"n": 0, "kids": {}}

    tree: dict[str, Any] = node()
    for thread, frames, n in stacks:
        if thread != main:
            continue
        tree["n"] += n
        cur = tree
        for name, fpath in frames:
            key = f"{name} ({fpath})"
            cur = cur["kids"].setdefault(key, node())
            cur["n"] += n
    total = tree["n"]
    row_h = 16
    rects: list[str] = []
    depth_max = [0]
    colors = {"convoy-stream": "#e8743b", "faust": "#f2b134", "mode": "#f7d26a", "aiokafka": "#7fb8e6",
              "rocksdb": "#a3d977", "json/orjson": "#c9a0dc", "asyncio": "#cccccc", "aiohttp": "#88d4c8",
              "ulid/ids": "#f5a5a5", "logging": "#b0b0b0", "other": "#e0c0a0"}

    def walk(n: dict[str, Any], key: str, x: float, depth: int) -> None:
        w = width * n["n"] / total
        if w < 0.5:
            return
        depth_max[0] = max(depth_max[0], depth)
        if depth > 0:
            label = html.escape(key)
            fpath = key.rsplit("(", 1)[-1]
            fill = colors.get(area_of(fpath), "#e0c0a0")
            text = html.escape(key.split(" (")[0][: int(w / 7)]) if w > 30 else ""
            rects.append(f'<g><title>{label} — {100 * n["n"] / total:.1f}%</title>'
                         f'<rect x="{x:.1f}" y="{{y{depth}}}" width="{w:.1f}" height="{row_h - 1}" fill="{fill}"/>'
                         f'<text x="{x + 3:.1f}" y="{{t{depth}}}" font-size="11">{text}</text></g>')
        cx = x
        for kkey, kid in sorted(n["kids"].items()):
            walk(kid, kkey, cx, depth + 1)
            cx += width * kid["n"] / total

    walk(tree, "all", 0.0, 0)
    height = (depth_max[0] + 2) * row_h + 30
    body = "\n".join(rects)
    for depth in range(depth_max[0] + 1, 0, -1):
        y = height - depth * row_h - 10
        body = body.replace(f"{{y{depth}}}", str(y)).replace(f"{{t{depth}}}", str(y + 11))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace">'
           f'<text x="5" y="16" font-size="14">{html.escape(title)} ({total} samples; hover for names)</text>'
           f"{body}</svg>")
    path.write_text(svg)


if __name__ == "__main__":
    source = Path(sys.argv[1])
    print(summarize_folded(source.read_text(), title=str(source)))
