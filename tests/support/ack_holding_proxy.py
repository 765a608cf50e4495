"""A TCP proxy between a worker and a broker that withholds the worker's acknowledgement.

Once the proxy has passed the broker's delivery of a message containing ``marker`` to the
worker, it forwards nothing more from the worker to the broker: the worker writes the
message to Kafka (its own connection, not proxied) and acks it, and the ack never arrives.
The test then kills the worker (SIGKILL) and calls :meth:`release`, which drops every proxied
connection and forwards faithfully from then on: for the broker, a consumer died holding an
unacknowledged message, which it redelivers (RabbitMQ at once, SQS after the visibility
timeout, Pub/Sub after the ack deadline).

It works on the byte stream (AMQP frames, HTTP/1.1, gRPC over HTTP/2 alike): the marker must
travel unencoded in the broker's answer, which plain ASCII letters and digits in a message
body do for all three.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from devkafka.embedded_kafka import free_port


class AckHoldingProxy:
    def __init__(self, upstream_host: str, upstream_port: int, marker: bytes) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.marker = marker
        self.port = free_port()
        self.holding = threading.Event()  # set once the marked delivery went to the worker
        self._released = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="ack-holding-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "AckHoldingProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def release(self) -> None:
        """Drop every connection (and what was withheld); forward everything from now on."""
        asyncio.run_coroutine_threadsafe(self._release(), self._loop).result(10)

    async def _release(self) -> None:
        self._released = True
        self.holding.clear()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        try:
            await asyncio.gather(self._pump(client_reader, upstream_writer, to_broker=True),
                                 self._pump(upstream_reader, client_writer, to_broker=False))
        finally:
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_broker: bool) -> None:
        tail = b""
        try:
            while chunk := await reader.read(65536):
                if to_broker:
                    if self.holding.is_set():
                        continue  # the worker's ack (and whatever follows) never reaches the broker
                elif not self._released and self.marker in tail + chunk:
                    self.holding.set()  # before the worker can have seen it, so before its ack
                tail = (tail + chunk)[-len(self.marker):]
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
