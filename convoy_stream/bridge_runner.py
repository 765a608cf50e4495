"""Placeholder until bridges are wired (replaced below)."""

from __future__ import annotations

from typing import Any


async def start_bridges(app: Any) -> None:
    return None


async def stop_bridges(app: Any) -> None:
    return None


async def run_standalone() -> None:
    raise SystemExit("bridges are not wired yet")
