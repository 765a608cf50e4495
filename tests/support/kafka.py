"""pytest helpers for a real Kafka: the session broker and private brokers for outage tests.

``tests/conftest.py`` does ``from tests.support.kafka import kafka_broker  # noqa``.

- ``kafka_broker`` (session): an embedded Apache Kafka (KRaft) on a free port, or, when
  ``KAFKA_BOOTSTRAP_SERVERS`` is set, that cluster (checked reachable). Tests use
  ``kafka_broker.bootstrap``. Only tests that own a broker may stop it, so tests that need
  an outage use ``kafka_factory`` instead of stopping the shared one.
- ``kafka_factory`` (function): starts private ``EmbeddedKafka`` brokers; all are stopped at
  teardown, whatever the test did.
- ``kafka_cluster`` (session): a 3-node KRaft cluster (``EmbeddedKafkaCluster``) whose client
  listeners require SCRAM (user ``CLUSTER_USER``); tests may kill and restart its nodes but
  must leave every node running when they end. Started on first use only.

A test that cannot reach Kafka fails (pytest.fail); it never skips.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkafka.embedded_cluster import EmbeddedKafkaCluster
from devkafka.embedded_kafka import EmbeddedKafka, KafkaStartError, free_port, kafka_ready

__all__ = ["CLUSTER_USER", "ExternalKafka", "free_port", "kafka_broker", "kafka_cluster",
           "kafka_factory", "start_embedded_kafka"]

#: The SCRAM user of the session's cluster (its password is random per session).
CLUSTER_USER = "convoy-test"


@dataclass(frozen=True)
class ExternalKafka:
    """A Kafka the test session did not start (``KAFKA_BOOTSTRAP_SERVERS``): it can only be
    used, not stopped or restarted."""

    bootstrap: str


def start_embedded_kafka(data_dir: Path, port: int | None = None, timeout: float = 120,
                         **kwargs: Any) -> EmbeddedKafka:
    """Start an EmbeddedKafka on ``port`` (a free one by default); turn a start failure into
    a test failure that carries the broker log tail."""
    kafka = EmbeddedKafka(port or free_port(), data_dir, **kwargs)
    try:
        kafka.start(timeout=timeout)
    except KafkaStartError as exc:
        kafka.stop()
        pytest.fail(f"embedded Kafka did not start: {exc}", pytrace=False)
    return kafka


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka | ExternalKafka]:
    """The session's Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        deadline = time.monotonic() + 30
        while not kafka_ready(external):
            if time.monotonic() > deadline:
                pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={external} is set but no Kafka broker "
                            "answers there", pytrace=False)
            time.sleep(0.5)
        yield ExternalKafka(external)
        return
    kafka = start_embedded_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def kafka_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., EmbeddedKafka]]:
    """``kafka_factory(**EmbeddedKafka kwargs) -> started EmbeddedKafka`` for tests that stop,
    kill or restart a broker. Each gets its own data dir and port unless given."""
    started: list[EmbeddedKafka] = []

    def make(data_dir: Path | None = None, port: int | None = None, **kwargs: Any) -> EmbeddedKafka:
        kafka = start_embedded_kafka(data_dir or tmp_path_factory.mktemp("kafka-private"),
                                     port, **kwargs)
        started.append(kafka)
        return kafka

    try:
        yield make
    finally:
        for kafka in started:
            kafka.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafkaCluster]:
    """Three Kafka nodes (broker + controller each, 256 MB heap), replication 3 and
    min.insync.replicas 2 by default, no topic auto-creation, SCRAM on the client listeners.
    Workers get ``cluster.client_env()``; tests read topics on ``cluster.internal_bootstrap``."""
    import secrets

    cluster = EmbeddedKafkaCluster(3, tmp_path_factory.mktemp("kafka-cluster"),
                                   scram_users={CLUSTER_USER: secrets.token_urlsafe(12)},
                                   fast_start=True)
    try:
        cluster.start(timeout=180)
    except KafkaStartError as exc:
        pytest.fail(f"embedded Kafka cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
