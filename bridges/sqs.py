"""Amazon SQS bridge (aiobotocore).

- receive: long poll of 1 s (``WaitTimeSeconds=1``, as Convoy), up to 10 messages per call
  (SQS's own maximum), all message attributes.
- ack: ``DeleteMessageBatch``. reject: ``ChangeMessageVisibilityBatch`` to 0, so a message
  whose ingest failed transiently is delivered again at once instead of after the queue's
  visibility timeout.
- message id: ``MessageId``. Headers: message attributes; String and Number values as they
  are, Binary values as base64 text (Convoy panicked on those and redelivered them forever).
- ``endpoint`` in the source config points the client at LocalStack, moto or ElasticMQ.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from .base import DEFAULT_BATCH_SIZE, BrokerMessage, header_text

log = logging.getLogger(__name__)

SQS_MAX_BATCH = 10  # ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibilityBatch limit
WAIT_TIME_SECONDS = 1


def _attribute_text(attribute: Mapping[str, Any]) -> str:
    """One SQS message attribute value as text (Binary -> base64)."""
    if attribute.get("StringValue") is not None:
        return str(attribute["StringValue"])
    binary = attribute.get("BinaryValue")
    if binary is not None:
        raw = binary if isinstance(binary, (bytes, bytearray)) else header_text(binary).encode()
        return base64.b64encode(bytes(raw)).decode("ascii")
    # List values are reserved by AWS and never sent, but never crash on them either.
    for key in ("StringListValues", "BinaryListValues"):
        if attribute.get(key):
            return header_text(attribute[key])
    return ""


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SQSConsumer:
    """One SQS worker: one client, polling one queue."""

    broker = "sqs"

    def __init__(self, source: Mapping[str, Any], *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        config = (source.get("pub_sub") or {}).get("sqs") or {}
        self.queue_name: str = config.get("queue_name") or ""
        self.region: str = config.get("default_region") or "us-east-1"
        self.endpoint: str | None = config.get("endpoint") or None
        self._access_key_id: str | None = config.get("access_key_id") or None
        self._secret_key: str | None = config.get("secret_key") or None
        self.batch_size = batch_size
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self.queue_url: str | None = None

    async def connect(self) -> None:
        """Create the client and resolve the queue URL (fails on bad credentials/queue)."""
        await self.close()
        stack = contextlib.AsyncExitStack()
        try:
            session = get_session()
            self._client = await stack.enter_async_context(
                session.create_client(
                    "sqs",
                    region_name=self.region,
                    endpoint_url=self.endpoint,
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_key,
                    config=AioConfig(
                        connect_timeout=5,
                        # Longer than the long poll so an idle poll is not a timeout.
                        read_timeout=WAIT_TIME_SECONDS + 10,
                        retries={"max_attempts": 2, "mode": "standard"},
                    ),
                )
            )
            response = await self._client.get_queue_url(QueueName=self.queue_name)
            self.queue_url = response["QueueUrl"]
        except BaseException:
            await stack.aclose()
            self._client = None
            raise
        self._stack = stack

    async def receive(self, max_messages: int) -> list[BrokerMessage]:
        response = await self._client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(SQS_MAX_BATCH, max_messages)),
            WaitTimeSeconds=WAIT_TIME_SECONDS,
            MessageAttributeNames=["All"],
        )
        messages = []
        for raw in response.get("Messages", []):
            attributes = raw.get("MessageAttributes") or {}
            headers = {name.lower(): _attribute_text(value) for name, value in attributes.items()}
            messages.append(
                BrokerMessage(
                    body=(raw.get("Body") or "").encode("utf-8"),
                    headers=headers,
                    message_id=raw["MessageId"],
                    handle=raw["ReceiptHandle"],
                    delivery_id=raw["MessageId"],
                )
            )
        return messages

    async def ack(self, messages: Sequence[BrokerMessage]) -> None:
        for chunk in _chunks(messages, SQS_MAX_BATCH):
            response = await self._client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.handle} for i, m in enumerate(chunk)],
            )
            for failed in response.get("Failed", []):
                # Already ingested; it will come back after the visibility timeout and be
                # deduplicated downstream. Not worth a reconnect.
                log.warning("sqs delete failed for %s: %s", self.queue_name, failed.get("Code"))

    async def reject(self, messages: Sequence[BrokerMessage]) -> None:
        for chunk in _chunks(messages, SQS_MAX_BATCH):
            await self._client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.handle, "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
