"""The HTTP baseline: a bare aiohttp handler that awaits an aiokafka `send_and_wait` (acks=all)
of the request body, then answers 201. No auth, no validation, no record building.

Producer settings match convoy-stream's `Publisher` (acks=all, linger_ms=0, idempotence on),
so the difference to the product is everything the product does besides the Kafka write.
The garbage collector is tuned as in the product's worker (`convoy_stream.cli.tune_gc`).
With `--processes N` the first process forks N-1 copies before it starts anything, and all
N listen on the port with SO_REUSEPORT (each with its own producer), as the API role does;
SIGTERM to the first stops them all. Each process prints "baseline ready" once it listens.

    python bench/baseline_server.py --port 8080 --bootstrap 127.0.0.1:9092 --topic bench-baseline
    python bench/baseline_server.py --port 8080 --bootstrap 127.0.0.1:9092 --topic bench-baseline --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from aiohttp import web
from aiokafka import AIOKafkaProducer

from convoy_stream.cli import tune_gc

ANSWER = b'{"status":true,"message":"accepted"}'


async def serve(port: int, bootstrap: str, topic: str, reuse_port: bool = False) -> None:
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
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
    os.write(1, f"baseline ready: pid {os.getpid()} on 127.0.0.1:{port}\n".encode())  # one write: the processes share the log
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
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    shared = args.processes > 1
    children = []
    for _ in range(args.processes - 1):  # before any event loop, thread or socket exists
        pid = os.fork()
        if pid == 0:
            tune_gc()
            asyncio.run(serve(args.port, args.bootstrap, args.topic, shared))
            os._exit(0)
        children.append(pid)
    tune_gc()
    try:
        asyncio.run(serve(args.port, args.bootstrap, args.topic, shared))
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
