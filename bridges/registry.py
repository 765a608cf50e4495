"""Which module consumes which ``pub_sub.type``.

Broker modules are imported on first use: a worker whose sources only use SQS never pays
for importing the Google gRPC stack, and a missing optional client library only breaks the
sources that need it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from convoy_stream.kafka_connection import KafkaConnection

from .base import DEFAULT_BATCH_SIZE, Consumer

# pub_sub.type -> (module, class)
BROKERS: dict[str, tuple[str, str]] = {
    "kafka": ("bridges.kafka", "KafkaConsumer"),
    "sqs": ("bridges.sqs", "SQSConsumer"),
    "google": ("bridges.pubsub", "PubSubConsumer"),
    "amqp": ("bridges.rabbitmq", "RabbitMQConsumer"),
}


class UnsupportedBroker(ValueError):
    """The source's ``pub_sub.type`` names no bridge (Convoy: "unsupported pub sub type")."""


def broker_of(source: Mapping[str, Any]) -> str:
    return str(((source.get("pub_sub") or {}).get("type")) or "").lower()


def consumer_for(
    source: Mapping[str, Any],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    kafka_bootstrap: str | KafkaConnection | None = None,
) -> Consumer:
    """A new, unconnected consumer for ``source``, picked by ``source["pub_sub"]["type"]``.

    ``kafka_bootstrap`` is convoy-stream's own cluster, used by a Kafka source with no
    ``brokers`` (direct Kafka production); the other brokers ignore it.
    """
    broker = broker_of(source)
    if broker not in BROKERS:
        raise UnsupportedBroker("unsupported pub sub type")
    module_name, class_name = BROKERS[broker]
    cls = getattr(importlib.import_module(module_name), class_name)
    if broker == "kafka":
        return cls(source, batch_size=batch_size, kafka_bootstrap=kafka_bootstrap)
    return cls(source, batch_size=batch_size)
