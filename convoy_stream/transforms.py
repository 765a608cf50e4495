"""A source's JavaScript transforms: `body_function` and `header_function`.

Convoy runs a broker source's `function transform(payload) {...}` with goja
on every message (spec/convoy-ingest.md section 5.2): the body function maps
an arbitrary payload onto Convoy's message shape, the header function
rewrites the merged header map. Here V8 runs them (mini-racer), with Convoy's
10 s limit. A script that does not compile, throws, runs out of time or
returns nothing raises `TransformError`; the bridge dead-letters that message
with the reason.

Values cross into JavaScript and back as JSON text, so what a script sees
and returns is exactly JSON, whatever V8 or the binding would convert.
Scripts run on one thread of their own (`in_transform_thread`): a slow
script holds up other transforms, never the worker's event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Callable, TypeVar

import orjson
from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException, MiniRacer

#: Convoy's limit for one call.
TIMEOUT_SECONDS = 10.0
#: The script's top level (run once, when it is compiled) must be quick: it is also run when a
#: source is created, on the worker's event loop.
COMPILE_TIMEOUT_SECONDS = 1.0
#: V8 heap a call may use before it is stopped.
MAX_MEMORY = 128 * 1024 * 1024

#: Before the script: a console whose lines are collected per call (Convoy's test_function shows them).
_PRELUDE = """
var __convoyLog = [];
var console = {log: function () {
  __convoyLog.push(Array.prototype.map.call(arguments, function (a) {
    return typeof a === "string" ? a : JSON.stringify(a);
  }).join(" "));
}};
console.info = console.warn = console.error = console.log;
"""

_WRAPPER = """
function __convoyTransform(text) {
  __convoyLog = [];
  const result = transform(JSON.parse(text));
  const out = result === undefined ? undefined : JSON.stringify(result);
  return JSON.stringify({out: out === undefined ? null : out, log: __convoyLog});
}
"""

_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="js-transforms")
T = TypeVar("T")


class TransformError(Exception):
    """The script could not produce a value for this input."""


def _compile(script: str) -> MiniRacer:
    """A V8 context (an isolate of its own, a few MB) holding the script."""
    context = MiniRacer()
    try:
        context.eval(_PRELUDE)
        context.eval(script, timeout_sec=COMPILE_TIMEOUT_SECONDS, max_memory=MAX_MEMORY)
        if context.eval("typeof transform") != "function":
            raise TransformError("the script must define a function named transform")
        context.eval(_WRAPPER)
    except JSTimeoutException:
        context.close()
        raise TransformError(f"the script's top level did not finish within {COMPILE_TIMEOUT_SECONDS:g} s") from None
    except (JSEvalException, JSOOMException) as exc:
        context.close()
        raise TransformError(f"the script does not compile: {_first_line(exc)}") from None
    except TransformError:
        context.close()
        raise
    return context


#: Sources' scripts, compiled once each (a worker has few sources).
_compiled = lru_cache(maxsize=64)(_compile)


def check(script: str) -> None:
    """Raise TransformError unless the script compiles and defines `transform`."""
    _compile(script).close()


def run(script: str, value: Any) -> Any:
    """transform(value), as JSON in and JSON out."""
    return run_with_log(script, value)[0]


def try_once(script: str, value: Any) -> tuple[Any, list[str]]:
    """run_with_log in a context of its own, closed after: for scripts tried once (test_function)."""
    context = _compile(script)
    try:
        return _call(context, value)
    finally:
        context.close()


def run_with_log(script: str, value: Any) -> tuple[Any, list[str]]:
    """transform(value) and the lines the script wrote with console.log."""
    return _call(_compiled(script), value)


def _call(context: MiniRacer, value: Any) -> tuple[Any, list[str]]:
    try:
        out = context.call("__convoyTransform", orjson.dumps(value).decode(), timeout_sec=TIMEOUT_SECONDS,
                           max_memory=MAX_MEMORY)
    except JSTimeoutException:
        raise TransformError(f"transform did not return within {TIMEOUT_SECONDS:g} s") from None
    except JSOOMException:
        raise TransformError("transform ran out of memory") from None
    except JSEvalException as exc:
        raise TransformError(f"transform threw: {_first_line(exc)}") from None
    result = orjson.loads(out) if isinstance(out, str) else {}
    if not isinstance(result.get("out"), str):
        raise TransformError("transform returned nothing")
    return orjson.loads(result["out"]), [str(line) for line in result.get("log") or []]


def _first_line(exc: Exception) -> str:
    """V8's message without the source excerpt and stack: `<anonymous>:1: Error: boom` -> `Error: boom`."""
    line = (str(exc).splitlines() or [""])[0]
    return line.split(": ", 1)[1] if line.startswith("<anonymous>:") and ": " in line else line


async def in_transform_thread(work: Callable[[], T]) -> T:
    """Run `work`, which may call `run`, on the transforms' own thread."""
    return await asyncio.get_running_loop().run_in_executor(_thread, work)
