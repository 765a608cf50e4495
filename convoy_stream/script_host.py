"""The process that runs tenants' JavaScript (V8 through mini-racer), one request at a time.

The worker starts a few of these (`CONVOY_STREAM_SCRIPT_RUNNERS`) and sends each request over a socket: a
script, a value and the limits. Scripts run here, not in the worker, because V8 stops the whole
process on some inputs ("Fatal JavaScript invalid size error" for an array of 2^27 elements,
which a one-line script builds): here that ends one request and this process, which the worker
replaces, never the worker.

Limits, for every request:
- time: the script's top level, the call, and any promise jobs the call left behind each get
  `timeout_ms` (V8 terminates the script); timers and other ways of running later are removed.
- memory: V8's heap is capped at `max_memory` (V8 terminates the script when a garbage
  collection finds it above); memory V8 keeps outside its heap (ArrayBuffer, typed arrays,
  WebAssembly) is not offered to scripts. A run may briefly exceed the cap by what it allocates
  between two collections; a process left larger than the size the worker gives it
  (`ScriptLimits.retire_rss`) after a request exits, and the worker starts a fresh one.
- output: `max_output` characters of result, and of console lines (collected for
  `test_function` only).

A script process never outlives its worker: it ends when the worker closes the socket, when
the worker process ends however it ends (`follow_parent`), and on SIGTERM (after the request
in hand).

Compiled scripts are kept per (project, script), so a script never shares globals with another
project's copy of the same text.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import orjson
from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException, MiniRacer

#: Compiled scripts kept per process (a context is an isolate of its own, about 2 MB).
CACHED_SCRIPTS = 32

#: The globals a script does not get: timers and other ways to run after the call has returned
#: (outside its time limit), and the objects whose memory V8 keeps outside its heap limit.
_REMOVED_GLOBALS = (
    "setTimeout", "clearTimeout", "__timer_manager", "Atomics", "SharedArrayBuffer", "ArrayBuffer", "DataView",
    "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "WebAssembly",
    "FinalizationRegistry", "WeakRef",
)

#: Before the script: the removals, and a console whose lines are collected per call, up to a size.
_PRELUDE = "".join(  # `var` globals (mini-racer's timers) cannot be deleted, only emptied
    f"delete globalThis.{name}; if ('{name}' in globalThis) globalThis.{name} = undefined;\n" for name in _REMOVED_GLOBALS
) + """
var __convoyLog = [], __convoyLogSize = 0, __convoyLogMax = 0, __convoyLogOver = false;
var console = {log: function () {
  const line = Array.prototype.map.call(arguments, function (a) {
    return typeof a === "string" ? a : JSON.stringify(a);
  }).join(" ");
  __convoyLogSize += line.length + 1;
  if (__convoyLogSize > __convoyLogMax) { __convoyLogOver = true; return; }
  __convoyLog.push(line);
}};
console.info = console.warn = console.error = console.debug = console.log;
"""

_WRAPPER = """
function __convoyTransform(text, maxOutput, maxLog) {
  __convoyLog = []; __convoyLogSize = 0; __convoyLogMax = maxLog; __convoyLogOver = false;
  const result = transform(JSON.parse(text));
  const out = result === undefined ? undefined : JSON.stringify(result);
  if (out !== undefined && out.length > maxOutput) return JSON.stringify({over: out.length});
  return JSON.stringify({out: out === undefined ? null : out, log: __convoyLog, logOver: __convoyLogOver});
}
"""


class ScriptFailure(Exception):
    """The script could not produce a value for this input; the message says why."""


class ScriptOverrun(ScriptFailure):
    """The script overran a limit or left work running: its context was closed."""


class _Limits:
    def __init__(self, timeout_ms: int, max_memory: int, max_output: int) -> None:
        self.timeout_ms, self.max_memory, self.max_output = timeout_ms, max_memory, max_output
        self.timeout = timeout_ms / 1000

    def over_time(self) -> str:
        return f"script exceeded its time limit of {self.timeout_ms} ms"

    def over_memory(self) -> str:
        return f"script exceeded its memory limit of {size_text(self.max_memory)}"


def size_text(size: int) -> str:
    """67108864 -> '64 MiB', 65536 -> '64 KiB', anything else in bytes."""
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def compile_script(script: str, limits: _Limits) -> MiniRacer:
    """A V8 context holding the script, or ScriptFailure."""
    context = MiniRacer()
    try:
        context.set_hard_memory_limit(limits.max_memory)
        context.eval(_PRELUDE)
        context.eval(script, timeout_sec=limits.timeout)
        _settle(context, limits)
        if context.eval("typeof transform", timeout_sec=limits.timeout) != "function":
            raise ScriptFailure("the script must define a function named transform")
        context.eval(_WRAPPER)
    except JSTimeoutException:
        context.close()
        raise ScriptFailure(f"{limits.over_time()} while loading (its top level)") from None
    except JSOOMException:
        context.close()
        raise ScriptFailure(f"{limits.over_memory()} while loading (its top level)") from None
    except JSEvalException as exc:
        context.close()
        raise ScriptFailure(f"the script does not compile: {_first_line(exc)}") from None
    except ScriptFailure:
        context.close()
        raise
    return context


def call(context: MiniRacer, value_json: str, limits: _Limits, *, with_log: bool) -> tuple[Any, list[str]]:
    """transform(value) and its console lines, or ScriptFailure; ScriptOverrun (the context is
    closed) when the script overran a limit (its state is then unknown) or left work running."""
    try:
        reply = context.call("__convoyTransform", value_json, limits.max_output, limits.max_output if with_log else 0,
                             timeout_sec=limits.timeout)
        _settle(context, limits)
    except JSTimeoutException:
        context.close()
        raise ScriptOverrun(limits.over_time()) from None
    except JSOOMException:
        context.close()
        raise ScriptOverrun(limits.over_memory()) from None
    except JSEvalException as exc:
        raise ScriptFailure(f"transform threw: {_first_line(exc)}") from None
    result = orjson.loads(reply) if isinstance(reply, str) else {}
    if not isinstance(result, dict):
        raise ScriptFailure("transform returned nothing")
    out, log = result.get("out"), result.get("log")
    if "over" in result or (isinstance(out, str) and len(out) > limits.max_output):  # the script may replace the wrapper
        raise ScriptFailure(f"transform's result exceeds the output limit of {size_text(limits.max_output)}")
    if not isinstance(out, str):
        raise ScriptFailure("transform returned nothing")
    if not with_log:
        return orjson.loads(out), []
    lines = [str(line) for line in log] if isinstance(log, list) else []
    if result.get("logOver") or sum(len(line) + 1 for line in lines) > limits.max_output:
        raise ScriptFailure(f"console output exceeds the output limit of {size_text(limits.max_output)}")
    return orjson.loads(out), lines


def _settle(context: MiniRacer, limits: _Limits) -> None:
    """Wait for the promise jobs a run left (V8 runs them after the run returns): a trivial
    evaluation queues behind them, so it times out if they do not end within the limit."""
    if context.was_hard_memory_limit_reached():
        raise JSOOMException()
    context.eval("0", timeout_sec=limits.timeout)
    if context.was_hard_memory_limit_reached():
        raise JSOOMException()


#: Characters of a script's own error message kept in the reason (a script chooses its length).
MAX_REASON = 500


def _first_line(exc: Exception) -> str:
    """V8's message without the source excerpt and stack: `<anonymous>:1: Error: boom` -> `Error: boom`."""
    line = (str(exc).splitlines() or [""])[0]
    line = line.split(": ", 1)[1] if line.startswith("<anonymous>:") and ": " in line else line
    return line if len(line) <= MAX_REASON else line[:MAX_REASON] + "..."


class Host:
    """One process's compiled scripts and its answers to requests."""

    def __init__(self) -> None:
        self.cache: OrderedDict[tuple[str, str], MiniRacer] = OrderedDict()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        limits = _Limits(request["timeout_ms"], request["max_memory"], request["max_output"])
        op, script = request["op"], request["script"]
        try:
            if op == "check":
                compile_script(script, limits).close()
                return {"ok": True}
            if op == "try":
                context = compile_script(script, limits)
                try:
                    out, log = call(context, request["value"], limits, with_log=True)
                finally:
                    context.close()
                return {"ok": True, "out": out, "log": log}
            key = (request["project"], script)
            context = self.cache.pop(key, None) or compile_script(script, limits)
            try:
                out, log = call(context, request["value"], limits, with_log=False)
            except ScriptOverrun:
                raise
            except ScriptFailure:
                self._keep(key, context)  # it threw for this value; the next may do
                raise
            self._keep(key, context)
            return {"ok": True, "out": out}
        except ScriptFailure as exc:
            return {"ok": False, "reason": str(exc)}

    def _keep(self, key: tuple[str, str], context: MiniRacer) -> None:
        self.cache[key] = context
        while len(self.cache) > CACHED_SCRIPTS:
            self.cache.popitem(last=False)[1].close()

    def close(self) -> None:
        while self.cache:
            self.cache.popitem()[1].close()


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def serve(connection: Connection, retire_rss: int, stop: "_Stop | None" = None) -> None:
    """Answer requests until the worker closes the connection, this process grew too large, or
    it was asked to stop (`stop`: after the request in hand is answered)."""
    stop = stop or _Stop()
    MiniRacer().close()  # V8 starts once per process: before the first request's time limit
    connection.send_bytes(b"ready")
    host = Host()
    while not stop.requested:
        try:
            stop.wait(connection)
            data = connection.recv_bytes()
        except (EOFError, OSError, _Stopped):
            break
        request = orjson.loads(data)
        reply = host.answer(request)
        retire = rss_bytes() > retire_rss
        if retire:
            host.close()
            retire = rss_bytes() > retire_rss
        reply["retire"], reply["id"] = retire, request.get("id")
        try:
            connection.send_bytes(orjson.dumps(reply))
        except OSError:  # the worker is gone
            break
        if retire:
            break
    host.close()


class _Stopped(Exception):
    """SIGTERM came while no request was waiting to be read."""


class _Interrupted(Exception):
    pass


class _Stop:
    """SIGTERM ends this process: at once while it waits for a request, else right after the
    request in hand is answered, so the worker never loses a script's answer to it. A request
    that has arrived (readable, even if not read yet) is answered: the handler only interrupts
    the wait, and `wait` looks at the connection before it gives up."""

    def __init__(self) -> None:
        self.waiting = False
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.waiting:
            self.waiting = False  # raise once: a second signal while unwinding changes nothing
            raise _Interrupted

    def wait(self, connection: Connection) -> None:
        """Return when a request (or the end of the connection) can be read; raise `_Stopped`
        when SIGTERM came first."""
        try:
            self.waiting = True
            if not self.requested:
                connection.poll(None)
            self.waiting = False
        except _Interrupted:
            pass
        self.waiting = False
        if self.requested and not connection.poll(0):
            raise _Stopped


def follow_parent(parent: int, *, interval: float = 0.5) -> None:
    """End this process as soon as `parent` (the worker that started it) has ended, however it
    ended: a SIGKILL or a crash of the worker runs none of its handlers, and a child that
    inherited the worker's end of the socket would keep it open. A thread waits on a pidfd of
    the parent (Linux 5.3+), else checks the parent's pid every `interval` seconds."""
    if os.getppid() != parent:  # it ended before this process got here
        os._exit(0)
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None and os.getppid() != parent:  # the pid was reused meanwhile
        os._exit(0)

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])  # readable once the process has ended
            os._exit(0)
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _unraisable(failure: Any) -> None:
    """mini-racer's callback for a context closed after its script was stopped finds that
    context's event loop closed: expected here, and not worth a traceback in the worker's log."""
    if isinstance(failure.exc_value, RuntimeError) and str(failure.exc_value) == "Event loop is closed":
        return
    sys.__unraisablehook__(failure)


def main() -> None:
    """`python -m convoy_stream.script_host FD RETIRE_RSS PARENT_PID`: FD is this end of the
    worker's socket, PARENT_PID the worker's pid."""
    follow_parent(int(sys.argv[3]))
    # Ctrl-C reaches the worker's whole process group: the worker acts on it and this process
    # follows the worker. SIGTERM (an operator, a supervisor, the group's stop) ends it after
    # the request in hand.
    stop = _Stop()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    sys.unraisablehook = _unraisable
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]), stop)
    os._exit(0)  # skip interpreter teardown: V8's threads and mini-racer's loops are gone with the process


if __name__ == "__main__":
    main()
