"""Every topic is created with explicit replication settings; an existing topic that differs stops the worker."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.test_kafka_security import assert_one_line, start_failure

pytestmark = pytest.mark.integration

#: Kafka's DescribeConfigs source of a value set on the topic itself (not a broker default).
TOPIC_CONFIG = 1


async def topic_configs(bootstrap: str, prefix: str) -> dict[str, dict[str, tuple[str, int]]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t["topic"] for t in await admin.describe_topics() if t["topic"].startswith(prefix)]
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        return {r["resource_name"]: {c["config_names"]: (c["config_value"], c["config_source"]) for c in r["config_entries"]}
                for response in responses for r in response.to_object()["resources"]}
    finally:
        await admin.close()


def test_every_topic_of_a_worker_has_its_replication_settings_set_on_the_topic(worker, kafka_broker, app_id) -> None:
    configs = asyncio.run(topic_configs(kafka_broker.bootstrap, f"{app_id}-"))
    expected = {f"{app_id}-{name}" for name in (
        "ingest", "dead-letters", "deliveries", "config", "events-changelog", "idempotency-changelog",
        "broker-ids-changelog", "dead-letters-changelog", "requests", "requests-changelog", "__assignor-__leader")}
    assert expected <= set(configs), sorted(configs)
    for name in expected:
        assert configs[name]["min.insync.replicas"] == ("1", TOPIC_CONFIG), name
    for name in expected:
        compacted = name.endswith("-changelog") or name.endswith("-config")
        assert configs[name]["cleanup.policy"] == ("compact" if compacted else "delete", TOPIC_CONFIG), name
    # The request log's topic is read into its table within seconds: Kafka keeps it an hour only.
    assert configs[f"{app_id}-requests"]["retention.ms"] == ("3600000", TOPIC_CONFIG)


def test_a_topic_with_other_partitions_stops_the_worker_with_one_line(kafka_broker, tmp_path) -> None:
    app_id = "cs-layout-" + secrets.token_hex(3)

    async def precreate() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{app_id}-dead-letters", 4, 1)])
        finally:
            await admin.close()

    asyncio.run(precreate())
    assert_one_line(*start_failure({"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "CONVOY_STREAM_APP_ID": app_id},
                                   tmp_path),
                    f"topic {app_id}-dead-letters has 4 partitions, configured 8: set CONVOY_STREAM_PARTITIONS=4")


def test_more_replicas_than_brokers_stops_the_worker_with_one_line(kafka_broker, tmp_path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "CONVOY_STREAM_REPLICATION_FACTOR": "3"}
    assert_one_line(*start_failure(env, tmp_path), "CONVOY_STREAM_REPLICATION_FACTOR=3 but the cluster reports 1 broker")
