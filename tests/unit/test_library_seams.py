"""The library internals convoy-stream relies on, checked against the installed libraries.

convoy-stream overrides, wraps or reads private parts of faust-streaming, mode-streaming,
aiokafka and rocksdict (underscore methods and attributes, subclass hooks, call shapes
inside Faust's consumer). The unit tests of those mechanisms use fakes, so an upgrade that
renames one of these names would pass them and break production. Every name is listed
here once, with the file that relies on it, and checked against the real classes and
real (never started) instances: that it exists, that it is the expected kind (method,
coroutine function, classmethod, property, attribute) and, for callables, that its
parameter names are unchanged. Where we rely on *how* the library calls a method (an
instance attribute we replace is only seen if the library looks it up through `self`),
the caller's source must still contain the call.

The checked versions are the exact pins of `pyproject.toml`: bumping one means running
this file and reading the libraries' changes for every name below.
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
import tomllib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

#: Kinds a seam can be.
METHOD, COROUTINE, CLASSMETHOD, PROPERTY, ATTRIBUTE, CALLABLE = (
    "method", "coroutine function", "classmethod", "property", "attribute", "callable")


@dataclass(frozen=True)
class Seam:
    """One library name our code relies on.

    `owner` is `module:Class` (a class attribute or method) or `instance:<name>` (an
    attribute that exists only on an instance, built by `real_instances`). `params` are
    the parameter names of `inspect.signature` (None: not checked). `calls` are source
    fragments the attribute's own source must contain (how the library calls us).
    """

    owner: str
    name: str
    kind: str
    reason: str
    params: tuple[str, ...] | None = None
    calls: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.owner.split(':')[-1]}.{self.name}"


def resolve(path: str) -> Any:
    """`package.module:Qual.Name` -> the object."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():
        obj = getattr(obj, part)
    return obj


def problems(seam: Seam, owner: Any) -> list[str]:
    """What is wrong with `seam` on `owner` (a class or an instance); empty when it holds."""
    where = f"{getattr(owner, '__qualname__', None) or getattr(owner, '__name__', type(owner).__qualname__)}.{seam.name}"
    try:
        static = inspect.getattr_static(owner, seam.name)
    except AttributeError:
        return [f"{where} is missing (relied on by {seam.reason})"]
    value = getattr(owner, seam.name)
    found: list[str] = []
    if seam.kind == CLASSMETHOD and not isinstance(static, classmethod):
        found.append(f"{where} is no longer a classmethod")
    elif seam.kind == PROPERTY and not isinstance(static, property) and type(static).__name__ != "cached_property":
        found.append(f"{where} is no longer a property ({type(static).__name__})")
    elif seam.kind == COROUTINE and not inspect.iscoroutinefunction(value):
        found.append(f"{where} is no longer a coroutine function")
    elif seam.kind == METHOD and (not callable(value) or inspect.iscoroutinefunction(value)):
        found.append(f"{where} is no longer a plain method")
    elif seam.kind == CALLABLE and not callable(value):
        found.append(f"{where} is no longer callable")
    if seam.params is not None and callable(value):
        target = static.__func__ if isinstance(static, (classmethod, staticmethod)) else value
        try:
            names = tuple(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            names = ("<no signature>",)
        if names != seam.params:
            found.append(f"{where} takes {names}, expected {seam.params}")
    if seam.calls:
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        found += [f"{where} no longer contains `{call}`" for call in seam.calls if call not in source]
    return [f"{problem} (relied on by {seam.reason})" for problem in found]


FAUST_APP = "faust.app.base:App"
CONSUMER = "faust.transport.drivers.aiokafka:Consumer"  # the class Faust's aiokafka transport builds
BASE_CONSUMER = "faust.transport.consumer:Consumer"
STORE = "faust.stores.rocksdb:Store"
FLOW = "mode.utils.queues:FlowControlEvent"

SEAMS: tuple[Seam, ...] = (
    # -- convoy_stream/app.py: ConvoyApp overrides three private App hooks ------------------
    Seam(FAUST_APP, "_new_conductor", METHOD, "app.py ConvoyApp._new_conductor (FeedConductor)", ("self",)),
    Seam(FAUST_APP, "_new_consumer", METHOD, "app.py ConvoyApp._new_consumer (installs agent_commits, direct_handoff)",
         ("self",)),
    Seam(FAUST_APP, "_consumer_wait_empty", COROUTINE, "app.py ConvoyApp._consumer_wait_empty (ingest_feed.wait_idle)",
         ("self", "consumer", "logger")),
    Seam(FAUST_APP, "_on_partitions_revoked", COROUTINE, "app.py: a revoke reaches our _consumer_wait_empty",
         ("self", "revoked"), calls=("self._consumer_wait_empty",)),
    Seam(FAUST_APP, "on_webserver_init", METHOD, "app.py ConvoyApp.on_webserver_init (installs web/ routes)",
         ("self", "web")),
    Seam(FAUST_APP, "flow_control", PROPERTY, "ingest_feed.py IngestFeed.on_message/run"),
    Seam(FAUST_APP, "rebalancing", ATTRIBUTE, "ingest_feed.py, pipeline.py, app.py, web/health.py"),
    Seam(FAUST_APP, "in_recovery", ATTRIBUTE, "web/health.py"),
    Seam(FAUST_APP, "consumer_generation_id", ATTRIBUTE, "ingest_feed.py IngestFeed.current, app.py, web/health.py"),
    Seam("faust.assignor.partition_assignor:PartitionAssignor", "assigned_actives", METHOD,
         "tables/ownership.py active_keys", ("self",)),
    # -- convoy_stream/ingest_feed.py: FeedConductor, the feed and flow control ---------------
    Seam("faust.transport.conductor:Conductor", "_compile_message_handler", METHOD,
         "ingest_feed.py FeedConductor._compile_message_handler", ("self",)),
    Seam("faust.transport.conductor:Conductor", "__init__", METHOD, "app.py FeedConductor(app=..., beacon=None)",
         ("self", "app", "kwargs")),
    Seam(FLOW, "manage_queue", METHOD, "ingest_feed.py IngestFeed.run", ("self", "queue")),
    Seam(FLOW, "clear", METHOD, "ingest_feed.py IngestFeed.clear (emptied at revoke and resume)", ("self",),
         calls=("queue.clear()",)),
    Seam(FLOW, "is_active", METHOD, "ingest_feed.py IngestFeed.on_message", ("self",)),
    Seam(FLOW, "acquire", COROUTINE, "ingest_feed.py IngestFeed.on_message", ("self",)),
    *(Seam("faust.types.tuples:Message", name, ATTRIBUTE, "ingest_feed.py, agent_commits.py, pipeline.py (message)")
      for name in ("tp", "topic", "partition", "offset", "value", "generation_id")),
    # -- convoy_stream/agent_commits.py: replaces two private Consumer methods, wraps one -----
    Seam(BASE_CONSUMER, "_new_offset", METHOD, "agent_commits.py AgentCommits.install (replaced)", ("self", "tp")),
    Seam(BASE_CONSUMER, "_filter_committable_offsets", METHOD,
         "agent_commits.py: Faust asks the instance's _new_offset", ("self", "tps"), calls=("self._new_offset(tp)",)),
    Seam(BASE_CONSUMER, "_filter_tps_with_pending_acks", METHOD, "agent_commits.py AgentCommits.install (replaced)",
         ("self", "topics")),
    Seam(BASE_CONSUMER, "force_commit", COROUTINE,
         "agent_commits.py: Faust asks the instance's _filter_tps_with_pending_acks",
         ("self", "topics", "start_new_transaction"),
         calls=("self._filter_tps_with_pending_acks(topics)",)),
    Seam(BASE_CONSUMER, "perform_seek", COROUTINE, "agent_commits.py AgentCommits.install (wrapped)", ("self",)),
    Seam(BASE_CONSUMER, "getmany", CALLABLE, "agent_commits.py: Faust calls the instance's perform_seek",
         ("self", "timeout"), calls=("await self.perform_seek()",)),
    Seam(CONSUMER, "seek_wait", COROUTINE, "agent_commits.py AgentCommits._seek", ("self", "partitions")),
    Seam(CONSUMER, "earliest_offsets", COROUTINE, "agent_commits.py perform_seek", ("self", "partitions")),
    Seam(CONSUMER, "highwater", METHOD, "agent_commits.py end_offset, web/metrics.py ingest_lag", ("self", "tp")),
    Seam(CONSUMER, "assignment", METHOD, "agent_commits.py, web/metrics.py ingest_lag", ("self",)),
    *(Seam("instance:consumer", name, ATTRIBUTE, reason) for name, reason in (
        ("_acked", "agent_commits.py new_offset (cleared)"),
        ("_acked_index", "agent_commits.py new_offset (cleared)"),
        ("_gap", "agent_commits.py new_offset (popped)"),
        ("_committed_offset", "agent_commits.py new_offset/perform_seek, web/metrics.py ingest_lag"),
    )),
    # -- convoy_stream/direct_handoff.py: replaces Service.wait_first on the consumer ---------
    Seam(BASE_CONSUMER, "_drain_messages", COROUTINE, "direct_handoff.py (the call it short-cuts)",
         ("self", "fetcher"), calls=("await self.wait_first(", "callback(message), self.suspend_flow.wait()")),
    Seam("mode.services:Service", "wait_first", COROUTINE, "direct_handoff.py install (replaced on the consumer)",
         ("self", "coros", "timeout")),
    Seam("mode.services:WaitResults", "_fields", ATTRIBUTE, "direct_handoff.py WaitResults(done, results, stopped)"),
    *(Seam("instance:consumer", name, ATTRIBUTE, "direct_handoff.py wait_first (flow checks)")
      for name in ("suspend_flow", "_stopped", "_crashed")),
    # -- convoy_stream/changelog_reads.py: no fetched changelog record is lost to recovery ----
    Seam("faust.tables.manager:TableManager", "changelog_queue", PROPERTY, "changelog_reads.py keep_queued_records"),
    Seam("faust.tables.manager:TableManager", "recovery", PROPERTY, "changelog_reads.py (the partitions it tracks)"),
    Seam("faust.tables.recovery:Recovery", "__init__", METHOD, "changelog_reads.py reads active_tps, standby_tps",
         ("self", "app", "tables", "kwargs"), calls=("self.standby_tps = set()", "self.active_tps = set()")),
    Seam("faust.tables.recovery:Recovery", "on_recovery_completed", COROUTINE,
         "changelog_reads.py: the resume after the standbys fetch", ("self", "generation_id"),
         calls=("self.app.flow_control.resume()",)),
    Seam(FLOW, "resume", METHOD, "changelog_reads.py: a resume clears the queues with the flow active", ("self",),
         calls=("self._suspend.clear()", "self.clear()")),
    Seam("mode.utils.queues:ThrowableQueue", "clear", METHOD, "changelog_reads.py (replaced on the changelog queue)",
         ("self",)),
    Seam(BASE_CONSUMER, "getmany", CALLABLE, "changelog_reads.py: Faust skips records of paused partitions",
         ("self", "timeout"), calls=("tp in active_partitions",)),
    Seam(BASE_CONSUMER, "_is_changelog_tp", METHOD, "changelog_reads.py put_back_paused_records", ("self", "tp")),
    Seam("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_fetch_records", COROUTINE,
         "changelog_reads.py put_back_paused_records (replaced on the thread)",
         ("self", "consumer", "active_partitions", "timeout", "max_records")),
    Seam("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "getmany", COROUTINE,
         "changelog_reads.py: the thread calls the instance's _fetch_records", ("self", "active_partitions", "timeout"),
         calls=("self._fetch_records",)),
    Seam("aiokafka.consumer.fetcher:Fetcher", "fetched_records", COROUTINE,
         "changelog_reads.py: an empty partition set means every partition", ("self", "partitions", "timeout", "max_records"),
         calls=("if partitions and tp not in partitions",)),
    *(Seam("instance:consumer", name, ATTRIBUTE, "changelog_reads.py put_back_paused_records")
      for name in ("_thread", "_buffered_partitions")),
    # -- convoy_stream/table_writes.py and tables/scan.py: the RocksDB store's internals ------
    Seam(STORE, "_encode_key", METHOD, "table_writes.py TableWrites", ("self", "key")),
    Seam(STORE, "_encode_value", METHOD, "table_writes.py TableWrites", ("self", "value")),
    Seam(STORE, "_decode_value", METHOD, "table_writes.py TableWrites, tables/scan.py scan", ("self", "value")),
    Seam(STORE, "_db_for_partition", METHOD, "table_writes.py TableWrites.view, Batch.write", ("self", "partition")),
    Seam(STORE, "_dbs_for_actives", METHOD, "tables/scan.py scan", ("self",)),
    Seam(STORE, "set_persisted_offset", METHOD, "table_writes.py Batch.write", ("self", "tp", "offset")),
    Seam("faust.topics:Topic", "prepare_key", METHOD, "table_writes.py Batch.add_delivery",
         ("self", "key", "key_serializer", "schema", "headers")),
    Seam("rocksdict:", "WriteBatch", CALLABLE, "table_writes.py WriteBatch(raw_mode=True)", ("raw_mode",)),
    Seam("rocksdict:WriteBatch", "put", METHOD, "table_writes.py Batch.write", ("self", "key", "value", "column_family")),
    Seam("rocksdict:WriteBatch", "delete", METHOD, "table_writes.py Batch.write", ("self", "key", "column_family")),
    Seam("rocksdict:Rdict", "write", METHOD, "table_writes.py Batch.write", ("self", "write_batch", "write_opt")),
    Seam("rocksdict:Rdict", "iter", METHOD, "tables/scan.py _rocksdb_run", ("self", "read_opt")),
    *(Seam("rocksdict:RdictIter", name, METHOD, "tables/scan.py _rocksdb_run")
      for name in ("seek", "seek_for_prev", "valid", "key", "value", "prev", "next")),
    # -- convoy_stream/pipeline.py: the aiokafka producer under Faust's ----------------------
    Seam("faust.transport.drivers.aiokafka:Producer", "_ensure_producer", METHOD,
         "pipeline.py process_batch (Batch.write sends with aiokafka directly)", ("self",)),
    # -- convoy_stream/records.py: Record internals _assemble fills ---------------------------
    Seam("faust.models.record:Record", "from_data", CLASSMETHOD, "records.py IngestRecord.from_data (override)",
         ("cls", "data", "preferred_type")),
    Seam("faust.models.record:Record", "_BUILD_init", CLASSMETHOD, "records.py _assemble (what __init__ stores)",
         calls=("self.__evaluated_fields__ = set()",)),
    Seam("faust.models.record:Record", "to_representation", METHOD, "codecs.py dumps_record", ("self",)),
    Seam("faust.models.record:Record", "_options", ATTRIBUTE, "records.py _REQUIRED, _assemble"),
    Seam("instance:record_options", "fields", ATTRIBUTE, "records.py _REQUIRED (a record's field names)"),
    Seam("instance:record_options", "defaults", ATTRIBUTE, "records.py _REQUIRED, _assemble (default values)"),
    # -- convoy_stream/codecs.py: the orjson codec overrides Codec's private hooks -----------
    Seam("faust.serializers.codecs:Codec", "_dumps", METHOD, "codecs.py OrJSON._dumps (override)", ("self", "s")),
    Seam("faust.serializers.codecs:Codec", "_loads", METHOD, "codecs.py OrJSON._loads (override)", ("self", "s")),
    Seam("faust.serializers.codecs:", "register", CALLABLE, "codecs.py registers 'orjson'", ("name", "codec")),
    # -- convoy_stream/cli.py: Faust's worker ----------------------------------------------
    Seam("instance:worker", "spinner", ATTRIBUTE, "cli.py _run_worker (worker.spinner = None)"),
    Seam("faust.worker:Worker", "execute_from_commandline", METHOD, "cli.py _run_worker", ("self",)),
    # -- convoy_stream/liveness.py: is the fetcher alive, are commits moving -----------------
    Seam(FAUST_APP, "_fetcher", PROPERTY, "liveness.py Liveness._fetcher_dead"),
    Seam("instance:fetcher", "_shutdown", ATTRIBUTE, "liveness.py Liveness._fetcher_dead (a stopped fetcher)"),
    Seam("instance:fetcher", "crashed", ATTRIBUTE, "liveness.py Liveness._fetcher_dead"),
    Seam("instance:fetcher", "crash_reason", ATTRIBUTE, "liveness.py Liveness._fetcher_dead"),
    # -- convoy_stream/web/protocol_errors.py: aiohttp's own refusals in the envelope --------
    Seam("aiohttp.web_protocol:RequestHandler", "handle_error", METHOD, "web/protocol_errors.py install (replaced)",
         ("self", "request", "status", "exc", "message")),
    # -- aiokafka internals: convoy_stream/publisher.py, bench/ ------------------------------
    Seam("instance:aiokafka_producer", "client", ATTRIBUTE, "publisher.py Publisher.connected"),
    Seam("instance:aiokafka_client", "_conns", ATTRIBUTE, "publisher.py Publisher.connected"),
    Seam("aiokafka.conn:AIOKafkaConnection", "connected", METHOD, "publisher.py Publisher.connected", ("self",)),
    Seam("aiokafka:AIOKafkaProducer", "create_batch", METHOD, "publisher.py send_records", ("self",)),
    Seam("aiokafka:AIOKafkaProducer", "send_batch", COROUTINE, "publisher.py _submit",
         ("self", "batch", "topic", "partition")),
    Seam("aiokafka.producer.message_accumulator:BatchBuilder", "append", METHOD,
         "publisher.py send_records (None when full)", ("self", "timestamp", "key", "value", "headers")),
    Seam("aiokafka.producer.message_accumulator:BatchBuilder", "close", METHOD, "publisher.py _submit", ("self",)),
    Seam("instance:aiokafka_consumer", "_client", ATTRIBUTE, "bench/harness.py, bench/scenario_e2e.py"),
    Seam("aiokafka.client:AIOKafkaClient", "force_metadata_update", METHOD,
         "bench/harness.py, bench/scenario_e2e.py", ("self",)),
    Seam("instance:aiokafka_client", "cluster", ATTRIBUTE, "bench/harness.py partition leaders"),
)


class _Instances(dict[str, Any]):
    """Real objects of the libraries' classes, built on first use as convoy-stream builds them, never started."""

    def __init__(self, data_dir: str) -> None:
        super().__init__()
        self.data_dir = data_dir

    def __missing__(self, key: str) -> Any:
        import faust
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from faust.worker import Worker

        if key == "fetcher":
            self.get("consumer") or self["consumer"]
            self[key] = self["app"]._fetcher
        elif key in ("consumer", "worker"):
            app = self.get("app") or self.setdefault("app", faust.App(
                "seam-check", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=self.data_dir,
                autodiscover=False))
            self[key] = app.consumer if key == "consumer" else Worker(app, quiet=True)
        elif key in ("aiokafka_producer", "aiokafka_client"):
            self["aiokafka_producer"] = producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
            self["aiokafka_client"] = producer.client
        elif key == "record_options":
            class Probe(faust.Record):
                required: str
                optional: int = 1

            self[key] = Probe._options
        elif key == "aiokafka_consumer":
            self[key] = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        return self[key]


@pytest.fixture(scope="module")
async def real_instances() -> Any:
    with tempfile.TemporaryDirectory() as data_dir:
        instances = _Instances(data_dir)
        try:
            yield instances
        finally:
            for key in ("aiokafka_consumer", "aiokafka_producer"):
                if key in instances:
                    await instances[key].stop()
            if "consumer" in instances:  # the consumer thread's loop, made at construction, never run
                instances["consumer"]._thread.thread_loop.close()


@pytest.mark.parametrize("seam", SEAMS, ids=[s.id for s in SEAMS])
async def test_library_seam(seam: Seam, real_instances: dict[str, Any]) -> None:
    kind, _, key = seam.owner.partition(":")
    owner = real_instances[key] if kind == "instance" else resolve(seam.owner)
    assert not problems(seam, owner)


def test_the_direct_handoff_builds_mode_wait_results() -> None:
    from mode.services import WaitResults

    assert WaitResults._fields == ("done", "results", "stopped"), "direct_handoff.py builds WaitResults positionally"


def test_a_record_assembled_without_faust_equals_the_one_faust_builds() -> None:
    """records.py `_assemble` writes a record's state directly: it must be what Faust's __init__ writes."""
    from convoy_stream.records import Delivery, IngestRecord

    fields = {"uid": "u", "project_id": "p", "kind": "single", "event_type": "t", "data": {"a": 1}, "created_at": "c"}
    assert IngestRecord.build(**fields).__dict__ == IngestRecord(**fields).__dict__
    assert IngestRecord.from_data(dict(fields)).__dict__ == IngestRecord(**fields).__dict__
    delivery = {"uid": "d", "event_id": "e", "project_id": "p", "endpoint_id": "x", "subscription_id": "s",
                "event_type": "t", "status": "Scheduled", "headers": {}, "data": None, "created_at": "c"}
    assert Delivery.build(**delivery).__dict__ == Delivery(**delivery).__dict__


def test_checked_versions_are_the_exact_pins() -> None:
    """The seams above were read in these versions; pyproject pins them exactly."""
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = {d.split("==")[0].split("[")[0]: d.split("==")[1] for d in project["project"]["dependencies"] if "==" in d}
    for package in ("faust-streaming", "mode-streaming", "aiokafka", "rocksdict", "aiohttp"):
        assert pins.get(package) == version(package), f"{package}: installed {version(package)}, pinned {pins.get(package)}"


# -- the checker finds what an upgrade would break ---------------------------------------------

class _Renamed:
    """Faust's Conductor after a hypothetical upgrade renamed the hook FeedConductor overrides."""

    def _build_message_handler(self) -> None: ...


class _Changed:
    def _new_offset(self, tp: Any, acked: Any) -> None: ...  # a new parameter

    def perform_seek(self) -> None: ...  # no longer a coroutine function

    async def _drain_messages(self, fetcher: Any) -> None:
        await self.wait_first(fetcher)  # type: ignore[attr-defined]  # a call shape we no longer match


@pytest.mark.parametrize(("seam_id", "owner", "expected"), [
    ("Conductor._compile_message_handler", _Renamed, "is missing"),
    ("Consumer._new_offset", _Changed, "takes ('self', 'tp', 'acked'), expected ('self', 'tp')"),
    ("Consumer.perform_seek", _Changed, "is no longer a coroutine function"),
    ("Consumer._drain_messages", _Changed, "no longer contains `callback(message), self.suspend_flow.wait()`"),
])
def test_the_checker_reports_a_renamed_or_changed_name(seam_id: str, owner: type, expected: str) -> None:
    seam = next(s for s in SEAMS if s.id == seam_id)
    found = problems(seam, owner)
    assert found and expected in found[0] and seam.reason in found[0]
