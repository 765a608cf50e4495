"""A script process ends on SIGTERM: at once when idle, after its answer when busy."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from convoy_stream.transforms import ScriptLimits, _Runner

BUSY = "function transform(p) { const end = Date.now() + 1500; while (Date.now() < end) {} return {done: true}; }"


def started() -> _Runner:
    runner = _Runner(ScriptLimits(timeout_ms=10_000))
    runner.start()
    runner._wait_ready()
    return runner


def ended(runner: _Runner, timeout: float = 30) -> bool:
    assert runner.process is not None
    try:
        runner.process.wait(timeout)
    except Exception:
        return False
    return True


def test_an_idle_script_process_ends_on_sigterm() -> None:
    runner = started()
    try:
        assert runner.process is not None
        os.kill(runner.process.pid, signal.SIGTERM)
        assert ended(runner) and runner.process.returncode == 0
    finally:
        runner.stop()


def test_a_busy_script_process_answers_then_ends_on_sigterm() -> None:
    runner = started()
    replies: list[dict[str, Any]] = []
    try:
        assert runner.process is not None
        asking = threading.Thread(target=lambda: replies.append(runner.ask(
            {"op": "try", "project": "p", "script": BUSY, "max_output": 1000, "value": "{}"})))
        cpu = _cpu(runner.process.pid)
        asking.start()
        deadline = time.monotonic() + 30
        while _cpu(runner.process.pid) < cpu + 0.3 and time.monotonic() < deadline:  # the script is running
            time.sleep(0.02)
        os.kill(runner.process.pid, signal.SIGTERM)
        asking.join(30)
        assert replies and replies[0]["ok"] and replies[0]["out"] == {"done": True}, replies
        assert ended(runner)
    finally:
        runner.stop()


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _SignalAfterArrival:
    """A connection on which SIGTERM lands just after a request arrived, before it is read."""

    def __init__(self, connection: Any, stop: Any) -> None:
        self.connection, self.stop = connection, stop

    def poll(self, timeout: float | None = 0) -> bool:
        ready = self.connection.poll(timeout)
        if timeout is None:
            self.stop(signal.SIGTERM, None)
        return ready

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


def test_a_request_that_arrived_before_sigterm_is_answered() -> None:
    from multiprocessing import Pipe

    import orjson

    from convoy_stream.script_host import _Stop, serve

    ours, theirs = Pipe()
    stop = _Stop()
    request = {"id": 7, "op": "try", "project": "p", "script": "function transform(p) { return p; }",
               "value": '{"a":1}', "timeout_ms": 1000, "max_memory": 64 << 20, "max_output": 1000}
    ours.send_bytes(orjson.dumps(request))
    serve(_SignalAfterArrival(theirs, stop), retire_rss=1 << 40, stop=stop)  # returns: it was asked to stop
    assert ours.recv_bytes() == b"ready"
    reply = orjson.loads(ours.recv_bytes())
    assert reply["id"] == 7 and reply["ok"] and reply["out"] == {"a": 1}
    assert not ours.poll(0)  # it read no further request


class _SignalWhileWaiting(_SignalAfterArrival):
    """A connection on which SIGTERM lands while the process waits for a request."""

    def poll(self, timeout: float | None = 0) -> bool:
        if timeout is None:
            self.stop(signal.SIGTERM, None)
        return bool(self.connection.poll(timeout))


def test_sigterm_while_no_request_waits_ends_serving_without_an_answer() -> None:
    from multiprocessing import Pipe

    from convoy_stream.script_host import _Stop, serve

    ours, theirs = Pipe()
    stop = _Stop()
    serve(_SignalWhileWaiting(theirs, stop), retire_rss=1 << 40, stop=stop)
    assert ours.recv_bytes() == b"ready"
    assert not ours.poll(0.2)
