"""A worker's processes and its stop, as an operator sees them.

- The worker's script processes end with it, however it ends (here: SIGKILL of the worker
  alone, which no handler of the worker sees, while a script runs).
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually


def script_hosts(parent: int) -> set[int]:
    """The pids of `parent`'s script processes (children running convoy_stream.script_host)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"convoy_stream.script_host" in cmdline:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_script_processes_end_when_their_worker_is_killed_mid_script(kafka_broker: Any, tmp_path: Path) -> None:
    """A SIGKILL runs none of the worker's handlers, and a script process busy with a script
    does not read its socket: it must still end with its worker, not when the script does."""
    worker = Worker(kafka_broker.bootstrap, tmp_path / "w", "cs-life-" + secrets.token_hex(3), ADMIN_TOKEN,
                    env={"CONVOY_STREAM_SCRIPT_TIMEOUT_MS": "300000"}).start()
    hosts: set[int] = set()
    try:
        worker.wait_healthy()
        assert worker.process is not None
        hosts = eventually(lambda: script_hosts(worker.process.pid), timeout=60)
        project = new_project(worker)
        before = {pid: cpu_seconds(pid) for pid in hosts}
        looping = threading.Thread(target=lambda: _ignore_errors(lambda: project.post(
            "/sources/test_function", {"payload": {}, "function": "function transform(p) { while (true) {} }",
                                       "type": "body"})), daemon=True)
        looping.start()
        eventually(lambda: any(cpu_seconds(pid) > before[pid] + 1 for pid in hosts if alive(pid)), timeout=60)
        os.kill(worker.process.pid, signal.SIGKILL)  # the worker alone, not its process group
        worker.process.wait(10)
        begun = time.monotonic()
        eventually(lambda: not any(alive(pid) for pid in hosts), timeout=10)
        print(f"\n{len(hosts)} script processes (one running a script) gone {time.monotonic() - begun:.2f} s "
              "after their worker's SIGKILL")
    finally:
        worker.kill()
        for pid in hosts:  # this test's own processes: never leave one behind, even when it fails
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def new_project(worker: Worker) -> Api:
    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    response = admin.post("/api/v1/projects", json={"name": "p-" + secrets.token_hex(3), "type": "outgoing"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    api = Api(worker.url, data["api_key"]["key"], data["project"]["uid"])
    api.http.timeout = httpx.Timeout(600)
    return api


def _ignore_errors(call: Callable[[], Any]) -> None:
    try:
        call()
    except httpx.HTTPError:  # the worker is killed while this request waits
        pass
