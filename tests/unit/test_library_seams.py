"""The library internals convoy-stream relies on, checked against the installed libraries.

convoy-stream overrides, wraps or reads private parts of faust-streaming, mode-streaming,
aiokafka, rocksdict and aiohttp (underscore methods and attributes, subclass hooks, call
shapes inside Faust's consumer), all from `convoy_stream/faust_ext/`. The unit tests of
those mechanisms use fakes, so an upgrade that renames one of these names would pass them
and break production. Every name is listed once, in `convoy_stream.faust_ext.SEAMS` (the
same table the package documents and `test_library_privates.py` enforces), and each is
checked here against the real classes and real (never started) instances: that it exists,
that it is the expected kind (method, coroutine function, classmethod, property,
attribute) and, for callables, that its parameter names are unchanged. Where we rely on
*how* the library calls a method (an instance attribute we replace is only seen if the
library looks it up through `self`), the caller's source must still contain the call.

The checked versions are the exact pins of `pyproject.toml` (`faust_ext.PINS`): bumping
one means running this file and reading the libraries' changes for every name in the table.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from convoy_stream.faust_ext import (
    CALLABLE, CLASSMETHOD, COROUTINE, METHOD, PINS, PROPERTY, SEAMS, LibraryVersionMismatch, Seam, check_versions,
)


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
        return [f"{where} is missing (relied on by {seam.use})"]
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
    return [f"{problem} (relied on by {seam.use})" for problem in found]


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
        elif key in ("consumer", "worker", "store", "changelog_queue"):
            app = self.get("app") or self.setdefault("app", faust.App(
                "seam-check", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=self.data_dir,
                autodiscover=False))
            if key == "store":  # the RocksDB store of a table, as `app.Table` builds it
                self[key] = app.Table("seam-check-table", partitions=2).data
            elif key == "changelog_queue":  # the table manager's queue of fetched changelog events
                self[key] = app.tables.changelog_queue
            else:
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
    found = problems(seam, owner)
    assert not found, "; ".join(found)


def test_the_direct_handoff_builds_mode_wait_results() -> None:
    from mode.services import WaitResults

    assert WaitResults._fields == ("done", "results", "stopped"), "direct_handoff.py builds WaitResults positionally"


def test_a_record_assembled_without_faust_equals_the_one_faust_builds() -> None:
    """faust_ext/records.py `assemble` writes a record's state directly: it must be what Faust's __init__ writes."""
    from convoy_stream.records import Delivery, IngestRecord

    fields = {"uid": "u", "project_id": "p", "kind": "single", "event_type": "t", "data": {"a": 1}, "created_at": "c"}
    assert IngestRecord.build(**fields).__dict__ == IngestRecord(**fields).__dict__
    assert IngestRecord.from_data(dict(fields)).__dict__ == IngestRecord(**fields).__dict__
    delivery = {"uid": "d", "event_id": "e", "project_id": "p", "endpoint_id": "x", "subscription_id": "s",
                "event_type": "t", "status": "Scheduled", "headers": {}, "data": None, "created_at": "c"}
    assert Delivery.build(**delivery).__dict__ == Delivery(**delivery).__dict__


def test_checked_versions_are_the_exact_pins() -> None:
    """The seams were read in these versions: faust_ext checks them at import, pyproject pins them exactly."""
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = {d.split("==")[0].split("[")[0]: d.split("==")[1] for d in project["project"]["dependencies"] if "==" in d}
    assert set(PINS) == {"faust-streaming", "mode-streaming", "aiokafka", "rocksdict", "aiohttp"}
    for package, pinned in PINS.items():
        assert pins.get(package) == pinned, f"{package}: faust_ext.PINS says {pinned}, pyproject.toml {pins.get(package)}"
        assert version(package) == pinned, f"{package}: installed {version(package)}, pinned {pinned}"


def test_another_installed_version_stops_the_import_with_one_line() -> None:
    with pytest.raises(LibraryVersionMismatch) as raised:
        check_versions({**PINS, "aiokafka": "0.0.1"})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"aiokafka {version('aiokafka')} is installed, 0.0.1 is required")
    assert raised.value.name == "convoy_stream.faust_ext"


def test_the_worker_refuses_to_start_on_another_version_with_one_line(tmp_path: Path) -> None:
    """`convoy-stream worker` with aiokafka not at its pin: exit status 1 and one line, no traceback."""
    script = ("import importlib.metadata as m; real = m.version; "
              "m.version = lambda p: '0.0.1' if p == 'aiokafka' else real(p); "
              "from convoy_stream.cli import main; main(['worker'])")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "CONVOY_STREAM_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"convoy-stream: aiokafka 0.0.1 is installed, {PINS['aiokafka']} is required"
        " (convoy_stream/faust_ext relies on their internals: install the pinned versions)"]


def test_every_seam_names_its_library() -> None:
    """The table's library column: one of the five pinned libraries, for every row."""
    assert {seam.library for seam in SEAMS} <= set(PINS)
    assert len({seam.qualified_name for seam in SEAMS}) == len(SEAMS), "a name is listed twice"


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
    assert found and expected in found[0] and seam.use in found[0]
