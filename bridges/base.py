"""The one narrow interface every broker bridge implements, and the loop written once.

A bridge moves messages from an external broker (Kafka, SQS, Google Pub/Sub, RabbitMQ) into
convoy-stream. Each broker lives in its own module and only knows how to ``connect``,
``receive`` a batch, ``ack``, ``reject`` and ``close``. Everything that decides *when* a
message may be acknowledged lives here, in :func:`run_consumer`, so the rule
"acknowledge only what is durable" is written (and tested) once for all brokers:

- a message is acked only after ``handle`` (given the whole received batch) or, for an
  invalid message, ``dead_letter`` returned, i.e. after Kafka acknowledged the record;
- a message that can never be valid (``InvalidMessage``) goes to the dead-letter topic with
  its reason, then is acked at the source, so it is neither lost nor redelivered forever;
- any other failure is transient (typically: Kafka unreachable): the message is rejected,
  i.e. given back to the broker for redelivery, and the loop backs off.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from convoy_stream import clock

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
"""Messages fetched (and handled concurrently) per ``receive`` call."""

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0


@dataclass
class BrokerMessage:
    """One message as received from a broker, normalised just enough to be ingested.

    ``headers`` are the broker's own headers/attributes with lower-cased names and text values
    (docs/decisions.md#decision-13: one header map, lower-case names). ``message_id`` is the id recorded on the
    event as the broker message id. ``handle`` is private to the consumer that produced the
    message (receipt handle, ack id, aio-pika message, Kafka offset...) and is what
    ``ack``/``reject`` act on.
    """

    body: bytes
    headers: dict[str, str]
    message_id: str
    handle: Any = field(default=None, repr=False)
    #: Names this message and no other, the same on every redelivery (SQS MessageId,
    #: Pub/Sub message id, Kafka topic/partition/offset, AMQP message_id, else a hash of the
    #: AMQP message's content). Redeliveries are deduplicated by it; "" (a consumer that knows
    #: no identity) leaves them undeduplicated.
    delivery_id: str = ""


class InvalidMessage(Exception):
    """Raised by a handler for a message that can never become valid.

    The loop sends it to the dead-letter topic with ``reason`` and then acks it at the source.
    Anything else a handler raises is treated as transient and the message is redelivered.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Consumer(Protocol):
    """What a broker module provides. One instance is one worker (one connection/client)."""

    broker: str  # "kafka" | "sqs" | "google" | "amqp"

    async def connect(self) -> None:
        """Open the connection; raises when the broker cannot be reached."""

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        """Return up to ``max_messages`` messages, waiting at most about one second."""

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        """Acknowledge messages for good (delete, commit, ack)."""

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        """Give messages back to the broker so they are delivered again soon."""

    async def close(self) -> None:
        """Release the connection. Must not raise and may be called after a failed connect."""


Handle = Callable[[Mapping[str, Any], Sequence[BrokerMessage]], Awaitable[Sequence[BaseException | None]]]
"""(source, messages): returns once every record it could build is durable in Kafka, with
one outcome per message, in order: ``None`` (durable), :class:`InvalidMessage` (can never be
valid) or any other exception (transient). Raising fails the whole batch, transiently.

A batch, not a message, so a handler can write a whole receive to Kafka at once and wait for
one acknowledgement instead of a task and a round trip per message (see :func:`one_at_a_time`
for a handler written per message)."""

DeadLetter = Callable[[Mapping[str, Any], BrokerMessage, str], Awaitable[None]]
"""(source, message, reason): returns once the message is durable in the dead-letter topic."""

OnError = Callable[[BaseException], None]


# --------------------------------------------------------------------------- small helpers


def header_text(value: Any) -> str:
    """Render any broker header value as text, never raising.

    Brokers allow typed headers (AMQP tables hold ints, bools, bytes, nested tables; Kafka and
    SQS binary values are raw bytes). Convoy crashed or nacked on non-string values; we keep
    them: UTF-8 bytes as text, other bytes as base64, containers as JSON.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=header_text, separators=(",", ":"), sort_keys=True)
    return str(value)


def lower_headers(items: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """Header pairs -> one dict with lower-cased names and text values (last one wins)."""
    out: dict[str, str] = {}
    for name, value in items:
        out[header_text(name).lower()] = header_text(value)
    return out


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove credentials from an error message before it is shown in a status page or log.

    Client libraries like to echo connection URLs (``amqp://user:pass@host``) or request
    parameters in their exceptions, so both the source's known secret values and any URL
    userinfo are replaced.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


def source_secrets(source: Mapping[str, Any]) -> list[str]:
    """Every credential-like value in a source's pub_sub config (for :func:`redact`)."""
    found: list[str] = []
    secret_keys = {"secret_key", "access_key_id", "password", "service_account", "user", "username"}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in secret_keys and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(source.get("pub_sub") or {})
    return found


class Backoff:
    """Exponential backoff 0.5 s .. 30 s with up to 25 % jitter, interruptible by ``stop``.

    Jitter keeps the workers of many sources from reconnecting to a recovered broker in
    lock-step.
    """

    def __init__(self, minimum: float = BACKOFF_MIN, maximum: float = BACKOFF_MAX) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.minimum * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return min(self.maximum, base + random.uniform(0, base * 0.25))

    async def wait(self, stop: asyncio.Event) -> None:
        """Sleep the next delay, returning early when ``stop`` is set."""
        delay = self.next_delay()
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass


@dataclass
class WorkerStats:
    """Counters one running consumer keeps, for ``BridgeManager.status``."""

    connected: bool = False
    connected_once: bool = False
    received: int = 0
    acked: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


# --------------------------------------------------------------------------- the loop

_DONE = "done"  # ingested: ack
_DEAD = "dead"  # dead-lettered: ack
_RETRY = "retry"  # transient failure: reject


def one_at_a_time(handle: Callable[[Mapping[str, Any], BrokerMessage], Awaitable[None]]) -> Handle:
    """A :data:`Handle` from a handler of one message: what it raises is that message's outcome."""

    async def each(source: Mapping[str, Any], message: BrokerMessage) -> BaseException | None:
        try:
            await handle(source, message)
            return None
        except Exception as exc:
            return exc

    async def batch(source: Mapping[str, Any], messages: Sequence[BrokerMessage]) -> list[BaseException | None]:
        return list(await asyncio.gather(*(each(source, message) for message in messages)))

    return batch


async def _settle(
    source: Mapping[str, Any],
    messages: Sequence[BrokerMessage],
    handle: Handle,
    dead_letter: DeadLetter,
) -> list[tuple[str, BaseException | None]]:
    """Run the handler for a batch and say what to do with each message at the source."""
    try:
        results = list(await handle(source, messages))
        if len(results) != len(messages):
            raise RuntimeError(f"handler returned {len(results)} outcomes for {len(messages)} messages")
    except Exception as exc:
        return [(_RETRY, exc)] * len(messages)

    async def dead(message: BrokerMessage, invalid: InvalidMessage) -> tuple[str, BaseException | None]:
        try:
            await dead_letter(source, message, invalid.reason)
            return _DEAD, None
        except Exception as exc:  # dead-letter topic not durable: retry later
            return _RETRY, exc

    outcomes: list[tuple[str, BaseException | None]] = [
        (_DONE, None) if result is None else (_RETRY, result) for result in results
    ]
    invalid = [(i, result) for i, result in enumerate(results) if isinstance(result, InvalidMessage)]
    if invalid:
        settled = await asyncio.gather(*(dead(messages[i], result) for i, result in invalid))
        for (i, _), outcome in zip(invalid, settled):
            outcomes[i] = outcome
    return outcomes


async def run_consumer(
    source: Mapping[str, Any],
    consumer: Consumer,
    handle: Handle,
    dead_letter: DeadLetter,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    stop: asyncio.Event,
    on_error: OnError | None = None,
    stats: WorkerStats | None = None,
    on_reconnect: Callable[[str], None] | None = None,
) -> None:
    """Consume ``source`` with ``consumer`` until ``stop`` is set.

    ``on_reconnect(broker)`` is called each time a connection is made again after
    the first (for the reconnect metric).

    Connects (retrying with backoff), then repeatedly receives a batch, hands it to
    ``handle`` whole, acks those that are durable (ingested or dead-lettered) and rejects
    the rest. A transient handler failure backs off without reconnecting; a broker error
    (receive/ack/reject raising) closes the consumer and reconnects after a backoff. ``source``
    is read at every message, so a live mapping passed in here lets handlers see config
    changes (name, body function...) without restarting the consumer.
    """
    stats = stats if stats is not None else WorkerStats()
    backoff = Backoff()
    secrets = source_secrets(source)
    uid = source.get("uid", "?")

    def report(exc: BaseException, what: str) -> None:
        stats.errors += 1
        stats.last_error = redact(f"{what}: {type(exc).__name__}: {exc}", secrets)
        stats.last_error_at = clock.seconds()
        log.warning("bridge %s (%s) %s", uid, consumer.broker, stats.last_error)
        if on_error is not None:
            try:
                on_error(exc)
            except Exception:  # a status hook must never stop the consumer
                log.exception("bridge on_error hook failed")

    while not stop.is_set():
        try:
            await consumer.connect()
        except Exception as exc:
            report(exc, "connect failed")
            await _close_quietly(consumer)
            await backoff.wait(stop)
            continue
        if stats.connected_once and on_reconnect is not None:
            on_reconnect(consumer.broker)
        stats.connected = stats.connected_once = True
        connected_at = time.monotonic()
        try:
            while not stop.is_set():
                batch = await consumer.receive(batch_size)
                if not batch:
                    continue
                stats.received += len(batch)
                outcomes = await _settle(source, batch, handle, dead_letter)
                to_ack = [m for m, (what, _) in zip(batch, outcomes) if what != _RETRY]
                to_reject = [m for m, (what, _) in zip(batch, outcomes) if what == _RETRY]
                if to_ack:
                    await consumer.ack(to_ack)
                    stats.acked += len(to_ack)
                    stats.dead_lettered += sum(1 for what, _ in outcomes if what == _DEAD)
                if to_reject:
                    await consumer.reject(to_reject)
                    stats.rejected += len(to_reject)
                    first = next(exc for what, exc in outcomes if what == _RETRY)
                    report(first, f"{len(to_reject)} message(s) not ingested, will retry")
                    await backoff.wait(stop)
                else:
                    backoff.reset()
        except Exception as exc:
            report(exc, "broker error")
            if time.monotonic() - connected_at > backoff.maximum:
                backoff.reset()  # a long healthy connection: start reconnecting fast
        finally:
            stats.connected = False
            await _close_quietly(consumer)
        if not stop.is_set():
            await backoff.wait(stop)


async def _close_quietly(consumer: Consumer) -> None:
    try:
        await consumer.close()
    except Exception:
        log.debug("bridge close failed", exc_info=True)
