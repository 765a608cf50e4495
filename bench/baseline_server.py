"""The HTTP baseline: a bare aiohttp handler that awaits an aiokafka `send_and_wait` (acks=all)
of the request body, then answers 201. No auth, no validation, no record building.

Producer settings match convoy-stream's `Publisher` (acks=all, linger_ms=0, idempotence on),
so the difference to the product is everything the product does besides the Kafka write.
The garbage collector is tuned as in the product's worker (`convoy_stream.cli.tune_gc`).

    python bench/baseline_server.py --port 8080 --bootstrap 127.0.0.1:9092 --topic bench-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web
from aiokafka import AIOKafkaProducer

from convoy_stream.cli import tune_gc

ANSWER = b'{"status":true,"message":"accepted"}'


async def serve(port: int, bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=True)
    await producer.start()

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        await producer.send_and_wait(topic, body)
        return web.Response(body=ANSWER, status=201, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":true}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/{tail:.*}", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    tune_gc()
    asyncio.run(serve(args.port, args.bootstrap, args.topic))


if __name__ == "__main__":
    main()
