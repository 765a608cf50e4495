"""Rebalances under load: a third worker joins and leaves, again and again, for a minute.

Two long-lived workers take REST events while a third one starts, joins the group, and
leaves by SIGTERM or SIGKILL in turn. Every join and every leave is a rebalance that may
land while the long-lived workers' pipelines are between batches (issue 19: one of them
crashed there with `IndexError: deque index out of range` and took the process down).

What a user relies on afterwards: the long-lived workers are still up and healthy, none
of them crashed or answered 500, every event answered 2xx is stored exactly once, and has
exactly one delivery record (by uid; a replay may repeat the same record) on the
deliveries topic, read to its end offsets. Then one long-lived worker leaves, and the
other, which takes its partitions over from the standby copies the churn kept moving,
still lists every event (Faust dropped fetched changelog records around recoveries, and a
standby copy with such a hole lost events when its partition moved: `faust_ext/changelog_reads.py`).

Budget: about 150 s (60 s of churn, worker starts, the final reads, the hand-over).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, all_committed, eventually

#: How long the third worker keeps joining and leaving.
CHURN_SECONDS = 60.0


class RestLoad:
    """REST events through the long-lived workers from a few threads; what each answered."""

    def __init__(self, urls: list[str], api: Api, endpoint_id: str, threads: int = 2, name: str = "churn") -> None:
        self.urls, self.api, self.endpoint_id, self.name = urls, api, endpoint_id, name
        self.accepted: dict[str, str] = {}  # event uid -> idempotency key, for every 201
        self.answers: Counter[tuple[str, int]] = Counter()  # (worker url, status)
        self.server_errors: list[str] = []
        self.transport_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        path = f"/api/v1/projects/{self.api.project_id}/events"
        with httpx.Client(timeout=30, headers={"Authorization": self.api.http.headers["Authorization"]}) as http:
            for i in itertools.count():
                if self._stop.is_set():
                    return
                base, key = self.urls[(i + n) % len(self.urls)], f"{self.name}-{n}-{i}"
                try:
                    r = http.post(base + path, json={"endpoint_id": self.endpoint_id, "event_type": "churn",
                                                     "data": {"n": n, "i": i}, "idempotency_key": key})
                except httpx.HTTPError:
                    with self._lock:
                        self.transport_errors += 1
                    time.sleep(0.05)
                    continue
                self._count(base, r)
                if r.status_code == 201:
                    with self._lock:
                        self.accepted[r.json()["data"]["uid"]] = key
                    # a lookup too: it goes to the worker owning the event, maybe one that is stopping
                    try:
                        self._count(base, http.get(f"{base}{path}/{r.json()['data']['uid']}"))
                    except httpx.HTTPError:
                        with self._lock:
                            self.transport_errors += 1
                time.sleep(0.005)

    def _count(self, base: str, r: httpx.Response) -> None:
        with self._lock:
            self.answers[(base, r.status_code)] += 1
            if r.status_code >= 500 and r.status_code != 503:
                self.server_errors.append(f"{r.request.method} {r.request.url.path} on {base}: {r.status_code} {r.text[:300]}")
            elif r.status_code == 503 and not _in_envelope(r):
                self.server_errors.append(f"a 503 outside Convoy's envelope on {base}: {r.text[:300]}")

    def __enter__(self) -> "RestLoad":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _in_envelope(r: httpx.Response) -> bool:
    try:
        body = r.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") is False and isinstance(body.get("message"), str)


def churn(joiner: Worker, seconds: float) -> list[str]:
    """Start `joiner`, let it join, stop it (SIGTERM, then SIGKILL next time); repeat."""
    rng = random.Random()
    cycles: list[str] = []
    deadline = time.monotonic() + seconds
    for n in itertools.count():
        if time.monotonic() >= deadline and n >= 4:
            return cycles
        joiner.start().wait_healthy(90)  # its join is a rebalance; healthy: it took partitions
        time.sleep(rng.uniform(0.0, 2.0))
        if n % 2 == 0:
            joiner.stop()
            cycles.append("SIGTERM")
        else:
            joiner.kill()
            cycles.append("SIGKILL")
        time.sleep(rng.uniform(0.0, 1.0))
    return cycles


def read_to_end(bootstrap: str, topic: str, partitions: int = 8) -> list[dict[str, Any]]:
    """Every record of `topic`, from its beginning up to the end offsets it had when asked."""

    async def consume() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            assert sum(ends.values()), f"{topic} is empty"
            records: list[dict[str, Any]] = []
            done = {tp for tp in tps if not ends[tp]}
            deadline = time.monotonic() + 120
            while len(done) < len(tps):
                assert time.monotonic() < deadline, f"{topic}: {len(records)} records read, not to {ends} in 120 s"
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    for m in messages:
                        if m.offset < ends[tp]:
                            records.append(orjson.loads(m.value))
                        if m.offset >= ends[tp] - 1:
                            done.add(tp)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(consume())


def list_all_events(api: Api) -> list[dict[str, Any]]:
    """Every event of the project, as a user pages through them."""
    events, cursor = [], ""
    while True:
        response = api.get("/events", params={"perPage": 100, "next_page_cursor": cursor})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        events += data["content"]
        if not data["pagination"]["has_next_page"]:
            return events
        cursor = data["pagination"]["next_page_cursor"]


def test_a_worker_joining_and_leaving_under_load_crashes_nothing_and_loses_nothing(
        kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    app_id = "cs-churn-" + secrets.token_hex(3)
    bootstrap = kafka_broker.bootstrap
    steady = [Worker(bootstrap, tmp_path_factory.mktemp("steady"), app_id, ADMIN_TOKEN).start() for _ in range(2)]
    joiner = Worker(bootstrap, tmp_path_factory.mktemp("joiner"), app_id, ADMIN_TOKEN)
    try:
        for w in steady:
            w.wait_healthy(90)
        admin = httpx.Client(base_url=steady[0].url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        created = admin.post("/api/v1/projects", json={"name": "churn", "type": "outgoing"}).json()["data"]
        api = Api(steady[0].url, created["api_key"]["key"], created["project"]["uid"])
        endpoint = api.post("/endpoints", {"name": "e", "url": "https://example.com/churn"}).json()["data"]["uid"]
        other = Api(steady[1].url, created["api_key"]["key"], created["project"]["uid"])
        eventually(lambda: other.get(f"/endpoints/{endpoint}").status_code == 200)

        # the joiner takes requests too: those in flight when it stops answer 503, never 500
        with RestLoad([w.url for w in steady], api, endpoint) as load, \
                RestLoad([joiner.url], api, endpoint, threads=1, name="joiner") as joining:
            cycles = churn(joiner, CHURN_SECONDS)
            time.sleep(2)  # load goes on through the last rebalance
        joiner.stop()
        load.accepted.update(joining.accepted)

        # the long-lived workers never crashed: alive, healthy, nothing crashed in their logs
        for w in steady:
            assert w.process is not None and w.process.poll() is None, f"{w.url} exited:\n{w.log_tail()}"
            log = w.log_path.read_text(errors="replace")
            assert "Crashed" not in log and "IndexError" not in log, f"{w.url} crashed:\n{w.log_tail(120)}"
            eventually(lambda: httpx.get(w.url + "/health", timeout=5).status_code == 200, timeout=60)
        errors = load.server_errors + joining.server_errors
        assert not errors, f"{len(errors)} answers were 5xx other than 503 in Convoy's envelope: {errors[:5]}"
        assert len(load.accepted) > 200, (load.answers, load.transport_errors)

        # every event answered 201 is stored exactly once, an original of its key
        all_committed(bootstrap, app_id, "ingest", timeout=120)
        stored: dict[str, dict[str, Any]] = {}

        def everything_stored() -> bool:
            stored.clear()
            for event in list_all_events(api):
                assert event["uid"] not in stored, f"{event['uid']} listed twice"
                stored[event["uid"]] = event
            return set(load.accepted) <= set(stored)

        try:
            eventually(everything_stored, timeout=60, interval=2)
        except BaseException:
            missing = sorted(set(load.accepted) - set(stored))
            by_id = {uid: [Api(w.url, created["api_key"]["key"], created["project"]["uid"]).get(f"/events/{uid}").status_code
                           for w in steady] for uid in missing[:10]}
            pytest.fail(f"{len(missing)} of {len(load.accepted)} acknowledged events are not listed; "
                        f"GET /events/<id> on each long-lived worker: {by_id}")
        per_key = Counter(e["idempotency_key"] for e in stored.values() if not e["is_duplicate_event"])
        assert all(n == 1 for n in per_key.values()), [k for k, n in per_key.items() if n > 1][:5]
        assert not any(stored[uid]["is_duplicate_event"] for uid in load.accepted)

        # ... with exactly one delivery record (a replay repeats the same record, same uid)
        deliveries: dict[str, set[str]] = defaultdict(set)
        repeats = 0
        seen: set[str] = set()
        for record in read_to_end(bootstrap, f"{app_id}-deliveries"):
            if record.get("project_id") == api.project_id:
                deliveries[record["event_id"]].add(record["uid"])
                repeats += record["uid"] in seen
                seen.add(record["uid"])
        missing = [uid for uid in load.accepted if uid not in deliveries]
        assert not missing, (f"{len(missing)} of {len(load.accepted)} accepted events have no delivery "
                             f"({len(seen)} delivery uids read): {missing[:5]}")
        doubled = {uid: d for uid, d in deliveries.items() if len(d) != 1}
        assert not doubled, f"events with more than one delivery: {list(doubled.items())[:5]}"
        assert set(deliveries) <= set(stored), "a delivery record of an event that is not stored"

        # A long-lived worker leaves: the other one takes its partitions over from its standby
        # copies, which the churn moved again and again, and still lists every event.
        steady[0].stop()
        survivor = Api(steady[1].url, created["api_key"]["key"], created["project"]["uid"])
        listed: set[str] = set()

        def everything_listed_by_the_survivor() -> bool:
            listed.clear()
            try:
                listed.update(e["uid"] for e in list_all_events(survivor))
            except AssertionError:  # a page refused while the survivor rebalances
                return False
            return set(load.accepted) <= listed

        try:
            eventually(everything_listed_by_the_survivor, timeout=90, interval=2)
        except BaseException:
            missing = sorted(set(load.accepted) - listed)
            pytest.fail(f"after the hand-over {len(missing)} of {len(load.accepted)} acknowledged events are not "
                        f"listed; GET /events/<id> on the survivor: "
                        f"{ {uid: survivor.get(f'/events/{uid}').status_code for uid in missing[:10]} }")
        print(f"churn: {cycles}; answers {dict(load.answers)}, joiner {dict(joining.answers)}; {len(load.accepted)} accepted, "
              f"{len(stored)} stored, {repeats} repeated delivery records")
    finally:
        joiner.stop()
        for w in steady:
            w.stop()
