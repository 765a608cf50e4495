"""The one place that touches the private parts of faust-streaming, mode, aiokafka, rocksdict and aiohttp.

The pipeline's mechanisms (docs/mechanisms.md) subclass, patch or read library internals:
Faust's conductor and consumer bookkeeping, the RocksDB store's encoders and databases, the
aiokafka producer under Faust's, a record's internal state. Every such touch lives in a
module of this package, behind a named function or class, and the rest of the code calls
those:

- `app.py`: `App`, Faust's app with public hooks for the private ones we override;
- `consumer.py`: the conductor's message handler, the consumer's commit bookkeeping, its
  flow state and its fetcher;
- `tables.py`: the RocksDB store's encoders and per-partition databases;
- `producer.py`: the aiokafka producer under Faust's, and its broker connections;
- `records.py`: a record's state written directly, and a record class's fields;
- `codecs.py`: Faust's codec hooks;
- `changelog_reads.py`: no fetched changelog record lost before recovery applies it;
- `group_assignment.py`: Faust's assignment read from the consumer group, outside it.

`SEAMS` lists every library name the code relies on (the private ones and the public ones
whose behaviour we depend on), with what it is used for; `tests/unit/test_library_seams.py`
checks each against the installed classes, and `tests/unit/test_library_privates.py` fails
when code outside this package names a library's private attribute, or code inside it names
one that is not listed here. The libraries are pinned exactly (`PINS`, equal to
`pyproject.toml`); importing this package with another version installed raises
`LibraryVersionMismatch` with one line, so an upgrade is a deliberate act: bump the pin, run
the seam test, read the libraries' changes for every name below.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

#: The exact versions the seams were read in (the pins of pyproject.toml).
PINS: dict[str, str] = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
    "rocksdict": "0.3.29",
    "aiohttp": "3.14.5",
}


class LibraryVersionMismatch(ImportError):
    """An installed library is not the version whose internals `SEAMS` were checked against."""


def check_versions(pins: dict[str, str] = PINS) -> None:
    """Raise `LibraryVersionMismatch` (one line naming every mismatch) unless each pin is installed."""
    wrong = []
    for package, pinned in pins.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "none"
        if installed != pinned:
            wrong.append(f"{package} {installed} is installed, {pinned} is required")
    if wrong:
        raise LibraryVersionMismatch(
            "; ".join(wrong) + " (convoy_stream/faust_ext relies on their internals: install the pinned versions)",
            name=__name__)


check_versions()

#: Kinds a seam can be.
METHOD, COROUTINE, CLASSMETHOD, PROPERTY, ATTRIBUTE, CALLABLE = (
    "method", "coroutine function", "classmethod", "property", "attribute", "callable")

#: `instance:<name>` owners: the library whose object it is.
_INSTANCE_LIBRARY = {
    "consumer": "faust-streaming", "fetcher": "faust-streaming", "worker": "faust-streaming",
    "store": "faust-streaming", "record_options": "faust-streaming", "changelog_queue": "mode-streaming",
    "aiokafka_producer": "aiokafka", "aiokafka_client": "aiokafka", "aiokafka_consumer": "aiokafka",
}
_MODULE_LIBRARY = {"faust": "faust-streaming", "mode": "mode-streaming", "aiokafka": "aiokafka",
                   "rocksdict": "rocksdict", "aiohttp": "aiohttp"}


@dataclass(frozen=True)
class Seam:
    """One library name our code relies on.

    `owner` is `module:Class` (a class attribute or method) or `instance:<name>` (an
    attribute that exists only on an instance, built by the seam test as convoy-stream
    builds it). `use` says where and what for (a module of `convoy_stream/`, `faust_ext/` or
    the directory named). `params` are the parameter names of
    `inspect.signature` (None: not checked). `calls` are source fragments the attribute's
    own source must contain (where we rely on how the library calls it).
    """

    owner: str
    name: str
    kind: str
    use: str
    params: tuple[str, ...] | None = None
    calls: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.owner.split(':')[-1]}.{self.name}"

    @property
    def library(self) -> str:
        kind, _, rest = self.owner.partition(":")
        if kind == "instance":
            return _INSTANCE_LIBRARY[rest]
        return _MODULE_LIBRARY[kind.split(".")[0]]

    @property
    def qualified_name(self) -> str:
        return f"{self.owner}.{self.name}"


FAUST_APP = "faust.app.base:App"
CONDUCTOR = "faust.transport.conductor:Conductor"
CONSUMER = "faust.transport.drivers.aiokafka:Consumer"  # the class Faust's aiokafka transport builds
BASE_CONSUMER = "faust.transport.consumer:Consumer"
STORE = "faust.stores.rocksdb:Store"
FLOW = "mode.utils.queues:FlowControlEvent"
RECORD = "faust.models.record:Record"
CODEC = "faust.serializers.codecs:Codec"

SEAMS: tuple[Seam, ...] = (
    # -- app.py: App's private construction and revoke hooks ------------------------------------
    Seam(FAUST_APP, "_new_conductor", METHOD, "faust_ext/app.py App._new_conductor -> new_conductor (FeedConductor)",
         ("self",)),
    Seam(FAUST_APP, "_new_consumer", METHOD,
         "faust_ext/app.py App._new_consumer -> on_consumer_created (agent_commits, direct_handoff)", ("self",)),
    Seam(FAUST_APP, "_consumer_wait_empty", COROUTINE,
         "faust_ext/app.py App._consumer_wait_empty -> on_streams_empty (ingest_feed.wait_idle)",
         ("self", "consumer", "logger")),
    Seam(FAUST_APP, "_on_partitions_revoked", COROUTINE, "faust_ext/app.py: a revoke reaches our _consumer_wait_empty",
         ("self", "revoked"), calls=("self._consumer_wait_empty",)),
    Seam(FAUST_APP, "on_webserver_init", METHOD, "convoy_stream/app.py ConvoyApp.on_webserver_init (web/ routes)",
         ("self", "web")),
    Seam(FAUST_APP, "flow_control", PROPERTY, "ingest_feed.py IngestFeed.on_message/run"),
    Seam(FAUST_APP, "rebalancing", ATTRIBUTE, "ingest_feed.py, pipeline.py, app.py, web/health.py"),
    Seam(FAUST_APP, "in_recovery", ATTRIBUTE, "web/health.py, liveness.py"),
    Seam(FAUST_APP, "consumer_generation_id", ATTRIBUTE, "ingest_feed.py IngestFeed.current, app.py, web/health.py"),
    Seam("faust.assignor.partition_assignor:PartitionAssignor", "assigned_actives", METHOD,
         "tables/ownership.py active_keys", ("self",)),
    # -- consumer.py: the conductor's message handler, flow control ----------------------------
    Seam(CONDUCTOR, "_compile_message_handler", METHOD,
         "faust_ext/consumer.py Conductor._compile_message_handler -> wrap_message_handler "
         "(ingest_feed.FeedConductor)", ("self",)),
    Seam(CONDUCTOR, "__init__", METHOD, "app.py ConvoyApp.new_conductor: FeedConductor(app=..., beacon=None)",
         ("self", "app", "kwargs")),
    Seam(FLOW, "manage_queue", METHOD, "ingest_feed.py IngestFeed.run", ("self", "queue")),
    Seam(FLOW, "clear", METHOD, "ingest_feed.py IngestFeed.clear (emptied at revoke and resume)", ("self",),
         calls=("queue.clear()",)),
    Seam(FLOW, "is_active", METHOD, "ingest_feed.py IngestFeed.on_message", ("self",)),
    Seam(FLOW, "acquire", COROUTINE, "ingest_feed.py IngestFeed.on_message", ("self",)),
    *(Seam("faust.types.tuples:Message", name, ATTRIBUTE, "ingest_feed.py, agent_commits.py, pipeline.py (message)")
      for name in ("tp", "topic", "partition", "offset", "value", "generation_id")),
    # -- consumer.py: the commit bookkeeping agent_commits.py replaces -------------------------
    Seam(BASE_CONSUMER, "_new_offset", METHOD, "faust_ext/consumer.py replace_new_offset (agent_commits.py)",
         ("self", "tp")),
    Seam(BASE_CONSUMER, "_filter_committable_offsets", METHOD,
         "faust_ext/consumer.py replace_new_offset: Faust asks the instance's _new_offset", ("self", "tps"),
         calls=("self._new_offset(tp)",)),
    Seam(BASE_CONSUMER, "_filter_tps_with_pending_acks", METHOD,
         "faust_ext/consumer.py replace_pending_acks (agent_commits.py)", ("self", "topics")),
    Seam(BASE_CONSUMER, "force_commit", COROUTINE,
         "faust_ext/consumer.py replace_pending_acks: Faust asks the instance's _filter_tps_with_pending_acks",
         ("self", "topics", "start_new_transaction"),
         calls=("self._filter_tps_with_pending_acks(topics)",)),
    Seam(BASE_CONSUMER, "perform_seek", COROUTINE, "agent_commits.py AgentCommits.install (wrapped)", ("self",)),
    Seam(BASE_CONSUMER, "getmany", CALLABLE, "agent_commits.py: Faust calls the instance's perform_seek; "
         "faust_ext/changelog_reads.py: Faust skips records of paused partitions",
         ("self", "timeout"), calls=("await self.perform_seek()", "tp in active_partitions")),
    Seam(CONSUMER, "seek_wait", COROUTINE, "agent_commits.py AgentCommits._seek", ("self", "partitions")),
    Seam(CONSUMER, "earliest_offsets", COROUTINE, "agent_commits.py perform_seek", ("self", "partitions")),
    Seam(CONSUMER, "highwater", METHOD, "agent_commits.py end_offset, web/metrics.py ingest_lag, liveness.py",
         ("self", "tp")),
    Seam(CONSUMER, "assignment", METHOD, "agent_commits.py, web/metrics.py ingest_lag, liveness.py", ("self",)),
    *(Seam("instance:consumer", name, ATTRIBUTE, use) for name, use in (
        ("_acked", "faust_ext/consumer.py forget_acks (agent_commits.py)"),
        ("_acked_index", "faust_ext/consumer.py forget_acks (agent_commits.py)"),
        ("_gap", "faust_ext/consumer.py forget_acks (agent_commits.py)"),
        ("_committed_offset", "faust_ext/consumer.py committed_offset, set_committed_offset "
                              "(agent_commits.py, liveness.py, web/metrics.py ingest_lag)"),
    )),
    # -- consumer.py and direct_handoff.py: the drain loop's hand-off -------------------------
    Seam(BASE_CONSUMER, "_drain_messages", COROUTINE, "direct_handoff.py (the call it short-cuts)",
         ("self", "fetcher"), calls=("await self.wait_first(", "callback(message), self.suspend_flow.wait()")),
    Seam("mode.services:Service", "wait_first", COROUTINE, "direct_handoff.py install (replaced on the consumer)",
         ("self", "coros", "timeout")),
    Seam("mode.services:WaitResults", "_fields", ATTRIBUTE, "direct_handoff.py WaitResults(done, results, stopped)"),
    Seam("instance:consumer", "suspend_flow", ATTRIBUTE, "faust_ext/consumer.py flow_open (direct_handoff.py)"),
    *(Seam("instance:consumer", name, ATTRIBUTE, "faust_ext/consumer.py flow_open (direct_handoff.py)")
      for name in ("_stopped", "_crashed")),
    # -- consumer.py: the fetcher (liveness.py) -------------------------------------------------
    Seam(FAUST_APP, "_fetcher", PROPERTY, "faust_ext/consumer.py fetcher (liveness.py Liveness._fetcher_dead)"),
    Seam("instance:fetcher", "_shutdown", ATTRIBUTE, "faust_ext/consumer.py fetcher_shut_down (liveness.py)"),
    Seam("instance:fetcher", "crashed", ATTRIBUTE, "liveness.py Liveness._fetcher_dead"),
    Seam("instance:fetcher", "crash_reason", ATTRIBUTE, "liveness.py Liveness._fetcher_dead"),
    # -- tables.py: the RocksDB store's internals (table_writes.py, tables/scan.py) --------------
    Seam(STORE, "_encode_key", METHOD, "faust_ext/tables.py codec (table_writes.py TableWrites)", ("self", "key")),
    Seam(STORE, "_encode_value", METHOD, "faust_ext/tables.py codec (table_writes.py TableWrites)", ("self", "value")),
    Seam(STORE, "_decode_value", METHOD, "faust_ext/tables.py codec, value_decoder (table_writes.py, tables/scan.py)",
         ("self", "value")),
    Seam(STORE, "_db_for_partition", METHOD,
         "faust_ext/tables.py partition_db (table_writes.py TableWrites.view, Batch.write)", ("self", "partition")),
    Seam(STORE, "_dbs_for_actives", METHOD, "faust_ext/tables.py active_dbs (tables/scan.py scan)", ("self",)),
    Seam("instance:store", "_dbs", ATTRIBUTE, "faust_ext/tables.py has_open_db (table_writes.py Batch.write)"),
    Seam(STORE, "set_persisted_offset", METHOD, "table_writes.py Batch.write", ("self", "tp", "offset")),
    Seam("faust.topics:Topic", "prepare_key", METHOD, "table_writes.py Batch.add_delivery",
         ("self", "key", "key_serializer", "schema", "headers")),
    Seam("rocksdict:", "WriteBatch", CALLABLE, "table_writes.py WriteBatch(raw_mode=True)", ("raw_mode",)),
    Seam("rocksdict:WriteBatch", "put", METHOD, "table_writes.py Batch.write",
         ("self", "key", "value", "column_family")),
    Seam("rocksdict:WriteBatch", "delete", METHOD, "table_writes.py Batch.write", ("self", "key", "column_family")),
    Seam("rocksdict:Rdict", "write", METHOD, "table_writes.py Batch.write", ("self", "write_batch", "write_opt")),
    Seam("rocksdict:Rdict", "iter", METHOD, "tables/scan.py _rocksdb_run", ("self", "read_opt")),
    *(Seam("rocksdict:RdictIter", name, METHOD, "tables/scan.py _rocksdb_run")
      for name in ("seek", "seek_for_prev", "valid", "key", "value", "prev", "next")),
    # -- producer.py: the aiokafka producer under Faust's, and aiokafka's connections -------------
    Seam("faust.transport.drivers.aiokafka:Producer", "_ensure_producer", METHOD,
         "faust_ext/producer.py aiokafka_producer (pipeline.py: Batch.write sends with aiokafka)", ("self",)),
    *(Seam(f"instance:aiokafka_{owner}", name, ATTRIBUTE, "faust_ext/producer.py connected (Publisher.connected)")
      for owner, name in (("producer", "client"), ("client", "_conns"))),
    Seam("aiokafka.conn:AIOKafkaConnection", "connected", METHOD, "faust_ext/producer.py connected", ("self",)),
    Seam("aiokafka:AIOKafkaProducer", "create_batch", METHOD, "publisher.py send_records", ("self",)),
    Seam("aiokafka:AIOKafkaProducer", "send_batch", COROUTINE, "publisher.py _submit",
         ("self", "batch", "topic", "partition")),
    Seam("aiokafka.producer.message_accumulator:BatchBuilder", "append", METHOD,
         "publisher.py send_records (None when full)", ("self", "timestamp", "key", "value", "headers")),
    Seam("aiokafka.producer.message_accumulator:BatchBuilder", "close", METHOD, "publisher.py _submit", ("self",)),
    # -- records.py: Record internals (convoy_stream/records.py) ---------------------------------
    Seam(RECORD, "from_data", CLASSMETHOD, "convoy_stream/records.py IngestRecord.from_data (override)",
         ("cls", "data", "preferred_type")),
    Seam(RECORD, "_BUILD_init", CLASSMETHOD, "faust_ext/records.py assemble (what __init__ stores)",
         calls=("self.__evaluated_fields__ = set()",)),
    Seam(RECORD, "to_representation", METHOD, "convoy_stream/codecs.py dumps_record", ("self",)),
    Seam(RECORD, "_options", ATTRIBUTE, "faust_ext/records.py required_fields, assemble"),
    Seam("instance:record_options", "fields", ATTRIBUTE, "faust_ext/records.py required_fields (the field names)"),
    Seam("instance:record_options", "defaults", ATTRIBUTE, "faust_ext/records.py required_fields, assemble"),
    # -- codecs.py: the orjson codec overrides Codec's private hooks -----------------------------
    Seam(CODEC, "_dumps", METHOD, "faust_ext/codecs.py OrJSON._dumps (override)", ("self", "s")),
    Seam(CODEC, "_loads", METHOD, "faust_ext/codecs.py OrJSON._loads (override)", ("self", "s")),
    Seam("faust.serializers.codecs:", "register", CALLABLE, "convoy_stream/codecs.py registers 'orjson'",
         ("name", "codec")),
    # -- convoy_stream/cli.py: Faust's worker -----------------------------------------------------
    Seam("instance:worker", "spinner", ATTRIBUTE, "cli.py _run_worker (worker.spinner = None)"),
    Seam("faust.worker:Worker", "execute_from_commandline", METHOD, "cli.py _run_worker", ("self",)),
    Seam("faust.worker:Worker", "on_stop", COROUTINE, "shutdown.py Worker.on_stop (the first step of every stop)",
         ("self",)),
    # -- convoy_stream/web/protocol_errors.py: aiohttp's own refusals in the envelope -------------
    Seam("aiohttp.web_protocol:RequestHandler", "handle_error", METHOD, "web/protocol_errors.py install (replaced)",
         ("self", "request", "status", "exc", "message")),
    # -- bench/ (outside the worker): aiokafka's client ------------------------------------------
    Seam("instance:aiokafka_consumer", "_client", ATTRIBUTE, "bench/harness.py, bench/scenario_e2e.py"),
    Seam("aiokafka.client:AIOKafkaClient", "force_metadata_update", METHOD,
         "bench/harness.py, bench/scenario_e2e.py", ("self",)),
    Seam("instance:aiokafka_client", "cluster", ATTRIBUTE, "bench/harness.py partition leaders"),
    # -- faust_ext/changelog_reads.py: no fetched changelog record is lost to recovery ------
    Seam("faust.tables.manager:TableManager", "changelog_queue", PROPERTY,
         "faust_ext/changelog_reads.py keep_queued_records"),
    Seam("faust.tables.manager:TableManager", "recovery", PROPERTY,
         "faust_ext/changelog_reads.py (the partitions it tracks)"),
    Seam("faust.tables.recovery:Recovery", "__init__", METHOD,
         "faust_ext/changelog_reads.py reads active_tps, standby_tps", ("self", "app", "tables", "kwargs"),
         calls=("self.standby_tps = set()", "self.active_tps = set()")),
    Seam("faust.tables.recovery:Recovery", "on_recovery_completed", COROUTINE,
         "faust_ext/changelog_reads.py: the resume after the standbys fetch", ("self", "generation_id"),
         calls=("self.app.flow_control.resume()",)),
    Seam(FLOW, "resume", METHOD, "faust_ext/changelog_reads.py: a resume clears the queues with the flow active",
         ("self",), calls=("self._suspend.clear()", "self.clear()")),
    Seam("mode.utils.queues:ThrowableQueue", "clear", METHOD,
         "faust_ext/changelog_reads.py (replaced on the changelog queue)", ("self",)),
    Seam("instance:changelog_queue", "_queue", ATTRIBUTE,
         "faust_ext/changelog_reads.py keep_queued_records (the queued events, filtered in place)"),
    Seam(BASE_CONSUMER, "_is_changelog_tp", METHOD, "faust_ext/changelog_reads.py put_back_paused_records",
         ("self", "tp")),
    Seam("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_fetch_records", COROUTINE,
         "faust_ext/changelog_reads.py put_back_paused_records (replaced on the thread)",
         ("self", "consumer", "active_partitions", "timeout", "max_records")),
    Seam("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "getmany", COROUTINE,
         "faust_ext/changelog_reads.py: the thread calls the instance's _fetch_records",
         ("self", "active_partitions", "timeout"), calls=("self._fetch_records",)),
    Seam("aiokafka.consumer.fetcher:Fetcher", "fetched_records", COROUTINE,
         "faust_ext/changelog_reads.py: an empty partition set means every partition",
         ("self", "partitions", "timeout", "max_records"), calls=("if partitions and tp not in partitions",)),
    *(Seam("instance:consumer", name, ATTRIBUTE, "faust_ext/changelog_reads.py put_back_paused_records")
      for name in ("_thread", "_buffered_partitions")),
    Seam("faust.assignor.partition_assignor:PartitionAssignor", "_decompress", CLASSMETHOD,
         "faust_ext/group_assignment.py: a member's assignment user data, as on_assignment reads it",
         ("cls", "compressed")),
    Seam("faust.assignor.partition_assignor:PartitionAssignor", "on_assignment", METHOD,
         "faust_ext/group_assignment.py: decodes the user data the same way",
         ("self", "assignment"), calls=("ClientMetadata.loads(self._decompress(assignment.user_data))",)),
)

#: The private (underscore) library names in `SEAMS`: only this package may name them.
PRIVATE_NAMES: frozenset[str] = frozenset(s.name for s in SEAMS if s.name.startswith("_") and not s.name.endswith("__"))
