"""A worker's processes and its stop, as an operator sees them.

- The worker's script processes end with it, however it ends (here: SIGKILL of the worker
  alone, which no handler of the worker sees, while a script runs).
- A SIGTERM ends a worker within CONVOY_STREAM_SHUTDOWN_TIMEOUT, even with Kafka gone.
- A record on the dead-letter topic that is not a dead letter costs a log line, not the agent.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from convoy_stream.ids import mint_id, partition_of, scoped
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
        run_a_looping_script(worker, hosts)
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


def run_a_looping_script(worker: Worker, hosts: set[int]) -> None:
    """A `test_function` whose script loops (for the worker's script time limit), from a
    thread; returns once one of `hosts` is busy with it."""
    project = new_project(worker)
    before = {pid: cpu_seconds(pid) for pid in hosts}
    threading.Thread(target=lambda: _ignore_errors(lambda: project.post(
        "/sources/test_function", {"payload": {}, "function": "function transform(p) { while (true) {} }",
                                   "type": "body"})), daemon=True).start()
    eventually(lambda: any(cpu_seconds(pid) > before[pid] + 1 for pid in hosts if alive(pid)), timeout=60)


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


#: The pipeline topics' partitions (the workers' default).
PARTITIONS = 8
#: The stop bound the next test sets (a Go duration, as an operator may write it).
SHUTDOWN_TIMEOUT = 5.0


def test_a_worker_whose_kafka_is_gone_stops_within_its_shutdown_timeout(kafka_factory: Any, tmp_path: Path) -> None:
    """An orchestrator SIGKILLs a worker at the end of its grace period: a SIGTERM must end the
    worker within CONVOY_STREAM_SHUTDOWN_TIMEOUT even when every Kafka step of its stop hangs,
    and its script processes (one busy with a script) with it."""
    begun = time.monotonic()
    kafka = kafka_factory(fast_start=True, heap="256m")
    worker = Worker(kafka.bootstrap, tmp_path / "w", "cs-stop-" + secrets.token_hex(3), ADMIN_TOKEN,
                    env={"CONVOY_STREAM_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT:g}s",
                         "CONVOY_STREAM_SCRIPT_TIMEOUT_MS": "300000"}).start()
    hosts: set[int] = set()
    try:
        worker.wait_healthy()
        assert worker.process is not None
        hosts = eventually(lambda: script_hosts(worker.process.pid), timeout=60)
        run_a_looping_script(worker, hosts)
        ready = time.monotonic()
        kafka.kill()
        eventually(lambda: _health(worker) == 503, timeout=60)  # the worker knows Kafka is gone
        signalled = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)  # as Kubernetes does: the worker's pid only
        try:
            status = worker.process.wait(SHUTDOWN_TIMEOUT + 20)  # generous: two busy cores
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {time.monotonic() - signalled:.1f} s after SIGTERM:\n"
                        f"{worker.log_tail()}", pytrace=False)
        took = time.monotonic() - signalled
        eventually(lambda: not any(alive(pid) for pid in hosts), timeout=10)
        print(f"\nworker with Kafka gone exited with status {status} {took:.2f} s after SIGTERM "
              f"(CONVOY_STREAM_SHUTDOWN_TIMEOUT={SHUTDOWN_TIMEOUT:g}s), its script processes with it; "
              f"Kafka and worker started in {ready - begun:.1f} s")
        log = worker.log_path.read_text(errors="replace")
        timed_out = [line for line in log.splitlines() if "did not stop within" in line]
        if status != 0:  # it gave up: with status 1, and one line that says what it waited for
            assert status == 1, worker.log_tail()
            assert len(timed_out) == 1 and "still stopping: " in timed_out[0], timed_out or worker.log_tail()
            assert took >= SHUTDOWN_TIMEOUT * 0.9, took
        else:
            assert not timed_out
    finally:
        worker.kill()
        for pid in hosts:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _health(worker: Worker) -> int:
    try:
        return httpx.get(worker.url + "/health", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_records_on_the_dead_letter_topic_that_are_not_dead_letters_are_skipped(
        worker: Worker, make_project: Callable[..., Api], kafka_broker: Any, app_id: str) -> None:
    """Another tool can write to the dead-letter topic: what is not a dead letter is skipped
    (one log line, a metric), and the agent that reads the topic carries on."""
    project = make_project()
    uid = mint_id(None, PARTITIONS)
    key = scoped(project.project_id, uid)
    partition = partition_of(key, PARTITIONS)
    letter = {"uid": uid, "project_id": project.project_id, "reason": "written by a test", "source_id": "",
              "broker": "kafka", "broker_message_id": "m-1", "original": "{}", "original_is_utf8": True, "headers": {}}
    # A letter nested deeper than the table's encoder writes (orjson reads 1024 levels, writes 254)
    # would fail every write to the table, each time the agent is restarted onto it.
    deep = orjson.dumps(key)[:-1] + b'-deep"', (
        orjson.dumps({**letter, "uid": uid + "-deep", "headers": None})[:-1] + b',"data":' + b"[" * 300 + b"]" * 300 + b"}")
    garbage = [(b"\xff\xfenot json", b"{}"), (orjson.dumps(key), b"\xffnot json"), (None, orjson.dumps(letter)),
               (orjson.dumps(key), orjson.dumps([1, 2])), (orjson.dumps("another/key"), orjson.dumps(letter)), deep]
    topic = f"{app_id}-dead-letters"
    skipped_before = _skipped(worker, topic)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
        await producer.start()
        try:
            for record_key, value in garbage:  # ahead of the letter, on its partition
                await producer.send_and_wait(topic, value, key=record_key, partition=partition)
            await producer.send_and_wait(topic, orjson.dumps(letter), key=orjson.dumps(key), partition=partition)
        finally:
            await producer.stop()

    asyncio.run(produce())
    listed = eventually(lambda: project.get("/dead-letters").json()["data"]["content"], timeout=60)
    assert [row["uid"] for row in listed] == [uid]
    assert httpx.get(worker.url + "/health", timeout=10).status_code == 200
    assert _skipped(worker, topic) == skipped_before + len(garbage)
    log = worker.log_path.read_text(errors="replace")
    assert len(re.findall(rf"{topic}\[{partition}\]@\d+ is not a dead letter \(its [^)]*\); skipped", log)) == len(garbage)


def _skipped(worker: Worker, topic: str) -> float:
    metrics = httpx.get(worker.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10).text
    line = f'convoy_stream_records_skipped_total{{topic="{topic}"}} '
    return sum(float(row[len(line):]) for row in metrics.splitlines() if row.startswith(line))
