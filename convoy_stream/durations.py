"""Go's `time.ParseDuration`, the one parser of the durations Convoy stores.

Validation and the retention sweep both read a project's `retention_policy` with it, so a
policy that validation accepts (`500us`, `.5h`, `1h30m`) is the policy the sweep applies.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")
_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as `168h`, `1h30m`, `.5h` or `500us`; `ValueError` otherwise."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    return -seconds if text.startswith("-") else seconds
