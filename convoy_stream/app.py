"""The Faust application: topics, tables and the services every worker runs.

Reading order for a newcomer: `records.py` (what flows), this file (where it
flows), `pipeline.py` (the agent), `web/` (the HTTP ways in), `bridges/`
(the broker ways in), `tables/` (config view and event lookups).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from mode import Service

from tables import ownership
from tables.config import ConfigStore

from . import direct_handoff, request_log, transforms
from .agent_commits import AgentCommits
from .faust_ext import changelog_reads
from .faust_ext.app import App
from .ingest_feed import FeedConductor, IngestFeed
from .ingestion import Tables
from .kafka_preflight import check_cluster, quiet_aiokafka
from .liveness import Liveness
from .publisher import DOWNSTREAM_MAX_BYTES, Publisher, anchor_group, anchor_records
from .records import Delivery, IngestRecord
from .settings import Settings
from .topic_layout import Layout, TopicSpec, broker_count, ensure_layout, resolve_layout

log = logging.getLogger(__name__)


class ConvoyApp(App):
    settings: Settings
    config_store: ConfigStore
    publisher: Publisher
    event_tables: Tables
    dead_letters: Any
    request_log: Any
    agent_commits: AgentCommits
    ingest_feed: IngestFeed
    liveness: Liveness

    def on_webserver_init(self, web: Any) -> None:
        from .web.routes import install

        install(self, web.web_app)

    def active_keys(self) -> Callable[[str], bool]:
        """Whether a table key belongs to a partition this worker is active for (`tables/ownership.py`)."""
        return ownership.active_keys(self.assignor, self.publisher.ingest_topic, self.settings.partitions)

    def new_conductor(self) -> Any:
        # The ingest topic's messages go to the pipeline's feed, not through a stream.
        return FeedConductor(app=self, beacon=None)

    def on_consumer_created(self, consumer: Any) -> None:
        # Before the first assignment: what is committed on the agents' topics, the
        # drain loop's hand-off, and no fetched changelog record lost to recovery.
        self.agent_commits.install(consumer)
        direct_handoff.install(consumer)
        changelog_reads.install(self, consumer)

    async def on_streams_empty(self) -> None:
        # A revoke waits for the pipeline's batch in hand, as Faust waits for its streams.
        await self.ingest_feed.wait_idle()


def create_app(settings: Settings) -> ConvoyApp:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = ConvoyApp(
        settings.app_id,
        broker=settings.kafka.faust_broker(),
        # TLS/SASL for Faust's consumer, producer and admin: the same as every other client.
        broker_credentials=settings.kafka.faust_credentials(),
        # RocksDB, always: the pipeline writes its tables' databases directly (table_writes.py).
        store="rocksdb://",
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        web_port=settings.port,
        web_bind=settings.bind or settings.host,
        web_host=settings.host,
        canonical_url=f"http://{settings.host}:{settings.port}",
        topic_partitions=settings.partitions,
        # Resolved from the cluster at start (`create_topics`); every topic is created there.
        topic_replication_factor=1,
        table_standby_replicas=settings.standby_replicas,
        key_serializer="json",
        value_serializer="orjson",
        producer_acks=-1,
        # Changelog and delivery records of many events share a produce request.
        producer_linger=0.005,
        # aiokafka keeps one open batch per partition and makes the agent wait for it to be
        # sent once it is full: at the 16 KiB default, every ~15 stored events.
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=DOWNSTREAM_MAX_BYTES,
        # Records fetched per partition per request (aiokafka's max_partition_fetch_bytes;
        # fetch_max_bytes, 50 MB, caps a whole request). At the 1 MB default a worker of two
        # waited on fetches (docs/mechanisms.md#group-timeouts).
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        # Finish the event in hand before a rebalance: an agent still writing a row for a
        # partition that is being recovered elsewhere is how rows go missing.
        stream_wait_empty=True,
        # keepalive_timeout also bounds how long a connection may take to send its
        # request headers (aiohttp arms it at connect); see web/body.py for bodies.
        web_application_options={"client_max_size": 8 * 1024 * 1024,
                                 "handler_args": {"keepalive_timeout": settings.keepalive_timeout}},
        # Faust's own pages would expose table contents without auth.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
    )
    app.settings = settings
    transforms.configure(transforms.ScriptLimits.from_settings(settings))
    app.publisher = Publisher(
        settings.kafka,
        ingest_topic=f"{settings.app_id}-ingest",
        dead_letter_topic=f"{settings.app_id}-dead-letters",
        partitions=settings.partitions,
        timeout=settings.publish_timeout,
    )
    app.config_store = ConfigStore(settings.kafka, f"{settings.app_id}-config")
    app.publisher.config_position = lambda: app.config_store.position
    app.liveness = Liveness(app, exit_after=settings.unhealthy_exit_after, ingest_topic=f"{settings.app_id}-ingest",
                            stall_after=settings.commit_stall_after)
    return app


settings = Settings.from_env()
app = create_app(settings)

ingest_topic = app.topic(
    f"{settings.app_id}-ingest", key_type=str, value_type=IngestRecord,
    key_serializer="json", partitions=settings.partitions,
)
delivery_topic = app.topic(
    f"{settings.app_id}-deliveries", key_type=str, value_type=Delivery,
    key_serializer="json", partitions=settings.partitions,
)

#: Read as bytes: the dead-letter agent checks each record itself (`dead_letters.read`).
dead_letter_topic = app.topic(
    f"{settings.app_id}-dead-letters", key_type=None, value_type=None,
    key_serializer="raw", value_serializer="raw", partitions=settings.partitions,
)
#: Turned-away webhook requests, on their way to the request log's table (`request_log.py`).
request_log_topic = app.topic(
    request_log.topic_name(settings.app_id), key_type=str, value_type=None,
    key_serializer="json", value_serializer="orjson", partitions=settings.partitions,
)
#: What the agents wrote decides what is committed on their input topics (agent_commits.py).
app.agent_commits = AgentCommits([ingest_topic.get_topic_name(), dead_letter_topic.get_topic_name(),
                                  request_log_topic.get_topic_name()])

#: At most this many ingest records are processed (and their rows written) together. A batch
#: holds the event loop for its whole processing, and the HTTP requests of the same worker
#: wait meanwhile (docs/mechanisms.md#ingest-feed).
BATCH_MAX = 200
#: How long a batch may wait to fill while a backlog is behind it (`ingest_feed`).
BATCH_WITHIN = 0.005

#: The ingest topic's records, fetched by Faust's consumer, in batches for the pipeline.
app.ingest_feed = IngestFeed(app, ingest_topic.get_topic_name(), max_batch=BATCH_MAX, within=BATCH_WITHIN)
app.topics.add(ingest_topic)  # subscribed, though no stream iterates it


def _table(name: str) -> Any:
    """A partitioned table whose RocksDB memory is bounded.

    Faust opens one RocksDB per table and partition (4 tables x 8 partitions here), each
    by default with up to 3 x 64 MiB of write buffers and a 2 GiB block cache of its own,
    far more than a worker needs (docs/mechanisms.md#table-writes).
    These limits keep every database within 3 x 4 MiB + 8 MiB.
    """
    return app.Table(name, key_type=str, partitions=settings.partitions, options={
        "write_buffer_size": 4 * 1024 * 1024,
        "max_write_buffer_number": 3,
        "block_cache_size": 8 * 1024 * 1024,
    })


#: "<project>/<uid>" -> dead-letter document, listed by the API
dead_letters_table = app.dead_letters = _table("dead-letters")
#: "<project>/<uid>" -> a turned-away webhook request (`request_log.py`)
request_log_table = app.request_log = _table("requests")

app.event_tables = Tables(events=_table("events"), idempotency=_table("idempotency"), broker_ids=_table("broker-ids"))


def topic_specs() -> list[TopicSpec]:
    """Every topic the worker uses, Faust's own included: all are created by `create_topics`."""
    partitions = settings.partitions
    # A delivery record or a stored event row can outgrow the ingest record it came from.
    downstream = DOWNSTREAM_MAX_BYTES
    return [
        TopicSpec(ingest_topic.get_topic_name(), partitions),
        TopicSpec(dead_letter_topic.get_topic_name(), partitions),
        TopicSpec(delivery_topic.get_topic_name(), partitions, max_message_bytes=downstream),
        TopicSpec(request_log_topic.get_topic_name(), partitions, retention_ms=request_log.TOPIC_RETENTION_MS,
                  segment_bytes=request_log.TOPIC_SEGMENT_BYTES),
        TopicSpec(f"{settings.app_id}-config", 1, compacted=True),
        # Changelogs too: a consumer that first sees a changelog before it exists
        # remembers it with 0 partitions, and every table write then fails with
        # PartitionsMismatch until the next rebalance.
        *(TopicSpec(table.changelog_topic.get_topic_name(), partitions, compacted=True, max_message_bytes=downstream)
          for table in app.tables.values()),
        # Faust's leader-election topic (faust.assignor.leader_assignor).
        TopicSpec(f"{app.conf.id}-__assignor-__leader", 1),
    ]


async def create_topics() -> Layout:
    """Check the cluster and create every topic, replicated, before the worker subscribes.

    Run before Faust starts: a consumer that subscribes before its topic exists ignores the
    topic ("Ignoring missing topic") and never consumes it. Raises `ClusterUnusable`,
    `SettingError` or `TopicMismatch` (one line each) when the worker cannot run.
    """
    await check_cluster(settings.kafka)
    with quiet_aiokafka():
        brokers = await broker_count(settings.kafka)
        layout = resolve_layout(settings.replication_factor, settings.min_insync_replicas, brokers)
        # Anything Faust would still create gets the same replication.
        app.conf.topic_replication_factor = layout.replication_factor
        await ensure_layout(settings.kafka, topic_specs(), layout, brokers=brokers)
        names = [ingest_topic.get_topic_name(), dead_letter_topic.get_topic_name()]
        await anchor_group(settings.kafka, settings.app_id, anchor_records(*names, **{
            request_log_topic.get_topic_name(): request_log.ANCHOR}), settings.partitions)
    return layout


@app.service
class Infrastructure(Service):
    """Topics, the durable publisher and the config view: up before any request."""

    async def on_start(self) -> None:
        app.liveness.start()
        await app.publisher.start()
        await app.config_store.start(app.publisher.producer)
        await app.config_store.ready.wait()
        from .cluster import ensure_cluster_secret

        await ensure_cluster_secret(app.config_store)
        if settings.run_bridges:
            from .bridge_runner import start_bridges

            await start_bridges(app)

    @Service.task
    async def _announce_ready(self) -> None:
        """One line when the worker can take events, whatever the log level."""
        while app.rebalancing or app.consumer_generation_id <= 0 or not app.config_store.ready.is_set():
            await self.sleep(0.2)
        print(f"convoy-stream ready: {settings.base_url} (GET /health)", flush=True)

    async def on_stop(self) -> None:
        if settings.run_bridges:
            from .bridge_runner import stop_bridges

            await stop_bridges(app)
        await app.config_store.stop()
        await app.publisher.stop()

