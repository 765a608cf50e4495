"""Every topic the app uses, created replicated and checked before any consumer starts.

Guarantees:
- Each topic is created explicitly with the configured partitions, replication factor and
  `min.insync.replicas` (never broker defaults, which are often 1, and never auto-creation,
  which hosted clusters turn off). Compacted topics (config, table changelogs) get
  `cleanup.policy=compact` only: retention never deletes their segments, which Faust's table
  recovery needs.
- Kafka never changes a topic that exists: at start, a topic with fewer replicas, a lower
  `min.insync.replicas`, other partitions, or a changelog that retention may delete stops the
  process with one line (`TopicMismatch`) naming the topic, what it has, what is configured and
  how to fix or accept it.
- Defaults: replication factor = the smaller of 3 and the brokers the cluster reports;
  `min.insync.replicas` = replication factor - 1, at least 1 (one broker may be lost without
  refusing writes; with 3 replicas an acknowledged write is on 2 disks).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from .kafka_connection import KafkaConnection, SettingError, client_options


class TopicMismatch(RuntimeError):
    """An existing topic differs from the configured layout; the message is one line."""


@dataclass(frozen=True)
class Layout:
    replication_factor: int = 1
    min_insync_replicas: int = 1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    max_message_bytes: int | None = None
    #: Time retention of a topic whose records are kept elsewhere once read (`retention.ms`),
    #: with segments small enough for it to apply (`segment.bytes`).
    retention_ms: int | None = None
    segment_bytes: int | None = None

    def configs(self, layout: Layout) -> dict[str, str]:
        configs = {"min.insync.replicas": str(layout.min_insync_replicas)}
        configs["cleanup.policy"] = "compact" if self.compacted else "delete"
        if self.max_message_bytes:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        if self.retention_ms:
            configs["retention.ms"] = str(self.retention_ms)
        if self.segment_bytes:
            configs["segment.bytes"] = str(self.segment_bytes)
        return configs


def resolve_layout(replication_factor: int, min_insync_replicas: int, brokers: int) -> Layout:
    """The layout to apply, from the settings (0 = default) and the cluster's broker count."""
    if replication_factor < 0:
        raise SettingError(f"CONVOY_STREAM_REPLICATION_FACTOR={replication_factor} must be at least 1")
    if min_insync_replicas < 0:
        raise SettingError(f"CONVOY_STREAM_MIN_INSYNC_REPLICAS={min_insync_replicas} must be at least 1")
    rf = replication_factor or max(1, min(3, brokers))
    # More replicas than live brokers is refused only when a topic must be created
    # (ensure_layout): a worker restarted while one broker is down uses its topics as they are.
    isr = min_insync_replicas or max(1, rf - 1)
    if isr > rf:
        raise SettingError(f"CONVOY_STREAM_MIN_INSYNC_REPLICAS={isr} is more than the replication factor {rf}: "
                           "no write could ever be acknowledged")
    return Layout(rf, isr)


def mismatch(spec: TopicSpec, layout: Layout, *, partitions: int, replicas: int, min_insync: int | None,
             cleanup_policy: str | None) -> str | None:
    """Why an existing topic cannot be used as configured (one line), or None."""
    name = spec.name
    if partitions != spec.partitions:
        if spec.partitions == 1:  # the config topic: one partition is its total order
            return (f"topic {name} has {partitions} partitions, it must have 1 (a total order of config "
                    f"changes): delete it (config is lost) or restore it with 1 partition")
        return (f"topic {name} has {partitions} partitions, configured {spec.partitions}: set "
                f"CONVOY_STREAM_PARTITIONS={partitions} to use it as it is, or delete the app's topics to start "
                "empty (event ids name a partition, so a topic's partitions never change)")
    if replicas < layout.replication_factor:
        return (f"topic {name} has replication factor {replicas}, configured {layout.replication_factor}: add "
                f"replicas with kafka-reassign-partitions, or set CONVOY_STREAM_REPLICATION_FACTOR={replicas} to "
                "accept it")
    if min_insync is not None and min_insync < layout.min_insync_replicas:
        return (f"topic {name} has min.insync.replicas={min_insync}, configured {layout.min_insync_replicas}: run "
                f"kafka-configs --alter --entity-type topics --entity-name {name} --add-config "
                f"min.insync.replicas={layout.min_insync_replicas}, or set CONVOY_STREAM_MIN_INSYNC_REPLICAS="
                f"{min_insync} to accept it")
    if spec.compacted and cleanup_policy is not None and "delete" in cleanup_policy.split(","):
        return (f"topic {name} has cleanup.policy={cleanup_policy}, configured compact: retention would delete "
                f"table state; run kafka-configs --alter --entity-type topics --entity-name {name} --add-config "
                "cleanup.policy=compact")
    return None


async def broker_count(kafka: str | KafkaConnection) -> int:
    """How many brokers the cluster reports."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        return len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


async def ensure_layout(kafka: str | KafkaConnection, specs: list[TopicSpec], layout: Layout,
                        timeout: float = 30, *, brokers: int | None = None) -> None:
    """Check the topics that exist, create the missing ones, wait until all have leaders.

    Raises `TopicMismatch` for the first existing topic that differs from the layout, and
    `SettingError` when a topic is missing and the cluster reports fewer live ``brokers``
    than the replication factor (it could not be created).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        existing = await _describe(admin, [spec.name for spec in specs])
        for spec in specs:
            if spec.name in existing:
                problem = mismatch(spec, layout, **existing[spec.name])
                if problem:
                    raise TopicMismatch(problem)
        missing = [spec for spec in specs if spec.name not in existing]
        if missing and brokers is not None and layout.replication_factor > brokers:
            raise SettingError(f"CONVOY_STREAM_REPLICATION_FACTOR={layout.replication_factor} but the cluster "
                               f"reports {brokers} broker(s): add brokers or lower it")
        for spec in missing:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, layout.replication_factor,
                                                    topic_configs=spec.configs(layout))])
            except TopicAlreadyExistsError:  # another worker created it a moment ago
                pass
        if missing:
            await _wait_for_leaders(admin, {spec.name: spec.partitions for spec in missing}, timeout)
    finally:
        await admin.close()


async def _describe(admin: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Partitions, replicas, min.insync.replicas and cleanup.policy of the topics that exist."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topics = {t["topic"]: t for t in await admin.describe_topics() if t["topic"] in names and t["partitions"]}
    if not topics:
        return {}
    found: dict[str, dict[str, Any]] = {
        name: {"partitions": len(t["partitions"]),
               "replicas": min(len(p["replicas"]) for p in t["partitions"]),
               "min_insync": None, "cleanup_policy": None}
        for name, t in topics.items()}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={"min.insync.replicas": None,
                                                                          "cleanup.policy": None})
                 for name in topics]
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            entry = found.get(resource["resource_name"])
            if entry is None:
                continue
            for config in resource["config_entries"]:
                if config["config_names"] == "min.insync.replicas":
                    entry["min_insync"] = int(config["config_value"])
                elif config["config_names"] == "cleanup.policy":
                    entry["cleanup_policy"] = config["config_value"]
    return found


async def _wait_for_leaders(admin: Any, wanted: dict[str, int], timeout: float) -> None:
    """Until every partition of the new topics has a leader in the cluster's metadata.

    Clients that use a topic the moment it was created otherwise log "not found in cluster
    metadata" warnings and retry.
    """
    deadline = time.monotonic() + timeout
    while True:
        topics = {t["topic"]: t for t in await admin.describe_topics(list(wanted))}
        if all(len([p for p in topics.get(name, {}).get("partitions", []) if p["leader"] >= 0]) == count
               for name, count in wanted.items()):
            return
        if time.monotonic() > deadline:
            raise TopicMismatch(f"topics {', '.join(sorted(wanted))} created but without partition leaders after "
                                f"{timeout:.0f}s: are the brokers healthy?")
        await asyncio.sleep(0.1)
