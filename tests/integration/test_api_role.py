"""The API role (`convoy-stream api`): every route served by processes that run no agents or tables.

One worker and one API command of two processes sharing a port, on the session's Kafka: events
posted to the API reach the worker's pipeline, lookups through the API are answered by the
worker that owns the key, the API rides out its worker's restart (503 with Retry-After, never
500), and both processes take connections on the shared port.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Api
from tests.support.workers import Worker, eventually, read_topic


@pytest.fixture(scope="module")
def cluster(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Worker]]:
    app_id = "cs-api-" + secrets.token_hex(4)
    worker = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("api-worker"), app_id, ADMIN_TOKEN).start()
    api = Worker(kafka_broker.bootstrap, tmp_path_factory.mktemp("api"), app_id, ADMIN_TOKEN,
                 command=("api", "--processes", "2")).start()
    try:
        worker.wait_healthy(90)
        api.wait_healthy(90)
        yield worker, api
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(scope="module")
def project(cluster: tuple[Worker, Worker]) -> tuple[Api, str]:
    """A project and an endpoint, both created through the API process."""
    _, api = cluster
    admin = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    created = admin.post("/api/v1/projects", json={"name": "api-role", "type": "outgoing"})
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    client = Api(api.url, data["api_key"]["key"], data["project"]["uid"])
    endpoint = client.post("/endpoints", {"name": "e", "url": "https://example.com/hook", "owner_id": "o"})
    assert endpoint.status_code == 201, endpoint.text
    return client, endpoint.json()["data"]["uid"]


def _post_event(client: Api, endpoint_id: str, **extra: Any) -> str:
    response = client.post("/events", {"endpoint_id": endpoint_id, "event_type": "t", "data": {"n": 1}, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["uid"])


def test_events_through_the_api_reach_the_pipeline_and_lookups_answer_from_the_worker(
        cluster: tuple[Worker, Worker], project: tuple[Api, str]) -> None:
    worker, api = cluster
    client, endpoint_id = project
    uids = [_post_event(client, endpoint_id, idempotency_key=f"k-{i}") for i in range(8)]

    records = read_topic(worker.bootstrap, f"{worker.app_id}-deliveries",
                         until=lambda rs: {r["event_id"] for r in rs} >= set(uids), timeout=60)
    assert {r["__key"] for r in records} == {endpoint_id}

    # The API process holds no table: every lookup is answered by the worker that stored the event.
    for i, uid in enumerate(uids):
        found = eventually(lambda: (r := client.get(f"/events/{uid}")).status_code == 200 and r.json()["data"], timeout=60)
        assert found["uid"] == uid
        by_key = client.get("/events", params={"idempotencyKey": f"k-{i}"})
        assert by_key.status_code == 200, by_key.text
        assert [e["uid"] for e in by_key.json()["data"]["content"]] == [uid]
    [delivery] = client.get("/eventdeliveries", params={"eventId": uids[0]}).json()["data"]["content"]
    assert client.get(f"/eventdeliveries/{delivery['uid']}").json()["data"]["event_id"] == uids[0]

    listed = client.get("/events", params={"perPage": 50})
    assert listed.status_code == 200, listed.text
    assert set(uids) <= {e["uid"] for e in listed.json()["data"]["content"]}


def test_webhooks_through_the_api_are_verified_and_reach_the_pipeline(cluster: tuple[Worker, Worker]) -> None:
    import hashlib
    import hmac

    worker, api = cluster
    admin = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
    data = admin.post("/api/v1/projects", json={"name": "api-hooks", "type": "incoming"}).json()["data"]
    client = Api(api.url, data["api_key"]["key"], data["project"]["uid"])
    secret = "api-role-secret"
    source = client.post("/sources", {"name": "hooks", "type": "http", "verifier": {
        "type": "hmac", "hmac": {"header": "X-Signature", "hash": "SHA256", "secret": secret, "encoding": "hex"}}})
    assert source.status_code == 201, source.text
    source_data = source.json()["data"]
    endpoint = client.post("/endpoints", {"name": "sink", "url": "https://example.com/in"}).json()["data"]
    subscribed = client.post("/subscriptions", {"name": "s", "endpoint_id": endpoint["uid"], "source_id": source_data["uid"],
                                                "filter_config": {"event_types": ["*"]}})
    assert subscribed.status_code == 201, subscribed.text

    url = f"{api.url}/ingest/{source_data['mask_id']}"
    body = b'{"marker":"through-the-api"}'
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert httpx.post(url, content=body, headers={"X-Signature": signature}, timeout=15).status_code == 200
    refused = httpx.post(url, content=b'{"marker":"forged"}', headers={"X-Signature": signature}, timeout=15)
    assert refused.status_code == 400 and refused.json()["status"] is False

    records = read_topic(worker.bootstrap, f"{worker.app_id}-deliveries",
                         until=lambda rs: any(r.get("source_id") == source_data["uid"] for r in rs), timeout=60)
    [record] = [r for r in records if r.get("source_id") == source_data["uid"]]
    assert record["endpoint_id"] == endpoint["uid"] and record["data"] == {"marker": "through-the-api"}


def test_two_api_processes_share_the_port(cluster: tuple[Worker, Worker], project: tuple[Api, str]) -> None:
    _, api = cluster
    client, endpoint_id = project
    assert api.process is not None
    children = _children(api.process.pid)
    assert len(children) == 2, children
    # Each client holds its own keep-alive connection; the kernel spreads them over both sockets.
    clients = [httpx.Client(base_url=api.url, headers=client.http.headers, timeout=15) for _ in range(24)]
    try:
        for c in clients:
            assert c.get(client.p(f"/endpoints/{endpoint_id}")).status_code == 200
        serving = {pid: _established(pid, api.port) for pid in children}
        assert all(count > 0 for count in serving.values()), serving
        assert sum(serving.values()) >= len(clients), serving  # and the fixture client's own
    finally:
        for c in clients:
            c.close()


def test_the_api_survives_its_worker_restarting(cluster: tuple[Worker, Worker], project: tuple[Api, str]) -> None:
    worker, api = cluster
    client, endpoint_id = project
    uid = _post_event(client, endpoint_id)
    eventually(lambda: client.get(f"/events/{uid}").status_code == 200, timeout=60)

    worker.stop()
    seen: set[int] = set()

    def unavailable() -> bool:
        response = client.get(f"/events/{uid}")
        seen.add(response.status_code)
        return response.status_code == 503 and response.headers.get("Retry-After") == "1"

    eventually(unavailable, timeout=30)
    # Events are still accepted: Kafka holds them until a worker is back.
    while_down = _post_event(client, endpoint_id)

    worker.start()

    def answered() -> bool:
        response = client.get(f"/events/{while_down}")
        seen.add(response.status_code)
        return response.status_code == 200

    eventually(answered, timeout=90, interval=0.5)
    assert client.get(f"/events/{uid}").status_code == 200
    # Only answers a client can act on: the event (200), not yet stored (404 while the
    # restarted worker catches up), or retry later (503); never a server error.
    assert seen <= {200, 404, 503}, seen
    assert 503 in seen


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _established(pid: int, port: int) -> int:
    """How many established TCP connections on local `port` process `pid` holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def test_make_run_serves_through_api_processes_and_ctrl_c_stops_everything(kafka_broker: Any, tmp_path: Path) -> None:
    """`convoy-stream dev` (what `make run` runs; here on the session's Kafka): the port is served by
    API processes, the worker runs the pipeline beside them, and SIGINT to the terminal's process
    group ends every process."""
    import signal
    import subprocess
    import sys

    from devkafka.embedded_kafka import free_port

    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "CONVOY_STREAM_PORT": str(port),
           "CONVOY_STREAM_DATA_DIR": str(tmp_path / "data"), "CONVOY_STREAM_APP_ID": "cs-dev-" + secrets.token_hex(4),
           "CONVOY_STREAM_ADMIN_TOKEN": ADMIN_TOKEN}
    log = open(tmp_path / "dev.log", "wb")
    dev = subprocess.Popen([sys.executable, "-m", "convoy_stream.cli", "dev", "--api-processes", "2"], env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text(errors="replace")[-3000:]
            try:
                return httpx.get(base + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(healthy, timeout=90, interval=0.3)
        [supervisor] = [c for c in _children(dev.pid) if b"api" in Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")]
        assert len(_children(supervisor)) == 2  # the two API processes
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=15)
        data = admin.post("/api/v1/projects", json={"name": "dev", "type": "outgoing"}).json()["data"]
        client = Api(base, data["api_key"]["key"], data["project"]["uid"])
        endpoint = client.post("/endpoints", {"name": "e", "url": "https://example.com/hook", "owner_id": "o"})
        uid = _post_event(client, endpoint.json()["data"]["uid"])
        eventually(lambda: client.get(f"/events/{uid}").status_code == 200, timeout=60)
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C in a terminal
        try:
            dev.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            raise
        eventually(lambda: not _group_alive(dev.pid), timeout=30)


def _group_alive(pgid: int) -> bool:
    """Whether any process of process group `pgid` is still running (zombies aside)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
