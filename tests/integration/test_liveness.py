"""A worker with a dead part never looks healthy (`liveness.py`): /health says 503 with the
cause at once, and the process exits with a non-zero status so a supervisor restarts it.

The agent's crash is injected: the worker runs with `CONVOY_STREAM_TEST_ONLY_CRASH_DEAD_LETTER_AGENT_ON`
(`dead_letters.TEST_CRASH_ON_DEAD_LETTER`), and a dead letter whose key holds its marker, produced
to the dead-letter topic, makes the agent raise on it (Faust restarts it, and it meets the
same record again), as any bug in it would. The fetcher's failure is provoked from outside,
as it happens to a user: a record whose bytes rotted on the broker's disk (its CRC no longer
matches) makes aiokafka raise `CorruptRecordException` in the consumer's fetcher.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from convoy_stream.dead_letters import TEST_CRASH_ON_DEAD_LETTER
from tests.conftest import ADMIN_TOKEN
from tests.support.workers import Worker

#: The grace the workers here get between turning unhealthy and exiting.
GRACE = 4.0


def unhealthy(worker: Worker, timeout: float = 90) -> tuple[str, float]:
    """The first /health answer that is not 200 and names a cause; when it came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process is not None and worker.process.poll() is None, \
            f"exited with {worker.process.returncode} before /health said why:\n{worker.log_tail()}"
        try:
            r = httpx.get(worker.url + "/health", timeout=5)
            if r.status_code == 503 and r.json()["message"].startswith("unhealthy: "):
                assert r.json()["status"] is False
                return r.json()["message"], time.monotonic()
            assert r.status_code in (200, 503), r.text  # healthy, or not ready during a rebalance
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"/health never named a cause in {timeout}s:\n{worker.log_tail()}", pytrace=False)


def exits_non_zero(worker: Worker, since: float) -> tuple[int, float]:
    assert worker.process is not None
    try:
        code = worker.process.wait(60)
    except Exception:
        pytest.fail(f"still running 60 s after it turned unhealthy:\n{worker.log_tail()}", pytrace=False)
    return code, time.monotonic() - since


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int | None]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, value, partition in records:
                await producer.send_and_wait(topic, value, key=key, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_a_crashed_agent_turns_health_503_and_the_worker_exits(
        kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    app_id = "cs-live-agent-" + secrets.token_hex(3)
    marker = "crash-" + secrets.token_hex(8)
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("agent"), app_id, ADMIN_TOKEN,
                    env={"CONVOY_STREAM_UNHEALTHY_EXIT_AFTER": str(GRACE), TEST_CRASH_ON_DEAD_LETTER: marker}).start()
    try:
        worker.wait_healthy(90)
        letter = orjson.dumps({"uid": marker, "project_id": "p1", "reason": "r", "headers": {}})
        produce(kafka_broker.bootstrap, f"{app_id}-dead-letters", [(orjson.dumps(f"p1/{marker}"), letter, None)])
        cause, since = unhealthy(worker)
        assert "dead-letter agent crashed" in cause and "InjectedCrash" in cause and marker in cause, cause
        code, after = exits_non_zero(worker, since)
        assert code != 0 and after >= GRACE - 1, (code, after)
        assert "worker unhealthy" in worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()


def test_a_fetcher_that_fails_never_looks_healthy_and_the_worker_exits(
        kafka_broker: Any, kafka_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    # The session's embedded broker holds its log segments here (only this test's topics
    # rot); a Kafka the session did not start gets a private one.
    kafka = kafka_broker if hasattr(kafka_broker, "log_dirs") else kafka_factory()
    app_id = "cs-live-fetch-" + secrets.token_hex(3)
    env = {"CONVOY_STREAM_UNHEALTHY_EXIT_AFTER": str(GRACE)}
    survivor, other = (Worker(kafka.bootstrap, tmp_path_factory.mktemp("fetch"), app_id, ADMIN_TOKEN, env=dict(env)).start()
                       for _ in range(2))
    try:
        survivor.wait_healthy(90)
        other.wait_healthy(90)
        assert other.process is not None
        # `other` freezes (it reads nothing more), a record lands on every ingest partition
        # and rots on disk; `other` dies, and `survivor` takes its partitions and reads them.
        os.killpg(other.process.pid, signal.SIGSTOP)
        marker = b"rot-" + secrets.token_hex(8).encode()
        produce(kafka.bootstrap, f"{app_id}-ingest", [(b"k", marker + b"-%d" % p, p) for p in range(8)])
        rotted = rot(kafka.log_dirs, f"{app_id}-ingest", marker)
        assert rotted == 8, rotted
        os.killpg(other.process.pid, signal.SIGKILL)
        other.process.wait(10)

        # Faust propagates this crash and stops the worker within a fraction of a second:
        # /health must not answer 200 from the moment the fetcher failed, and the process
        # must exit non-zero (by itself, or by the liveness watchdog after its grace).
        answers = watch_health(survivor, timeout=90)
        assert survivor.process.returncode != 0, survivor.log_tail()
        log = survivor.log_path.read_text(errors="replace")
        failed_at = first_timestamp(log, "CorruptRecordException")
        late = [(at, status, message) for at, status, message in answers if status == 200 and at > failed_at + 0.05]
        assert not late, f"healthy after the fetcher failed at {failed_at}: {late[:3]}"
        named = [message for _, status, message in answers if message.startswith("unhealthy: ")]
        assert all("CorruptRecord" in m or "fetcher" in m for m in named), named
    finally:
        other.kill()
        survivor.stop()


def watch_health(worker: Worker, timeout: float) -> list[tuple[float, int, str]]:
    """/health's answers (wall-clock time, status, message) until the process exits."""
    assert worker.process is not None
    answers: list[tuple[float, int, str]] = []
    deadline = time.monotonic() + timeout
    while worker.process.poll() is None:
        assert time.monotonic() < deadline, f"still running after {timeout}s:\n{worker.log_tail()}"
        try:
            r = httpx.get(worker.url + "/health", timeout=5)
            answers.append((time.time(), r.status_code, r.json()["message"]))
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    return answers


def first_timestamp(log: str, needle: str) -> float:
    """The wall-clock time of the first log line holding `needle` (the worker logs in local time)."""
    from datetime import datetime

    for line in log.splitlines():
        if needle in line and line.startswith("["):
            return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    pytest.fail(f"{needle!r} never logged", pytrace=False)


def rot(log_dirs: Path, topic: str, marker: bytes) -> int:
    """Flip the bytes of `marker` in the topic's log segments; how many copies were found."""
    found = 0
    for segment in log_dirs.glob(f"{topic}-*/*.log"):
        data = segment.read_bytes()
        at = data.find(marker)
        while at >= 0:
            with open(segment, "r+b") as f:
                f.seek(at)
                f.write(bytes(b ^ 0x5A for b in marker))
            found += 1
            at = data.find(marker, at + 1)
    return found
