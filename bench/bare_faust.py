"""The pipeline's baseline: a bare Faust agent that iterates the ingest topic and does nothing.

Same Faust version, the same broker settings as convoy-stream's app (`convoy_stream/app.py`:
JSON keys and values, acks=all, the short consumer-group timings, commit every 1000 records
or 0.5 s) and the same topic definition (`key_type=str`, `value_type=IngestRecord`, so each
value is decoded into the same record class the product decodes), one agent over all
partitions. No tables, no sends, no web server. The garbage collector is tuned as in the
product's worker (`convoy_stream.cli.tune_gc`).

Run by `bench/run.py` with the environment:
  KAFKA_BOOTSTRAP_SERVERS, BARE_APP_ID (its consumer group), BARE_TOPIC (an already filled
  topic), BARE_EXPECTED (records to count), BARE_RESULT (a JSON file written when the last
  record was seen), BARE_DATA_DIR, BARE_VALUE (`record`, default, or `raw` for undecoded bytes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust
from faust.worker import Worker

from convoy_stream.cli import tune_gc
from convoy_stream.records import IngestRecord
from convoy_stream.settings import Settings

defaults = Settings()  # the product's defaults, without reading the environment
bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
expected = int(os.environ["BARE_EXPECTED"])
result_path = Path(os.environ["BARE_RESULT"])
partitions = int(os.environ.get("BARE_PARTITIONS", str(defaults.partitions)))
raw = os.environ.get("BARE_VALUE", "record") == "raw"

app = faust.App(
    os.environ["BARE_APP_ID"],
    broker=f"kafka://{bootstrap}",
    store="memory://",
    autodiscover=False,
    datadir=os.environ.get("BARE_DATA_DIR", "/tmp/bare-faust"),
    web_enabled=False,
    topic_partitions=partitions,
    topic_replication_factor=1,
    key_serializer="json",
    value_serializer="json",
    producer_acks=-1,
    broker_session_timeout=defaults.session_timeout,
    broker_heartbeat_interval=defaults.heartbeat_interval,
    broker_rebalance_timeout=defaults.rebalance_timeout,
    broker_commit_every=1000,
    consumer_max_fetch_size=8 * 1024 * 1024,  # as the product (app.py): bare Faust ran 12,100/s at 1 MB
    broker_commit_interval=0.5,
    stream_wait_empty=False,
)

if raw:
    topic = app.topic(os.environ["BARE_TOPIC"], key_type=str, value_type=bytes, key_serializer="json",
                      value_serializer="raw", partitions=partitions)
else:
    topic = app.topic(os.environ["BARE_TOPIC"], key_type=str, value_type=IngestRecord, key_serializer="json",
                      partitions=partitions)


@app.agent(topic)
async def bare(stream):  # type: ignore[no-untyped-def]
    count = 0
    first_wall = first_cpu = 0.0
    async for _ in stream:
        count += 1
        if count == 1:
            first_wall, first_cpu = time.time(), time.process_time()
        if count == expected:
            tmp = result_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({
                "count": count, "first": first_wall, "last": time.time(),
                "cpu_seconds": time.process_time() - first_cpu,
            }))
            tmp.rename(result_path)


if __name__ == "__main__":
    worker = Worker(app, loglevel="warning", quiet=True)
    tune_gc()
    worker.execute_from_commandline()
