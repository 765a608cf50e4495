"""A source's JavaScript transforms: `body_function` and `header_function`.

Convoy runs a broker source's `function transform(payload) {...}` with goja
on every message (docs/convoy-behaviour.md#broker-transforms): the body function maps
an arbitrary payload onto Convoy's message shape, the header function
rewrites the merged header map. Here V8 runs them (mini-racer), in separate
processes (`script_host`), within limits (`ScriptLimits`). A script that does
not compile, throws, overruns a limit or returns nothing raises
`TransformError`; the bridge dead-letters that message with the reason, and
`test_function` answers 400 with it.

One project's scripts cannot delay another's: callers run script work
through `in_script_pool(project_id, work)`, which gives each project one
thread of a small pool at a time (`script_pool`), and each of those threads
has a script process of its own while it runs a script. A script that loops
holds its project's turn for the time limit, and a script that crashes V8
ends one script process, which is replaced.

Values cross into JavaScript and back as JSON text, so what a script sees
and returns is exactly JSON, whatever V8 or the binding would convert.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Awaitable, Callable, TypeVar

import orjson

from .publisher import MAX_RECORD_BYTES
from .script_host import size_text
from .script_pool import ScriptPool

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a new script process may take to start (Python and V8 on a busy machine).
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class ScriptLimits:
    """What one run of a tenant's script may use (README, "Script limits")."""

    #: Wall-clock milliseconds for each run: the top level when compiled, then each call.
    timeout_ms: int = 200
    #: Bytes of V8 heap a script may use.
    max_memory: int = 64 * 1024 * 1024
    #: Characters of `test_function` result, and of its console lines.
    max_output: int = 64 * 1024
    #: Scripts run at once by this worker (one process each); a project runs one at a time.
    runners: int = 2

    def __post_init__(self) -> None:
        for name in ("timeout_ms", "max_memory", "max_output", "runners"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"script limit {name} must be a positive whole number")
        if self.max_memory < 4 * 1024 * 1024:
            raise ValueError("script limit max_memory must be at least 4 MiB (V8 needs that much to start)")

    @classmethod
    def from_settings(cls, settings: Any) -> "ScriptLimits":
        """The limits `CONVOY_STREAM_SCRIPT_*` set; one line and exit when they cannot work."""
        try:
            return cls(timeout_ms=settings.script_timeout_ms, max_memory=settings.script_max_memory,
                       max_output=settings.script_max_output, runners=settings.script_runners)
        except ValueError as exc:
            raise SystemExit(f"convoy-stream: {exc} (CONVOY_STREAM_SCRIPT_*)") from None

    @property
    def retire_rss(self) -> int:
        """A script process larger than this after a request is replaced."""
        return 256 * 1024 * 1024 + 2 * self.max_memory


class TransformError(Exception):
    """The script could not produce a value for this input."""


class _Runner:
    """One script process and the socket to it; used by one thread at a time."""

    def __init__(self, limits: ScriptLimits) -> None:
        self.limits = limits
        self.process: subprocess.Popen[bytes] | None = None
        self.connection: Connection | None = None
        self.ready = False
        self.asked = 0

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """The script process's answer, or TransformError when it died or never answered."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.connection is not None
        if not self.ready:
            self._wait_ready()
        # compile, call and settle each get the limit; the rest is a process's own slack
        deadline = 3 * self.limits.timeout_ms / 1000 + 5.0
        self.asked += 1
        try:
            self.connection.send_bytes(orjson.dumps({**request, "id": self.asked, "timeout_ms": self.limits.timeout_ms,
                                                     "max_memory": self.limits.max_memory}))
            if not self.connection.poll(deadline):
                self.stop()
                raise TransformError(f"script exceeded its time limit of {self.limits.timeout_ms} ms")
            reply: dict[str, Any] = orjson.loads(self.connection.recv_bytes())
            if reply.get("id") != self.asked:  # never hand one request's answer to another
                raise OSError(f"script process answered request {reply.get('id')} to request {self.asked}")
        except (EOFError, OSError):
            code = self.process.poll() if self.process else None
            self.stop()
            log.warning("a script process ended while running a script (exit status %s); starting another", code)
            raise TransformError("script made V8 abort its process (an object larger than V8 allows, or memory "
                                 f"far over the limit of {size_text(self.limits.max_memory)})") from None
        if reply.get("retire"):
            self.stop()
        return reply

    def start(self) -> None:
        self.stop()
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convoy_stream.script_host", str(theirs.fileno()), str(self.limits.retire_rss),
                 str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        self.ready = False

    def _wait_ready(self) -> None:
        """A new process imports Python modules and starts V8 first; that is no script's time."""
        assert self.connection is not None
        try:
            if self.connection.poll(STARTUP_SECONDS) and self.connection.recv_bytes() == b"ready":
                self.ready = True
                return
        except (EOFError, OSError):
            pass
        self.stop()
        raise TransformError("no script runner could be started; try again")

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None


class _Runners:
    """The script processes, lent to threads one each; a project gets the one it used last
    when that one is free, so its compiled scripts are found again."""

    def __init__(self, limits: ScriptLimits) -> None:
        self._idle = [_Runner(limits) for _ in range(limits.runners)]
        self._all = list(self._idle)
        self._last: dict[str, _Runner] = {}
        self._free = threading.Condition()

    def ask(self, project: str, request: dict[str, Any]) -> dict[str, Any]:
        with self._free:
            self._free.wait_for(lambda: bool(self._idle))
            preferred = self._last.get(project)
            runner = preferred if preferred in self._idle else self._idle[-1]
            self._idle.remove(runner)
        try:
            return runner.ask(request)
        finally:
            with self._free:
                self._idle.append(runner)
                if project:
                    self._last[project] = runner
                    if len(self._last) > 10_000:
                        self._last.clear()
                self._free.notify()

    def start(self) -> None:
        """Start every script process now (each takes a moment), not at its first script."""
        for runner in self._all:
            runner.start()

    def stop(self) -> None:
        for runner in self._all:
            runner.stop()


LIMITS = ScriptLimits()
_runners = _Runners(LIMITS)
_pool = ScriptPool(LIMITS.runners)


def configure(limits: ScriptLimits) -> None:
    """Use these limits from now on, and start the script processes (at start, before any
    script runs; without it, the defaults apply and processes start at their first script)."""
    global LIMITS, _runners, _pool
    _runners.stop()
    _pool.shutdown()
    LIMITS, _runners, _pool = limits, _Runners(limits), ScriptPool(limits.runners)
    _runners.start()


@atexit.register
def _stop_processes() -> None:
    _runners.stop()


def _ask(project: str, op: str, script: str, value: Any = None, *, max_output: int) -> dict[str, Any]:
    reply = _runners.ask(project, {"op": op, "project": project, "script": script, "max_output": max_output,
                                   "value": orjson.dumps(value).decode()})
    if not reply.get("ok"):
        raise TransformError(str(reply.get("reason") or "script failed"))
    return reply


def check(script: str, project: str = "") -> None:
    """Raise TransformError unless the script compiles and defines `transform`."""
    _ask(project, "check", script, max_output=LIMITS.max_output)


def run(script: str, value: Any, *, project: str) -> Any:
    """transform(value), as JSON in and JSON out; the result may be as large as an event."""
    return _ask(project, "run", script, value, max_output=MAX_RECORD_BYTES)["out"]


def try_once(script: str, value: Any, project: str = "") -> tuple[Any, list[str]]:
    """transform(value) and its console lines, in a context of its own (test_function): the
    result and the console lines are each bounded by `max_output`."""
    reply = _ask(project, "try", script, value, max_output=LIMITS.max_output)
    return reply["out"], [str(line) for line in reply.get("log") or []]


def in_script_pool(project_id: str, work: Callable[[], T]) -> Awaitable[T]:
    """Run `work`, which may call `check`, `run` or `try_once`, on the script pool's threads,
    fairly across projects, never on the event loop."""
    return _pool.run(project_id, work)

