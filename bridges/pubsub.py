"""Google Cloud Pub/Sub bridge (google-cloud-pubsub's asyncio gRPC client, synchronous pull).

Synchronous ``pull`` rather than the streaming-pull subscriber: the streaming client acks
from its own threads on its own schedule, which cannot honour "ack only after Kafka
acknowledged the record" together with our batch loop; ``pull``/``acknowledge`` can. The
asyncio client keeps an idle worker from parking a thread of the default executor.

- receive: ``pull`` of up to ``max_messages``; the emulator answers an empty pull at once, real
  Pub/Sub holds it, so pulls are repeated/bounded to about one second.
- ack: ``acknowledge``. reject: ``modify_ack_deadline(0)`` (redelivered at once).
- message id: ``message_id`` (the emulator's are small counters "1", "2", ...).
  Headers: the message attributes.
- credentials: ``service_account`` is the base64 of a JSON key file (raw JSON accepted too).
  With ``PUBSUB_EMULATOR_HOST`` set, the emulator is used with anonymous credentials and an
  empty service account is fine.
- Handling must finish within the subscription's ack deadline (10 s by default), otherwise
  Pub/Sub redelivers; the ingest is deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .base import DEFAULT_BATCH_SIZE, BrokerMessage, lower_headers

PUBSUB_SCOPES = ["https://www.googleapis.com/auth/pubsub"]
RECEIVE_WAIT = 1.0
EMPTY_PULL_PAUSE = 0.2  # between pulls when the server answers "nothing" at once (emulator)
ACK_CHUNK = 1000  # ack ids per acknowledge request (the API limit is far larger in bytes)


def service_account_info(value: str | bytes | None) -> dict[str, Any] | None:
    """Decode the source's ``service_account`` (base64 of the key file JSON, or the JSON)."""
    if not value:
        return None
    raw = value.encode() if isinstance(value, str) else bytes(value)
    text = raw.strip()
    if not text.startswith(b"{"):
        try:
            text = base64.b64decode(text, validate=False).strip()
        except (binascii.Error, ValueError) as exc:
            raise ValueError("service_account is neither base64 nor JSON") from exc
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ValueError("service_account is not a JSON key file") from exc
    if not isinstance(info, dict):
        raise ValueError("service_account is not a JSON key file")
    return info


def subscription_path(project_id: str, subscription_id: str) -> str:
    if subscription_id.startswith("projects/"):
        return subscription_id
    return f"projects/{project_id}/subscriptions/{subscription_id}"


class PubSubConsumer:
    """One Pub/Sub worker: one gRPC channel pulling one subscription."""

    broker = "google"

    def __init__(self, source: Mapping[str, Any], *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        config = (source.get("pub_sub") or {}).get("google") or {}
        self.project_id: str = config.get("project_id") or ""
        self.subscription_id: str = config.get("subscription_id") or ""
        self.subscription = subscription_path(self.project_id, self.subscription_id)
        self._service_account = config.get("service_account") or ""
        self.batch_size = batch_size
        self._client: Any = None
        self._transport: Any = None

    def _make_client(self) -> tuple[Any, Any]:
        import grpc
        from google.auth.credentials import AnonymousCredentials
        from google.oauth2 import service_account
        from google.pubsub_v1 import SubscriberAsyncClient
        from google.pubsub_v1.services.subscriber.transports.grpc_asyncio import (
            SubscriberGrpcAsyncIOTransport,
        )

        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            transport = SubscriberGrpcAsyncIOTransport(
                channel=grpc.aio.insecure_channel(emulator),
                credentials=AnonymousCredentials(),
            )
            return SubscriberAsyncClient(transport=transport), transport
        info = service_account_info(self._service_account)
        if info is None:
            raise ValueError("service account is required")
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=PUBSUB_SCOPES
        )
        client = SubscriberAsyncClient(credentials=credentials)
        return client, client.transport

    async def connect(self) -> None:
        """Open the channel and check that the subscription exists.

        A key with only ``roles/pubsub.subscriber`` may not read subscription metadata;
        permission denied on that check is not an error (pull will tell), not found is.
        """
        from google.api_core import exceptions as gexc

        await self.close()
        self._client, self._transport = self._make_client()
        try:
            await self._client.get_subscription(
                request={"subscription": self.subscription}, timeout=15, retry=None
            )
        except gexc.PermissionDenied:
            pass
        except BaseException:
            await self.close()
            raise

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        from google.api_core import exceptions as gexc

        deadline = time.monotonic() + RECEIVE_WAIT
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = await self._client.pull(
                    request={"subscription": self.subscription, "max_messages": max_messages},
                    timeout=max(0.2, remaining),
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                return []  # real Pub/Sub holding an idle pull
            if response.received_messages:
                return [
                    BrokerMessage(
                        body=bytes(received.message.data),
                        headers=lower_headers(received.message.attributes.items()),
                        message_id=received.message.message_id,
                        handle=received.ack_id,
                        delivery_id=received.message.message_id,
                    )
                    for received in response.received_messages
                ]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(EMPTY_PULL_PAUSE, remaining))

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        ack_ids = [m.handle for m in messages]
        for i in range(0, len(ack_ids), ACK_CHUNK):
            await self._client.acknowledge(
                request={"subscription": self.subscription, "ack_ids": ack_ids[i : i + ACK_CHUNK]},
                timeout=30,
            )

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        ack_ids = [m.handle for m in messages]
        for i in range(0, len(ack_ids), ACK_CHUNK):
            await self._client.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": ack_ids[i : i + ACK_CHUNK],
                    "ack_deadline_seconds": 0,
                },
                timeout=30,
            )

    async def close(self) -> None:
        transport, self._transport, self._client = self._transport, None, None
        if transport is not None:
            try:
                await transport.close()
            except Exception:
                pass
