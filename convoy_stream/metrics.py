"""Prometheus metrics of one worker process, served at `GET /metrics` (`web/metrics.py`).

Every metric lives in one registry of its own (not prometheus_client's global
one), so importing this module twice in a test never registers a name twice.
Code that counts something calls the small functions below; it never touches
prometheus_client directly, so the names and labels are defined in one place.

| metric | labels | counted where |
|---|---|---|
| `convoy_stream_http_requests_total` | method, route, status | aiohttp middleware (`web/metrics.py`) |
| `convoy_stream_http_request_duration_seconds` | method, route | same |
| `convoy_stream_webhook_verification_failures_total` | source_id | `web/webhooks.py` |
| `convoy_stream_records_produced_total` | topic | `publisher.py` (ingest, dead letters), agent (deliveries) |
| `convoy_stream_records_consumed_total` | topic | agent (ingest records) |
| `convoy_stream_dead_letters_total` | source_id | `publisher.dead_letter` |
| `convoy_stream_records_skipped_total` | topic | agents (records of their topic that are not ours) |
| `convoy_stream_ingest_rate_limited_total` | - | `web/ratelimit.py` |
| `convoy_stream_bridge_reconnects_total` | broker | `record_bridge_reconnect`, called by the bridges |
| `convoy_stream_consumer_lag` | topic, partition | computed at scrape time (`web/metrics.py`) |
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

disable_created_metrics()  # the `*_created` series only double the scrape size
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "convoy_stream_http_requests", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"], registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "convoy_stream_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
    ["method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
VERIFICATION_FAILURES = Counter(
    "convoy_stream_webhook_verification_failures",
    "Webhooks refused with 'Request verification failed', by source id.",
    ["source_id"], registry=REGISTRY,
)
RECORDS_PRODUCED = Counter(
    "convoy_stream_records_produced", "Records this worker wrote to a topic and Kafka acknowledged (records out).",
    ["topic"], registry=REGISTRY,
)
RECORDS_CONSUMED = Counter(
    "convoy_stream_records_consumed", "Records this worker's pipeline agent consumed from a topic (records in).",
    ["topic"], registry=REGISTRY,
)
RECORDS_SKIPPED = Counter(
    "convoy_stream_records_skipped", "Records of an agent's input topic skipped because they cannot be read "
    "(not written by convoy-stream).", ["topic"], registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "convoy_stream_dead_letters", "Messages written to the dead-letter topic, by source id.",
    ["source_id"], registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "convoy_stream_ingest_rate_limited", "Event requests refused with 429 by the instance ingest rate limit.",
    registry=REGISTRY,
)
BRIDGE_RECONNECTS = Counter(
    "convoy_stream_bridge_reconnects", "Times a broker bridge reconnected after losing or failing its connection.",
    ["broker"], registry=REGISTRY,
)


#: Labelled children by label values: `labels()` takes a lock and builds its key on every
#: call, several microseconds on paths every event takes. The label values are bounded
#: (route templates, topics), so the children are kept.
_HTTP_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_PRODUCED: dict[str, Any] = {}
_CONSUMED: dict[str, Any] = {}


def record_http(method: str, route: str, status: int, seconds: float) -> None:
    children = _HTTP_CHILDREN.get((method, route, status))
    if children is None:
        children = _HTTP_CHILDREN[(method, route, status)] = (
            HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route))
    children[0].inc()
    children[1].observe(seconds)


def record_verification_failure(source_id: str) -> None:
    VERIFICATION_FAILURES.labels(source_id).inc()


def record_produced(topic: str, count: int = 1) -> None:
    child = _PRODUCED.get(topic) or _PRODUCED.setdefault(topic, RECORDS_PRODUCED.labels(topic))
    child.inc(count)


def record_consumed(topic: str, count: int = 1) -> None:
    child = _CONSUMED.get(topic) or _CONSUMED.setdefault(topic, RECORDS_CONSUMED.labels(topic))
    child.inc(count)


def record_skipped(topic: str) -> None:
    RECORDS_SKIPPED.labels(topic).inc()


def record_dead_letter(source_id: str) -> None:
    DEAD_LETTERS.labels(source_id or "unknown").inc()


def record_rate_limited() -> None:
    RATE_LIMITED.inc()


def record_bridge_reconnect(broker: str) -> None:
    """A bridge (re)opened its connection after a failure; `broker` is kafka|sqs|google|amqp."""
    BRIDGE_RECONNECTS.labels(broker).inc()
