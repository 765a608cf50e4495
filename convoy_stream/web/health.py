"""`GET /health`: 200 only when this worker can accept and process events."""

from __future__ import annotations

from aiohttp import web

from .context import ctx
from .envelope import error, ok


def readiness(request: web.Request) -> dict[str, bool]:
    c = ctx(request)
    app = c.app
    return {
        "config_loaded": c.config.ready.is_set(),
        "kafka_connected": c.publisher.connected,
        "partitions_assigned": not app.rebalancing and not getattr(app, "in_recovery", False) and app.consumer_generation_id > 0,
    }


async def health(request: web.Request) -> web.Response:
    app = ctx(request).app
    dead = app.liveness.cause()
    if dead is not None:  # the worker exits shortly (liveness.py)
        return error(503, f"unhealthy: {dead}")
    if app.should_stop:
        return error(503, "stopping")
    checks = readiness(request)
    if all(checks.values()):
        return ok(checks, "convoy-stream is healthy")
    return error(503, "not ready: " + ", ".join(name for name, good in checks.items() if not good))
