"""Broker bridges: external queues and topics in, one ``handle`` call per received batch out.

One module per broker (``kafka``, ``sqs``, ``pubsub``, ``rabbitmq``) behind the narrow
:class:`~bridges.base.Consumer` interface; the loop that decides when a message may be
acknowledged is written once in :func:`~bridges.base.run_consumer`; :class:`BridgeManager`
runs the consumers that the source config asks for.
"""

from .base import (
    DEFAULT_BATCH_SIZE,
    BrokerMessage,
    Consumer,
    DeadLetter,
    Handle,
    InvalidMessage,
    WorkerStats,
    one_at_a_time,
    run_consumer,
)
from .manager import BridgeManager
from .registry import BROKERS, UnsupportedBroker, consumer_for

__all__ = [
    "BROKERS",
    "DEFAULT_BATCH_SIZE",
    "BridgeManager",
    "BrokerMessage",
    "Consumer",
    "DeadLetter",
    "Handle",
    "InvalidMessage",
    "UnsupportedBroker",
    "WorkerStats",
    "consumer_for",
    "one_at_a_time",
    "run_consumer",
]
