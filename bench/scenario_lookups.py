"""lookups: query latency, memory and disk with many stored events in one worker (issue 5).

One fill: a fresh app, its ingest topic filled before the worker starts with `events` records
(default 1,000,000; `--quick` 100,000; `--lookup-events N`) built with the product's own code
and streamed to Kafka in chunks (never all in memory):

- 80% REST events as `POST /api/v1/projects/{id}/events` builds them (`IngestRecord`, the
  id from `Publisher.mint_event_id`, an idempotency key each), single events spread over the
  3 endpoints of the outgoing project;
- 20% broker messages as a Kafka bridge source receives them (`bridges.BrokerMessage` with
  the Kafka consumer's ids, turned into the record by `convoy_stream.broker_messages.to_record`,
  the function the bridges' handle calls), so they carry `broker_message_id`.

Every event's `data` is exactly PAYLOAD_BYTES of compact JSON (random hex in a memo field, so
compression has no unrealistically easy job). `Publisher.publish` runs with its `_send`
captured and the records are produced with acks=all in large batches, like `build_backlog`.

Then one worker (rocksdb tables, as users run it) consumes the whole backlog (consumer group
lag 0); the fill rate is events / (last - first delivery record timestamp). With the worker
idle, `ctx.runs` rounds of sequential requests on one keep-alive connection (aiohttp), each
round:

- GET /api/v1/projects/{pid}/events/{eventID} for random stored ids (a sample of the fill);
- GET .../events?brokerMessageId=<id> for random broker-sourced events;
- GET .../events?perPage=100 (first page, default 7-day window);
- the next pages of that list, following `next_page_cursor` page after page;
- pages at random depths: `next_page_cursor` = a random stored event's id.

Every answer is checked (status, the expected uid, a full page). Each latency row is the median
over the rounds of that round's percentile, each percentile over hundreds to thousands of
requests; the first requests of each kind (WARMUP) are not counted. Then VmRSS, the size of the
worker's rocksdb data dir (`<data dir>/faust`), and the Kafka log dir's size of the app's
topics (changelogs separately).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import orjson

from context import PARTITIONS, Context, Row
from fixtures import capturing_publisher
from harness import CpuMeter, TopicProbe, Worker, log, percentile, rss_mb

EVENTS_FULL = 1_000_000
EVENTS_QUICK = 100_000
BROKER_SHARE = 5  # one event in 5 comes from a broker source
PAYLOAD_BYTES = 200
CHUNK = 5_000
WARMUP = 10
#: per round (full, quick)
POINT_LOOKUPS = (3_000, 1_000)
BROKER_LOOKUPS = (2_000, 1_000)
FIRST_PAGES = (200, 100)
NEXT_PAGES = (300, 100)
RANDOM_PAGES = (200, 100)
#: filtered first pages: a common filter (sourceId, 1 event in 5) and one matching nothing
COMMON_FILTER_PAGES = (50, 20)
EMPTY_FILTER_PAGES = (5, 3)
PAGE_SIZE = 100
#: stored ids (and broker message ids) the requests draw from, at random with repetition
SAMPLES = 20_000
#: a fill whose consumer lag does not move for this long has failed
STALL_SECONDS = 180


def event_count(ctx: Context) -> int:
    explicit = getattr(ctx, "lookup_events", None)
    if explicit:
        return int(explicit)
    return EVENTS_QUICK if ctx.quick else EVENTS_FULL


def _per_round(ctx: Context, counts: tuple[int, int]) -> int:
    return counts[1] if ctx.quick else counts[0]


def payload(seq: int, rng: random.Random) -> dict[str, Any]:
    """An invoice-like `data` object of exactly PAYLOAD_BYTES bytes of compact JSON."""
    data: dict[str, Any] = {"invoice": f"in_{seq:08d}", "amount": 4200 + seq % 100, "currency": "usd",
                            "customer": {"id": f"cus_{seq % 997:05d}", "email": "billing@example.com"},
                            "lines": [1, 2, 3], "memo": ""}
    pad = PAYLOAD_BYTES - len(orjson.dumps(data))
    data["memo"] = rng.randbytes((pad + 1) // 2).hex()[:pad]
    return data


class _KnownEndpoints:
    """The slice of the config view `broker_messages.to_record` asks: does the endpoint exist.
    (The template's outgoing endpoints do; the worker routes with its real config.)"""

    def __init__(self, project_id: str, endpoint_ids: list[str]) -> None:
        self.endpoints = {(project_id, uid): {"uid": uid, "project_id": project_id} for uid in endpoint_ids}

    def endpoint(self, project_id: str, uid: str) -> dict[str, Any] | None:
        return self.endpoints.get((project_id, uid))


# ----------------------------------------------------------------------------- fill


async def _fill(ctx: Context, app_id: str, events: int, samples: int) -> dict[str, Any]:
    """Build the records chunk by chunk and produce them to `<app>-ingest` (acks=all)."""
    from aiokafka import AIOKafkaProducer

    from bridges.base import BrokerMessage
    from convoy_stream.broker_messages import to_record
    from convoy_stream.clock import timestamp
    from convoy_stream.ids import dedup_key
    from convoy_stream.records import IngestRecord

    outgoing = ctx.get_template().outgoing
    project = outgoing.project_id
    publisher, chunk = capturing_publisher(PARTITIONS)

    def mint(dedup: str) -> str:
        return publisher.mint_event_id(project, dedup)

    # A Kafka bridge source of the outgoing project, as `bridge_probe.source_for` describes one.
    source = {"uid": f"src-lookups-{ctx.nonce}", "project_id": project, "type": "pub_sub", "is_disabled": False,
              "pub_sub": {"type": "kafka", "workers": 1,
                          "kafka": {"brokers": [ctx.bootstrap], "topic_name": "orders", "consumer_group_id": "bench"}}}
    config = _KnownEndpoints(project, outgoing.endpoint_ids)
    rng = random.Random(5)
    sample_at = set(rng.sample(range(events), min(samples, events)))
    broker_at = [i for i in range(0, events, BROKER_SHARE)]
    broker_sample_at = set(rng.sample(broker_at, min(samples, len(broker_at))))
    del broker_at
    ids: list[str] = []
    broker_ids: list[tuple[str, str]] = []
    payload_bytes = 0
    broker_events = 0

    producer = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    start = time.monotonic()
    build_seconds = 0.0
    pending: list[Any] = []
    try:
        for base in range(0, events, CHUNK):
            t0 = time.monotonic()
            chunk.clear()
            for i in range(base, min(base + CHUNK, events)):
                endpoint_id = outgoing.endpoint_ids[i % len(outgoing.endpoint_ids)]
                data = payload(i, rng)
                payload_bytes += len(orjson.dumps(data))
                if i % BROKER_SHARE == 0:
                    # the Kafka consumer's ids: topic/partition/offset (bridges/kafka.py)
                    j = i // BROKER_SHARE
                    message_id = f"orders/{j % 4}/{j // 4}"
                    body = orjson.dumps({"endpoint_id": endpoint_id, "event_type": "invoice.paid", "data": data})
                    message = BrokerMessage(body=body, headers={}, message_id=message_id, delivery_id=message_id)
                    record = to_record(source, message, config=config, event_id=mint, now=timestamp())  # type: ignore[arg-type]
                    broker_events += 1
                    if i in broker_sample_at:
                        broker_ids.append((message_id, record.uid))
                else:
                    idem = f"order-{i:07d}"
                    dedup = dedup_key(project, idem)
                    record = IngestRecord(uid=mint(dedup), project_id=project, kind="single",
                                          event_type="invoice.paid", data=data, created_at=timestamp(),
                                          endpoint_id=endpoint_id, owner_id="", idempotency_key=idem,
                                          dedup_key=dedup, headers={}, forward_headers={})
                await publisher.publish(record)
                if i in sample_at:
                    ids.append(record.uid)
            build_seconds += time.monotonic() - t0
            # at most two chunks in flight: memory stays small, building overlaps sending
            if len(pending) > CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
            for key, value, partition in chunk:
                pending.append(await producer.send(f"{app_id}-ingest", value=value, key=key, partition=partition))
            if (base // CHUNK) % 40 == 39:
                log(f"{app_id}: {base + CHUNK:,} of {events:,} records produced ({time.monotonic() - start:.0f}s)")
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    rng.shuffle(ids)
    rng.shuffle(broker_ids)
    return {"events": events, "broker_events": broker_events, "payload_bytes_per_event": payload_bytes / events,
            "seconds": time.monotonic() - start, "build_seconds": build_seconds, "ids": ids, "broker_ids": broker_ids,
            "source_id": source["uid"]}


async def _wait_consumed(ctx: Context, app_id: str, worker: Worker, events: int) -> dict[str, Any]:
    """Until the worker's consumer group committed the whole ingest topic."""
    ingest, deliveries = f"{app_id}-ingest", f"{app_id}-deliveries"
    out: dict[str, Any] = {}
    cpu: CpuMeter | None = None
    spawn = worker.started_at
    async with TopicProbe(ctx.bootstrap) as probe:
        last_lag, last_change, last_log = None, time.monotonic(), time.monotonic()
        while True:
            if not worker.alive():
                raise RuntimeError(f"worker {app_id} died during the fill:\n{worker.log_tail()}")
            lag = await probe.lag(app_id, ingest)
            now = time.monotonic()
            if cpu is None and lag is not None and lag < events:
                cpu = CpuMeter({"worker": worker.pid, "kafka": ctx.kafka_pid})
            if lag != last_lag:
                last_lag, last_change = lag, now
            if lag == 0:
                break
            if now - last_change > STALL_SECONDS:
                raise RuntimeError(f"fill stalled: consumer lag stuck at {lag} for {STALL_SECONDS}s:\n{worker.log_tail()}")
            if now - last_log > 60:
                last_log = now
                log(f"{app_id}: consumer lag {lag if lag is not None else 'n/a'} of {events:,} "
                    f"({now - spawn:.0f}s since spawn)")
            await asyncio.sleep(1.0)
        out["consumed_after_spawn"] = time.monotonic() - spawn
        out["cpu_percent"] = cpu.read() if cpu else {}
        out["deliveries"] = await probe.total(deliveries)
        span = await probe.first_last_timestamps(deliveries)
        if span is not None:
            out["span"] = span[1] - span[0]
            out["rate"] = events / out["span"] if out["span"] > 0 else None
    return out


# ----------------------------------------------------------------------------- disk


def _disk_usage(path: Path) -> dict[str, int]:
    """Allocated bytes (st_blocks, what du reports) and apparent bytes of every file under path."""
    allocated = apparent = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            allocated += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return {"allocated": allocated, "apparent": apparent, "files": files}


def _rocksdb_usage(data_dir: Path) -> dict[str, Any]:
    """The worker's table stores (`<data dir>/faust`), in total and per table."""
    faust_dir = data_dir / "faust"
    total = _disk_usage(faust_dir)
    tables: dict[str, int] = {}
    for db in faust_dir.rglob("*.db"):
        if db.is_dir():
            name = db.name[:-3].rsplit("-", 1)[0]  # "<table>-<partition>.db"
            name = name.split(f"{data_dir.name}-", 1)[-1]
            tables[name] = tables.get(name, 0) + _disk_usage(db)["allocated"]
    return {**total, "tables": tables}


def _kafka_usage(ctx: Context, app_id: str) -> dict[str, int] | None:
    """Bytes in the embedded Kafka's log dir of each of the app's topics (partitions summed)."""
    log_dirs = getattr(ctx.kafka, "log_dirs", None)
    if log_dirs is None or not Path(log_dirs).is_dir():
        return None
    topics: dict[str, int] = {}
    for entry in Path(log_dirs).iterdir():
        if entry.is_dir() and entry.name.startswith(app_id + "-"):
            topic = entry.name.rsplit("-", 1)[0]
            topics[topic] = topics.get(topic, 0) + _disk_usage(entry)["allocated"]
    return topics


# ----------------------------------------------------------------------------- queries


async def _timed_get(session: Any, url: str, params: dict[str, str] | None = None) -> tuple[float, int, Any]:
    start = time.perf_counter()
    async with session.get(url, params=params) as response:
        body = await response.read()
        status = response.status
    elapsed = (time.perf_counter() - start) * 1000
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    return elapsed, status, document


def _stats(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50": percentile(ordered, 50), "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99), "max": ordered[-1] if ordered else None,
            "mean": sum(ordered) / len(ordered) if ordered else None}


async def _query_round(ctx: Context, worker: Worker, fill: dict[str, Any], round_no: int) -> dict[str, Any]:
    import aiohttp

    template = ctx.get_template().outgoing
    base = f"{worker.url}/api/v1/projects/{template.project_id}/events"
    rng = random.Random(100 + round_no)
    ids: list[str] = fill["ids"]
    broker_ids: list[tuple[str, str]] = fill["broker_ids"]
    errors: dict[str, int] = {}
    first_error: dict[str, str] = {}

    def error(kind: str, text: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        first_error.setdefault(kind, text[:300])

    out: dict[str, Any] = {"round": round_no}
    connector = aiohttp.TCPConnector(limit=1)
    headers = {"Authorization": f"Bearer {template.api_key}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        cpu = CpuMeter({"worker": worker.pid, "kafka": ctx.kafka_pid}, children="none")

        # point lookups by event id
        count = _per_round(ctx, POINT_LOOKUPS)
        latencies = []
        for n in range(WARMUP + count):
            uid = ids[rng.randrange(len(ids))]
            ms, status, doc = await _timed_get(session, f"{base}/{uid}")
            if status != 200 or not doc or (doc.get("data") or {}).get("uid") != uid:
                error("event", f"{status} {str(doc)[:200]}")
            if n >= WARMUP:
                latencies.append(ms)
        out["event"] = _stats(latencies)

        # lookups by broker message id
        count = _per_round(ctx, BROKER_LOOKUPS)
        latencies = []
        for n in range(WARMUP + count):
            message_id, uid = broker_ids[rng.randrange(len(broker_ids))]
            ms, status, doc = await _timed_get(session, base, {"brokerMessageId": message_id})
            content = ((doc or {}).get("data") or {}).get("content") or []
            if status != 200 or [e.get("uid") for e in content] != [uid]:
                error("broker", f"{status} {str(doc)[:200]}")
            if n >= WARMUP:
                latencies.append(ms)
        out["broker"] = _stats(latencies)

        def check_page(kind: str, status: int, doc: Any) -> str:
            data = (doc or {}).get("data") or {}
            content = data.get("content") or []
            if status != 200 or len(content) != PAGE_SIZE:
                error(kind, f"{status} {len(content)} rows {str(doc)[:200]}")
            return str((data.get("pagination") or {}).get("next_page_cursor") or "")

        # list, first page
        count = _per_round(ctx, FIRST_PAGES)
        latencies = []
        cursor = ""
        for n in range(WARMUP + count):
            ms, status, doc = await _timed_get(session, base, {"perPage": str(PAGE_SIZE)})
            cursor = check_page("first_page", status, doc)
            if n >= WARMUP:
                latencies.append(ms)
        out["first_page"] = _stats(latencies)

        # the following pages, cursor after cursor (as a client pages through)
        count = _per_round(ctx, NEXT_PAGES)
        latencies = []
        for n in range(count):
            if not cursor:
                error("next_page", f"no next_page_cursor after {n} pages")
                break
            ms, status, doc = await _timed_get(session, base, {"perPage": str(PAGE_SIZE), "next_page_cursor": cursor})
            cursor = check_page("next_page", status, doc)
            latencies.append(ms)
        out["next_page"] = _stats(latencies)
        out["next_page"]["depth_reached"] = PAGE_SIZE * (1 + len(latencies))

        # pages at random depths: the cursor is a random stored event's id
        count = _per_round(ctx, RANDOM_PAGES)
        latencies = []
        for n in range(count):
            uid = ids[rng.randrange(len(ids))]
            ms, status, doc = await _timed_get(session, base, {"perPage": str(PAGE_SIZE), "next_page_cursor": uid})
            content = ((doc or {}).get("data") or {}).get("content") or []
            # the oldest events have fewer than a page after them
            if status != 200 or not content or content[0].get("uid", "") >= uid:
                error("random_page", f"{status} {len(content)} rows {str(doc)[:200]}")
            latencies.append(ms)
        out["random_page"] = _stats(latencies)

        # Filtered lists. No index serves sourceId/endpointId/ownerId: the list walks the
        # window and filters (raw rows pre-filtered by a substring test before decoding).
        # A common filter fills a page quickly; one that matches nothing reads the most rows
        # a request may read (tables/scan.SCAN_BUDGET), then answers an empty page.
        count = _per_round(ctx, COMMON_FILTER_PAGES)
        latencies = []
        for n in range(count):
            ms, status, doc = await _timed_get(session, base, {"perPage": str(PAGE_SIZE), "sourceId": fill["source_id"]})
            content = ((doc or {}).get("data") or {}).get("content") or []
            if status != 200 or len(content) != PAGE_SIZE or any(e.get("source_id") != fill["source_id"] for e in content):
                error("common_filter", f"{status} {len(content)} rows {str(doc)[:200]}")
            latencies.append(ms)
        out["common_filter"] = _stats(latencies)
        count = _per_round(ctx, EMPTY_FILTER_PAGES)
        latencies = []
        for n in range(count):
            ms, status, doc = await _timed_get(session, base, {"perPage": str(PAGE_SIZE), "endpointId": "no-such-endpoint"})
            content = ((doc or {}).get("data") or {}).get("content")
            if status != 200 or content:
                error("empty_filter", f"{status} {str(doc)[:200]}")
            latencies.append(ms)
        out["empty_filter"] = _stats(latencies)
        out["cpu_percent"] = cpu.read()
    out["errors"] = errors
    out["first_error"] = first_error
    return out


# ----------------------------------------------------------------------------- scenario


def _mb(value: float | None) -> float | None:
    return round(value / 1e6, 1) if value is not None else None


def run_lookups(ctx: Context) -> list[Row]:
    events = event_count(ctx)
    if events < 10 * PAGE_SIZE:
        raise ValueError(f"--lookup-events {events}: at least {10 * PAGE_SIZE} events, so that pages are full")
    samples = min(SAMPLES, events // BROKER_SHARE)
    app_id = ctx.app("lookups")
    ctx.get_template()
    ctx.prepare_app(app_id, None)  # config copied, ingest topic created (empty)
    log(f"{app_id}: building and producing {events:,} events ({100 // BROKER_SHARE}% from a broker source, "
        f"{PAYLOAD_BYTES}-byte payloads)...")
    fill = asyncio.run(_fill(ctx, app_id, events, samples))
    log(f"{app_id}: {events:,} records in {fill['seconds']:.0f}s (building {fill['build_seconds']:.0f}s); "
        "starting the worker")
    worker = Worker(ctx.bootstrap, ctx.workdir / app_id, app_id, ctx.admin_token).start()
    details: dict[str, Any] = {"app_id": app_id, "events": events, "broker_events": fill["broker_events"],
                               "payload_bytes_per_event": fill["payload_bytes_per_event"],
                               "produce_seconds": fill["seconds"], "build_seconds": fill["build_seconds"]}
    rounds: list[dict[str, Any]] = []
    try:
        details["healthy_after"] = worker.wait_healthy(timeout=180)
        consumed = asyncio.run(_wait_consumed(ctx, app_id, worker, events))
        details.update(consumed)
        log(f"{app_id}: backlog consumed {consumed['consumed_after_spawn']:.0f}s after spawn, "
            f"{consumed.get('rate') or 0:,.0f} events/s, {consumed.get('deliveries'):,} deliveries")
        details["rss_after_fill"] = rss_mb(worker.pid)
        details["rocksdb_after_fill"] = _rocksdb_usage(worker.data_dir)
        for r in range(ctx.runs):
            rounds.append(asyncio.run(_query_round(ctx, worker, fill, r)))
            q = rounds[-1]
            log(f"{app_id}: round {r + 1}: event p50/p99 {q['event']['p50']:.1f}/{q['event']['p99']:.1f} ms, "
                f"broker id {q['broker']['p50']:.1f}/{q['broker']['p99']:.1f} ms, first page "
                f"{q['first_page']['p50']:.1f}/{q['first_page']['p99']:.1f} ms, next pages "
                f"{q['next_page']['p50']:.1f}/{q['next_page']['p99']:.1f} ms, random-depth pages "
                f"{q['random_page']['p50']:.1f}/{q['random_page']['p99']:.1f} ms; errors {q['errors'] or 'none'}")
        details["rss_after_queries"] = rss_mb(worker.pid)
        details["rocksdb"] = _rocksdb_usage(worker.data_dir)
        details["kafka_topics"] = _kafka_usage(ctx, app_id)
        worker.stop()
        details["rocksdb_after_stop"] = _rocksdb_usage(worker.data_dir)
    finally:
        ctx.drop_worker(worker)
    details["rounds"] = rounds
    return _rows(ctx, events, details, rounds)


def _rows(ctx: Context, events: int, d: dict[str, Any], rounds: list[dict[str, Any]]) -> list[Row]:
    tag = f"{events / 1e6:g}M" if events >= 1_000_000 else f"{events // 1000}k"
    one_fill = (f"1 fill of {events:,} events ({d['broker_events']:,} from a broker source); "
                f"{len(rounds)} round(s) of sequential keep-alive requests, each percentile over the round's requests")
    errors: dict[str, int] = {}
    for q in rounds:
        for kind, n in q["errors"].items():
            errors[kind] = errors.get(kind, 0) + n

    def err(kind: str) -> str:
        return f"; {errors[kind]} WRONG ANSWERS (see JSON first_error)" if errors.get(kind) else ""

    def lat(kind: str, q: str) -> list[float | None]:
        return [r[kind][q] for r in rounds]

    def n(kind: str) -> int:
        return rounds[0][kind]["n"] if rounds else 0

    rows = [
        Row("lookups", f"event by id p50, {tag} stored", "ms", lat("event", "p50"), higher_is_better=False,
            note=f"{one_fill}; GET /events/{{id}} of {n('event'):,} random stored ids per round{err('event')}",
            details=[d]),
        Row("lookups", "event by id p99", "ms", lat("event", "p99"), target="<= 10 ms", target_max=10,
            higher_is_better=False),
        Row("lookups", "by brokerMessageId p50", "ms", lat("broker", "p50"), higher_is_better=False,
            note=f"GET /events?brokerMessageId= of {n('broker'):,} random broker-sourced events per round; "
                 f"asks every worker (here one){err('broker')}"),
        Row("lookups", "by brokerMessageId p99", "ms", lat("broker", "p99"), target="<= 10 ms", target_max=10,
            higher_is_better=False),
        Row("lookups", "list 100, first page p50", "ms", lat("first_page", "p50"), higher_is_better=False,
            note=f"GET /events?perPage=100, default 7-day window, {n('first_page')} requests per round"
                 f"{err('first_page')}"),
        Row("lookups", "list 100, first page p99", "ms", lat("first_page", "p99"), target="<= 100 ms",
            target_max=100, higher_is_better=False),
        Row("lookups", "list 100, next pages p50", "ms", lat("next_page", "p50"), higher_is_better=False,
            note=f"{n('next_page')} pages in a row per round following next_page_cursor{err('next_page')}"),
        Row("lookups", "list 100, next pages p99", "ms", lat("next_page", "p99"), target="<= 100 ms",
            target_max=100, higher_is_better=False),
        Row("lookups", "list 100, random-depth p99", "ms", lat("random_page", "p99"), target="<= 100 ms",
            target_max=100, higher_is_better=False,
            note=f"{n('random_page')} pages per round with next_page_cursor = a random stored event's id"
                 f"{err('random_page')}"),
        Row("lookups", "list 100 by sourceId p99", "ms", lat("common_filter", "p99"), target="<= 100 ms",
            target_max=100, higher_is_better=False,
            note=f"{n('common_filter')} first pages per round filtered by the broker source (1 event in 5; no index, "
                 f"a walk of the window){err('common_filter')}"),
        Row("lookups", "list by endpointId, no match p50", "ms", lat("empty_filter", "p50"), higher_is_better=False,
            note=f"{n('empty_filter')} first pages per round for an endpoint with no events (no index; the worst "
                 f"case): each request reads at most 20,000 rows per worker and answers a short page with a cursor "
                 f"to continue{err('empty_filter')}"),
        Row("lookups", "worker RSS after fill", "MB", [(d.get("rss_after_fill") or {}).get("VmRSS")],
            higher_is_better=False, note=f"VmRSS once the {events:,}-event backlog was consumed"),
        Row("lookups", "worker RSS after queries", "MB", [(d.get("rss_after_queries") or {}).get("VmRSS")],
            higher_is_better=False,
            note=f"peak (VmHWM) {(d.get('rss_after_queries') or {}).get('VmHWM')} MB"),
    ]
    disk = (d.get("rocksdb") or {}).get("allocated")
    payload = d["payload_bytes_per_event"]
    tables = (d.get("rocksdb") or {}).get("tables") or {}
    per_table = ", ".join(f"{k} {v / events:,.0f}" for k, v in sorted(tables.items(), key=lambda kv: -kv[1]))
    rows += [
        Row("lookups", "rocksdb data dir per 1M events", "MB", [_mb(disk * 1e6 / events) if disk else None],
            higher_is_better=False,
            note=f"du of the worker's <data dir>/faust after the queries: {_mb(disk)} MB for {events:,} events; "
                 f"bytes/event per table: {per_table}"),
        Row("lookups", f"disk/event beyond the {PAYLOAD_BYTES} B payload", "B",
            [round(disk / events - payload) if disk else None], target="<= 1024 B", target_max=1024,
            higher_is_better=False,
            note="(rocksdb data dir bytes / events) - payload bytes per event, running worker (WAL + memtables "
                 "not yet flushed to compressed SST files count)"),
    ]
    stopped = (d.get("rocksdb_after_stop") or {}).get("allocated")
    if stopped:
        rows.append(Row("lookups", "disk/event beyond payload, stopped", "B", [round(stopped / events - payload)],
                        higher_is_better=False,
                        note=f"the same after SIGTERM (rocksdb flushed its memtables on close): {_mb(stopped)} MB"))
    kafka = d.get("kafka_topics")
    if kafka:
        changelogs = sum(v for k, v in kafka.items() if k.endswith("-changelog"))
        topics = ", ".join(f"{k.removeprefix(d['app_id'] + '-')} {v / events:,.0f}" for k, v in sorted(kafka.items()))
        rows.append(Row("lookups", "Kafka changelogs per 1M events", "MB", [_mb(changelogs * 1e6 / events)],
                        higher_is_better=False,
                        note=f"embedded Kafka's log dir (not the worker's disk), the app's table changelog topics; "
                             f"each key written once, so compaction frees little; bytes/event per topic: {topics}"))
    rows.append(Row("lookups", "fill rate (1 worker)", "ev/s", [d.get("rate")],
                    note="events / (last - first delivery record timestamp) while the worker consumed the "
                         "pre-filled backlog", cpu=[d.get("cpu_percent")]))
    return rows
