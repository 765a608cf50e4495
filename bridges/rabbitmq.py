"""RabbitMQ (AMQP 0-9-1) bridge (aio-pika).

- connect: one connection and channel per worker, ``prefetch`` (basic.qos) = batch size so the
  broker never pushes more than one batch of un-acked messages; the queue is declared
  ``durable`` (with ``x-dead-letter-exchange`` when ``deadLetterExchange`` is set, as Convoy)
  and bound to ``bindExchange.exchange`` / ``routingKey`` when an exchange is set. The
  exchange itself is not declared: its type is the publisher's business.
- receive: deliveries pushed by ``basic.consume`` are buffered; receive waits at most 1 s for
  the first one and then takes whatever else is already there.
- ack: ``basic.ack``. reject: ``basic.nack(requeue=True)``: a transient failure goes back to
  the queue rather than to the dead-letter exchange (docs/decisions.md#decision-12).
- message id: the ``message_id`` property, else ``exchange/routing_key/delivery_tag``
  (Convoy used the possibly empty property only). Headers: the AMQP headers table, every value
  stringified (Convoy nacked messages with non-string header values).
- redelivery identity (``delivery_id``): the ``message_id`` property, else
  :func:`content_id`, a hash of what the publisher sent. A delivery tag names a delivery, not
  a message (a redelivery gets a new one), so it cannot recognise a redelivered message.
- reconnect: a plain connection rather than ``connect_robust``: when the connection drops,
  ``receive`` raises and the shared loop (``base.run_consumer``) closes and reconnects with
  exponential backoff and jitter, the same as for every other broker, with the error visible
  in the bridge status. Un-acked deliveries of the dead connection are requeued by RabbitMQ
  and delivered again, so nothing is lost across a broker restart; acking a delivery of a
  dead channel raises instead of acking a stranger's delivery tag on the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

from .base import DEFAULT_BATCH_SIZE, BrokerMessage, header_text, lower_headers

log = logging.getLogger(__name__)

RECEIVE_WAIT = 1.0
CONNECT_TIMEOUT = 10.0
HEARTBEAT = 30  # as Convoy's URL (?heartbeat=30)


#: Headers RabbitMQ itself adds or changes when it redelivers or dead-letters a message: not
#: part of what the publisher sent, so not part of :func:`content_id`.
BROKER_HEADERS = frozenset({"x-delivery-count", "x-death", "x-first-death-exchange", "x-first-death-queue",
                            "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                            "x-last-death-reason"})


def content_id(message: AbstractIncomingMessage) -> str:
    """The identity of a message published without a ``message_id``: the same on every
    redelivery of it, different for any message that differs in what the publisher sent.

    A SHA-256 over the exchange, the routing key, the publisher's properties (content type and
    encoding, correlation id, reply-to, timestamp, type, user id, app id, priority), the headers
    (less those RabbitMQ adds on redelivery, :data:`BROKER_HEADERS`) and the body. The bridge
    scopes it to its source (one queue). What this implies: two messages published without a
    ``message_id`` that are identical in all of these are one message to the bridge; the second
    is stored as a duplicate within the project's retention and not delivered. Publishers that
    send the same content twice on purpose set a ``message_id`` (or a timestamp) to tell them
    apart.
    """
    properties = {
        "content_type": message.content_type, "content_encoding": message.content_encoding,
        "correlation_id": message.correlation_id, "reply_to": message.reply_to,
        "timestamp": message.timestamp.timestamp() if message.timestamp else None,
        "type": message.type, "user_id": message.user_id, "app_id": message.app_id, "priority": message.priority,
    }
    headers = {name: value for name, value in (message.headers or {}).items() if name.lower() not in BROKER_HEADERS}
    digest = hashlib.sha256()
    for part in (message.exchange or "", message.routing_key or "", header_text(properties), header_text(headers)):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    digest.update(bytes(message.body))
    return "sha256:" + digest.hexdigest()


class _ConnectionLost:
    """Sentinel put in the buffer to wake ``receive`` when the channel or connection closes."""

    def __init__(self, reason: BaseException | None) -> None:
        self.reason = reason


class RabbitMQConsumer:
    """One AMQP worker: its own connection and channel consuming one queue."""

    broker = "amqp"

    def __init__(self, source: Mapping[str, Any], *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        config = (source.get("pub_sub") or {}).get("amqp") or {}
        auth = config.get("auth") or {}
        bind = config.get("bindExchange") or config.get("bind_exchange") or {}
        self.schema: str = (config.get("schema") or "amqp").lower()
        self.host: str = config.get("host") or "localhost"
        self.port: int = int(config.get("port") or (5671 if self.schema == "amqps" else 5672))
        self.vhost: str = config.get("vhost") or "/"
        self.queue_name: str = config.get("queue") or ""
        # Request shape {bindExchange: {exchange, routingKey}}; stored shape is flat
        # {bindedExchange, routingKey} (spec 5.1). Accept both.
        self.exchange: str = bind.get("exchange") or config.get("bindedExchange") or ""
        self.routing_key: str = bind.get("routingKey") or config.get("routingKey") or ""
        self.dead_letter_exchange: str = config.get("deadLetterExchange") or ""
        self._user: str = auth.get("user") or "guest"
        self._password: str = auth.get("password") or "guest"
        self.prefetch = max(1, batch_size)
        self.connection_name = f"convoy-stream bridge {source.get('uid', '')}".strip()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._buffer: asyncio.Queue[AbstractIncomingMessage | _ConnectionLost] = asyncio.Queue()
        #: The messages the last `receive` returned, none of them settled yet.
        self._unsettled: list[AbstractIncomingMessage] = []

    async def connect(self) -> None:
        await self.close()
        self._buffer = asyncio.Queue()
        buffer = self._buffer  # bound now: a late callback of an old connection is harmless
        connection = await aio_pika.connect(
            host=self.host,
            port=self.port,
            login=self._user,
            password=self._password,
            virtualhost=self.vhost,
            ssl=self.schema == "amqps",
            timeout=CONNECT_TIMEOUT,
            heartbeat=HEARTBEAT,
            client_properties={"connection_name": self.connection_name},
        )
        self._connection = connection
        try:
            channel = await connection.channel()
            self._channel = channel

            def lost(_sender: Any, exc: BaseException | None = None) -> None:
                buffer.put_nowait(_ConnectionLost(exc))

            connection.close_callbacks.add(lost)
            channel.close_callbacks.add(lost)
            await channel.set_qos(prefetch_count=self.prefetch)
            arguments = {}
            if self.dead_letter_exchange:
                arguments["x-dead-letter-exchange"] = self.dead_letter_exchange
            queue = await channel.declare_queue(
                self.queue_name, durable=True, auto_delete=False, arguments=arguments or None
            )
            if self.exchange:
                await queue.bind(self.exchange, routing_key=self.routing_key)

            async def deliver(message: AbstractIncomingMessage) -> None:
                buffer.put_nowait(message)

            await queue.consume(deliver)
        except BaseException:
            await self.close()
            raise

    def _to_broker_message(self, message: AbstractIncomingMessage) -> BrokerMessage:
        message_id = message.message_id or (
            f"{message.exchange or ''}/{message.routing_key or ''}/{message.delivery_tag}"
        )
        return BrokerMessage(
            body=bytes(message.body),
            headers=lower_headers((message.headers or {}).items()),
            message_id=message_id,
            handle=message,
            delivery_id=message.message_id or content_id(message),
        )

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        buffer = self._buffer
        try:
            first = await asyncio.wait_for(buffer.get(), timeout=RECEIVE_WAIT)
        except asyncio.TimeoutError:
            first = None
        items = [] if first is None else [first]
        while len(items) < max_messages and not buffer.empty():
            items.append(buffer.get_nowait())
        lost = next((item for item in items if isinstance(item, _ConnectionLost)), None)
        if lost is not None or self._connection is None or self._connection.is_closed:
            # Deliveries of the dead channel are requeued by the broker; drop ours.
            reason = lost.reason if lost is not None else None
            raise ConnectionError(f"amqp connection lost: {reason or 'closed'}")
        self._unsettled = [m for m in items if isinstance(m, AbstractIncomingMessage)]
        return [self._to_broker_message(m) for m in self._unsettled]

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        # The shared loop settles a batch before it receives the next, so when every message
        # of the last batch is acked, they are all the unsettled deliveries up to the newest
        # one: one ack with `multiple` settles them in one frame instead of one frame each.
        handles = [m.handle for m in messages]
        if len(handles) > 1 and len(handles) == len(self._unsettled) and set(map(id, handles)) == set(map(id, self._unsettled)):
            newest = max(messages, key=lambda m: m.handle.delivery_tag)
            await self._settle(newest, ack=True, multiple=True)
            return
        for message in messages:
            await self._settle(message, ack=True)

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        for message in messages:
            await self._settle(message, ack=False)

    @staticmethod
    async def _settle(message: BrokerMessage, *, ack: bool, multiple: bool = False) -> None:
        delivery: AbstractIncomingMessage = message.handle
        try:
            if ack:
                await delivery.ack(multiple=multiple)
            else:
                await delivery.nack(requeue=True)
        except ChannelInvalidStateError as exc:
            # Delivery tags belong to the channel that died; the broker has requeued the
            # message and will deliver it again on the next connection.
            raise ConnectionError(
                "amqp channel closed before the delivery was settled; it will be redelivered"
            ) from exc

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except Exception:
                log.debug("amqp close failed", exc_info=True)
