"""The instance ingest rate limit (Convoy's `instance_ingest_rate`), per worker.

`CONVOY_STREAM_INGEST_RATE` events per second (0, the default, turns it off)
shared by every request that creates events on this worker: webhooks on
`/ingest/{maskID}` (POST, PUT, PATCH; not the CRC GET) and the four REST
event-create routes. A token bucket holding one second's worth of tokens (at
least one) refills continuously; a request that finds it empty is answered

    429 {"status": false, "message": "exceeded rate limit"}
    Retry-After: <whole seconds until a token is free, at least 1>
    X-RateLimit-Limit: <rate>    X-RateLimit-Remaining: 0

before its body is read or its credentials checked, so shedding load costs
almost nothing. Accepted requests carry `X-RateLimit-Limit` and
`X-RateLimit-Remaining` too. The limit is per worker process: N workers accept
up to N times the rate, as with Convoy's per-instance limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from .. import metrics
from .envelope import Handler, error

LIMITER_KEY: web.AppKey["TokenBucket | None"] = web.AppKey("ingest_limiter")
EXCEEDED = "exceeded rate limit"

#: (method, route template) of every route that creates events.
LIMITED_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {(method, "/ingest/{maskID}") for method in ("POST", "PUT", "PATCH")}
    | {("POST", "/api/v1/projects/{projectID}/events" + suffix) for suffix in ("", "/fanout", "/broadcast", "/dynamic")}
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # whole seconds, >= 1 when refused, 0 when allowed


class TokenBucket:
    """`rate` tokens per second, at most `capacity` stored; the clock is injectable for tests."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity) if capacity is not None else max(1.0, self.rate)
        if self.capacity < 1:
            raise ValueError("capacity must hold at least one token")
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)  # a clock that steps back refills nothing
        self._updated = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)

    def take(self, tokens: float = 1.0) -> Decision:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return Decision(True, int(math.floor(self._tokens)), 0)
        wait = (tokens - self._tokens) / self.rate
        return Decision(False, 0, max(1, math.ceil(wait)))

    @property
    def limit(self) -> int:
        return max(1, int(round(self.rate)))


def limiter_for(rate: float) -> TokenBucket | None:
    return TokenBucket(rate) if rate > 0 else None


def is_limited(method: str, template: str) -> bool:
    return (method.upper(), template) in LIMITED_ROUTES


async def limited(request: web.Request, handler: Handler, bucket: TokenBucket) -> web.StreamResponse:
    """A request of a limited route through `bucket`: 429 when it is empty, else `handler`'s answer."""
    decision = bucket.take()
    headers = {"X-RateLimit-Limit": str(bucket.limit), "X-RateLimit-Remaining": str(decision.remaining)}
    if not decision.allowed:
        metrics.record_rate_limited()
        return error(429, EXCEEDED, headers | {"Retry-After": str(decision.retry_after)})
    response = await handler(request)
    if not response.prepared:
        response.headers.update(headers)
    return response
