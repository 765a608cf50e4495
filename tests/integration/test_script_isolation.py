"""One project's JavaScript cannot delay another's: a live worker, two projects.

Project A runs scripts that never end (`while (true) {}`): three `test_function` calls at once,
again and again, and a broker source whose body function loops on every message. Meanwhile
project B creates sources with scripts and its own broker source's events keep flowing, each
within a bound that is generous for two shared cores. A's scripts are stopped at the script time
limit: `test_function` answers 400 and A's messages are dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from typing import Any, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually

LOOP = "function transform(p) { while (true) {} }"
#: B's answers and events, each; a script's own run takes milliseconds.
BOUND_SECONDS = 2.0
#: Messages A's looping source receives: each holds a script for the whole time limit.
A_MESSAGES = 30


@pytest.fixture(scope="module")
def isolation_worker(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("script-isolation"), "cs-js-" + secrets.token_hex(3),
                    ADMIN_TOKEN).start()
    try:
        yield worker.wait_healthy()
    finally:
        worker.stop()


def new_project(worker: Worker, name: str) -> Api:
    admin = httpx.Client(base_url=worker.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    response = admin.post("/api/v1/projects", json={"name": name, "type": "outgoing"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    api = Api(worker.url, data["api_key"]["key"], data["project"]["uid"])
    api.http.timeout = httpx.Timeout(120)  # long enough to measure a delay, not to hide it
    return api


def kafka_source(api: Api, topic: str, script: str) -> httpx.Response:
    return api.post("/sources", {"name": f"src-{secrets.token_hex(3)}", "type": "pub_sub", "body_function": script,
                                 "pub_sub": {"type": "kafka", "workers": 1, "kafka": {"brokers": [], "topic_name": topic}}})


def produce(bootstrap: str, topic: str, messages: list[tuple[str, dict[str, Any]]]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, body in messages:
                await producer.send(topic, json.dumps(body).encode(), key=key.encode())
            await producer.flush()
        finally:
            await producer.stop()
    asyncio.run(send())


def dead_letters(api: Api) -> list[dict[str, Any]]:
    return api.get("/dead-letters", params={"perPage": 100}).json()["data"]["content"]


def test_runaway_test_functions_of_one_project_do_not_delay_another_projects_source(isolation_worker: Worker) -> None:
    a, b = new_project(isolation_worker, "runaway"), new_project(isolation_worker, "bystander")
    stop, started = threading.Event(), threading.Semaphore(0)
    a_answers: list[httpx.Response] = []

    def hammer() -> None:
        client = Api(a.base, a.http.headers["Authorization"].split()[1], a.project_id)
        client.http.timeout = httpx.Timeout(120)
        started.release()
        while not stop.is_set():
            a_answers.append(client.post("/sources/test_function", {"payload": {}, "function": LOOP, "type": "body"}))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in threads:
        started.acquire()
    took: list[float] = []
    try:
        for i in range(3):
            time.sleep(0.3)  # A's three requests are in flight again (they never stop while B measures)
            begun = time.monotonic()
            created = kafka_source(b, f"b-{secrets.token_hex(3)}", "function transform(p) { return p; }")
            took.append(time.monotonic() - begun)
            assert created.status_code == 201, created.text
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    print(f"\nB's source creations took {', '.join(f'{t:.2f}' for t in took)} s while A ran 3 looping test_functions")
    assert max(took) < BOUND_SECONDS, took
    assert len(a_answers) >= 3
    for answer in a_answers:
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["status"] is False and body.get("data") is None
        assert body["message"].startswith("script exceeded its time limit of ") and body["message"].endswith(" ms")


def test_a_looping_body_function_of_one_project_does_not_delay_another_projects_events(isolation_worker: Worker,
                                                                                     kafka_broker: Any) -> None:
    a, b = new_project(isolation_worker, "looping-source"), new_project(isolation_worker, "flowing-source")
    a_topic, b_topic = f"a-{secrets.token_hex(3)}", f"b-{secrets.token_hex(3)}"
    endpoint = b.post("/endpoints", {"name": "e", "url": "https://example.com/e"}).json()["data"]["uid"]
    assert kafka_source(a, a_topic, LOOP).status_code == 201
    mapping = "function transform(p) { return {endpoint_id: '%s', event_type: 'b.' + p.n, data: p}; }" % endpoint
    assert kafka_source(b, b_topic, mapping).status_code == 201

    def b_event(key: str) -> list[dict[str, Any]]:
        return b.get("/events", params={"brokerMessageId": key}).json()["data"]["content"]

    produce(kafka_broker.bootstrap, b_topic, [("b-0", {"n": 0})])
    eventually(lambda: b_event("b-0"), timeout=30)  # B's consumer is up
    produce(kafka_broker.bootstrap, a_topic, [("a-0", {"n": 0})])
    eventually(lambda: dead_letters(a), timeout=60)  # so is A's, and its loops are stopped
    produce(kafka_broker.bootstrap, a_topic, [(f"a-{i}", {"n": i}) for i in range(1, A_MESSAGES)])
    took = []
    for i in range(1, 4):
        begun = time.monotonic()
        produce(kafka_broker.bootstrap, b_topic, [(f"b-{i}", {"n": i})])
        [event] = eventually(lambda: b_event(f"b-{i}"), timeout=120, interval=0.05)
        took.append(time.monotonic() - begun)
        assert event["event_type"] == f"b.{i}"
    a_done = len(dead_letters(a))
    print(f"\nB's events took {', '.join(f'{t:.2f}' for t in took)} s while A's source looped "
          f"({a_done} of {A_MESSAGES} of A's messages dead-lettered by then)")
    assert a_done < A_MESSAGES, "A's loops were over before B was measured"
    assert max(took) < BOUND_SECONDS, took
    letters = eventually(lambda: len(found := dead_letters(a)) == A_MESSAGES and found, timeout=120)
    for letter in letters:
        assert letter["reason"].startswith("body_function: script exceeded its time limit of "), letter


def test_a_script_that_makes_v8_abort_costs_one_answer_not_the_worker(isolation_worker: Worker) -> None:
    """V8 ends its whole process on an array longer than it allows: a one-line script."""
    a = new_project(isolation_worker, "aborting")
    fatal = "function transform(p) { return ('y'.repeat(2 ** 27) + p.n).split('').length }"
    answer = a.post("/sources/test_function", {"payload": {"n": 12345}, "function": fatal, "type": "body"})
    assert answer.status_code == 400 and answer.json()["message"].startswith("script made V8 abort its process"), answer.text
    assert httpx.get(isolation_worker.url + "/health", timeout=10).status_code == 200
    ok = a.post("/sources/test_function", {"payload": {"event_type": "e", "data": {}}, "type": "body",
                                           "function": "function transform(p) { return p }"})
    assert ok.status_code == 200 and ok.json()["data"]["payload"] == {"event_type": "e", "data": {}}, ok.text
