"""`GET /metrics` (Prometheus text format) and the middleware that counts HTTP requests.

`/metrics` needs the instance admin token (`Authorization: Bearer <token>`;
Prometheus sends it with `authorization: {credentials: ...}` in a scrape
config): the only unauthenticated routes are `/health`, `/openapi.json` and
`/ingest/*`. Requests are labelled by route *template* (`/ingest/{maskID}`),
never by the raw path, so a scanner cannot blow up the number of series;
requests that match no route share the label `unmatched`.

The consumer lag of the ingest topic is computed when scraped, from the Faust
consumer of this worker: for every ingest partition assigned to it, the
partition's high watermark (the next offset Kafka will write, as last seen by
the consumer's fetcher) minus the committed offset (the next offset the group
will read). It is what `kafka-consumer-groups --describe` calls LAG, per
worker; it includes up to `broker_commit_interval` (0.5 s) of records already
processed but not yet committed.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import metrics
from ..faust_ext.consumer import committed_offset
from .auth import require_admin
from .context import Worker, ctx

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The registered path template of the request's route, or `unmatched`."""
    match_info = request.match_info
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(match_info, "http_exception", None) is not None:
        return UNMATCHED
    return str(resource.canonical)


class ConsumerLagCollector(Collector):
    """`convoy_stream_consumer_lag{topic,partition}` for the partitions this worker consumes."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, int, int]]] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "convoy_stream_consumer_lag",
            "Records in the ingest topic not yet processed and committed by this worker "
            "(high watermark minus committed offset), per assigned partition.",
            labels=["topic", "partition"],
        )
        if self.source is not None:
            try:
                for topic, partition, lag in self.source():
                    family.add_metric([topic, str(partition)], lag)
            except Exception:  # a scrape must never fail because the consumer is rebalancing
                log.debug("consumer lag not available", exc_info=True)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


LAG = ConsumerLagCollector()
metrics.REGISTRY.register(LAG)


def ingest_lag(app: Worker, topic: str) -> list[tuple[str, int, int]]:
    """(topic, partition, lag) for every partition of `topic` assigned to this worker's consumer."""
    consumer: Any = app.consumer
    found = []
    for tp in sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
        if tp.topic != topic:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:
            continue
        if highwater is None:
            continue
        done = committed_offset(consumer, tp)
        found.append((tp.topic, tp.partition, max(0, int(highwater) - int(done or 0))))
    return found


def install(app: Worker, ingest_topic: str) -> None:
    LAG.source = lambda: ingest_lag(app, ingest_topic)


async def serve_metrics(request: web.Request) -> web.Response:
    c = ctx(request)
    # Not `c.admin`: metrics are most wanted while a worker is starting or stuck.
    require_admin(request, c.config, c.admin_digest)
    return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
