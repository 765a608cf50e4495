"""A redelivered broker message must be recognised as the same message (`redelivery_key`),
and no two different messages may be taken for one."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from bridges.base import BrokerMessage
from bridges.rabbitmq import content_id
from convoy_stream.broker_messages import redelivery_key

SOURCE = {"uid": "src-1", "project_id": "proj-1"}


def message(delivery_id: str, body: bytes = b"{}") -> BrokerMessage:
    return BrokerMessage(body=body, headers={}, message_id="shown-" + delivery_id, delivery_id=delivery_id)


def test_the_key_is_the_brokers_identity_scoped_to_project_and_source() -> None:
    key = redelivery_key(SOURCE, message("m-1"))
    assert key == "proj-1:broker:src-1:m-1"
    # a redelivery: another message object, the same identity -> the same key
    assert redelivery_key(SOURCE, message("m-1", b"{}")) == key
    assert redelivery_key(SOURCE, message("m-2")) != key
    # the same broker id in another source (another queue) or project is another message
    assert redelivery_key({**SOURCE, "uid": "src-2"}, message("m-1")) != key
    assert redelivery_key({**SOURCE, "project_id": "proj-2"}, message("m-1")) != key
    # an idempotency key's dedup key is "<project>:<key>": no broker id can produce one
    assert not key.startswith("proj-1:m-1")


def test_no_identity_means_no_key() -> None:
    assert redelivery_key(SOURCE, message("")) == ""


def amqp(body: bytes = b'{"a":1}', *, delivery_tag: int = 1, redelivered: bool = False, **overrides: Any) -> SimpleNamespace:
    """What aio-pika hands the bridge for one delivery (the attributes `content_id` reads)."""
    fields: dict[str, Any] = dict(
        body=body, exchange="orders", routing_key="created", headers={"tenant": "t-1"}, message_id=None,
        content_type="application/json", content_encoding=None, correlation_id=None, reply_to=None,
        timestamp=None, type=None, user_id=None, app_id=None, priority=None,
        delivery_tag=delivery_tag, redelivered=redelivered,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_an_amqp_redelivery_without_message_id_has_the_same_identity() -> None:
    first = content_id(amqp())  # type: ignore[arg-type]
    assert first.startswith("sha256:")
    # RabbitMQ redelivers with a new delivery tag, the redelivered flag, and (quorum queues,
    # dead-lettering) headers of its own: still the same message
    again = amqp(delivery_tag=7, redelivered=True, headers={"tenant": "t-1", "x-delivery-count": 1,
                                                            "x-death": [{"count": 1, "queue": "orders"}]})
    assert content_id(again) == first  # type: ignore[arg-type]


def test_amqp_messages_that_differ_in_what_the_publisher_sent_have_different_identities() -> None:
    base = content_id(amqp())  # type: ignore[arg-type]
    variants = [
        amqp(b'{"a":2}'), amqp(exchange="other"), amqp(routing_key="updated"), amqp(headers={"tenant": "t-2"}),
        amqp(headers={}), amqp(correlation_id="c-1"), amqp(timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc)),
        amqp(app_id="billing"), amqp(type="order"), amqp(content_type="text/plain"),
        # the parts are length-prefixed: moving a character between exchange and key is another message
        amqp(exchange="orderscreated", routing_key=""),
    ]
    ids = [content_id(v) for v in variants]  # type: ignore[arg-type]
    assert base not in ids and len(set(ids)) == len(ids)
