"""A stopping worker exits within `CONVOY_STREAM_SHUTDOWN_TIMEOUT`, whatever it waits for.

Faust stops a worker's services one after the other, and several of those steps wait on
Kafka (the consumer's last commit and its leave of the group, the producers' flushes): with
Kafka gone, a SIGTERM could be followed by minutes of waiting, and an orchestrator kills
the worker at the end of its grace period anyway (Kubernetes: 30 s). So the first step of a
stop (`Worker.on_stop`: a signal, or any other stop) arms a deadline on a thread of its own,
which neither a blocked event loop nor a stuck interpreter exit can hold up. At the deadline
the process logs one line naming what was still stopping and exits with status 1.

Exiting there is as safe as a SIGKILL: nothing is acknowledged before it is durable in Kafka
and no offset is committed before its record is written (README, "Guarantees"), so only
unacknowledged work is abandoned, and the broker or the client sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from types import CoroutineType, GeneratorType
from typing import Any, Callable

from faust.worker import Worker as FaustWorker

log = logging.getLogger(__name__)

#: The exit status of a worker that did not stop in time.
EXIT_STATUS = 1


class Deadline:
    """Exit the process `timeout` seconds after `arm`, unless it has exited by then."""

    def __init__(self, timeout: float, *, exit: Callable[[int], Any] = os._exit,
                 describe: Callable[[], str] = lambda: "unknown") -> None:
        self.timeout = timeout
        self._exit = exit
        self._describe = describe
        self._armed = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self) -> None:
        """Start counting (once; later calls change nothing)."""
        if self._armed.is_set():
            return
        self._armed.set()
        self._thread = threading.Thread(target=self._wait, name="shutdown-deadline", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        threading.Event().wait(self.timeout)
        try:
            still = self._describe()
        except Exception as exc:  # the line and the exit must happen whatever the description does
            still = f"unknown ({exc!r})"
        log.critical("worker did not stop within %g s (CONVOY_STREAM_SHUTDOWN_TIMEOUT), exiting with status %d; "
                     "still stopping: %s", self.timeout, EXIT_STATUS, still)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        self._exit(EXIT_STATUS)


def still_stopping(loop: asyncio.AbstractEventLoop | None) -> str:
    """What the worker is still waiting for: for each stop in progress on the loop, the
    innermost service being stopped and the call it waits in (`AIOKafkaConsumerThread.stop,
    in wait_for`), or, once the loop is done, the threads the interpreter's exit waits for."""
    found: set[str] = set()
    if loop is not None and not loop.is_closed():
        tasks: list[asyncio.Task[Any]] = []
        for _ in range(3):  # the task set can change under a reading thread: read it again
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                continue
        for task in tasks:
            calls = awaiting(task.get_coro())
            stops = [name for name in calls if name.rsplit(".", 1)[-1] in _STOPS]
            if stops:
                found.add(f"{stops[-1]}, in {calls[-1]}" if calls[-1] != stops[-1] else stops[-1])
    innermost = {entry for entry in found if not entry.endswith("_stop_children")}  # the others wait for these
    if found:
        return "; ".join(sorted(innermost or found))
    threads = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    return "the process's exit, waiting for threads " + ", ".join(threads) if threads else "the process's exit"


#: The names of the methods that stop a service.
_STOPS = frozenset({"stop", "on_stop", "on_shutdown", "on_thread_stop", "close"})


def awaiting(coro: Any) -> list[str]:
    """What a coroutine awaits, outermost first: `<service label or class>.<function>` for a
    method (the object's `shortlabel`, mode's name for a service), else the function's name."""
    names: list[str] = []
    while coro is not None and len(names) < 100:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is None:
            break
        owner = frame.f_locals.get("self") if frame is not None else None
        if owner is not None:
            label = getattr(owner, "shortlabel", None)
            names.append(f"{label if isinstance(label, str) else type(owner).__name__}.{code.co_name}")
        else:
            names.append(code.co_qualname)
        coro = coro.cr_await if isinstance(coro, CoroutineType) else (
            coro.gi_yieldfrom if isinstance(coro, GeneratorType) else getattr(coro, "cr_await", None))
    return names


class Worker(FaustWorker):
    """Faust's worker, whose stop is bounded by `shutdown_timeout` seconds."""

    def __init__(self, *args: Any, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = Deadline(shutdown_timeout, describe=self._still_stopping)
        self._stopping_loop: asyncio.AbstractEventLoop | None = None

    def _still_stopping(self) -> str:
        return still_stopping(self._stopping_loop)

    async def on_stop(self) -> None:
        """The first step of any stop of the worker: the deadline starts."""
        self._stopping_loop = asyncio.get_running_loop()
        self.deadline.arm()
        await super().on_stop()
