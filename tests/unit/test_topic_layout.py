"""Replicated topic layout: defaults from the cluster's size, and what an existing topic may differ in."""

from __future__ import annotations

import pytest

from convoy_stream.kafka_connection import SettingError
from convoy_stream.topic_layout import Layout, TopicSpec, mismatch, resolve_layout


@pytest.mark.parametrize("brokers, layout", [(1, Layout(1, 1)), (2, Layout(2, 1)), (3, Layout(3, 2)), (6, Layout(3, 2))])
def test_defaults_follow_the_cluster(brokers: int, layout: Layout) -> None:
    assert resolve_layout(0, 0, brokers) == layout


def test_settings_override_defaults() -> None:
    assert resolve_layout(5, 3, 6) == Layout(5, 3)
    assert resolve_layout(3, 0, 3) == Layout(3, 2)


def test_a_broker_down_does_not_change_the_configured_layout() -> None:
    # a worker restarted while one of three brokers is down uses its topics as they are;
    # only creating a topic needs as many live brokers as replicas (ensure_layout refuses it,
    # tests/integration/test_topic_layout.py)
    assert resolve_layout(3, 2, 2) == Layout(3, 2)


@pytest.mark.parametrize("rf, isr, brokers, message", [
    (1, 2, 3, "CONVOY_STREAM_MIN_INSYNC_REPLICAS=2 is more than the replication factor 1"),
    (-1, 0, 3, "must be at least 1"),
])
def test_impossible_layouts_are_one_line(rf: int, isr: int, brokers: int, message: str) -> None:
    with pytest.raises(SettingError, match=message):
        resolve_layout(rf, isr, brokers)


def test_topics_are_created_with_explicit_replication_settings() -> None:
    layout = Layout(3, 2)
    assert TopicSpec("a-ingest", 8).configs(layout) == {"min.insync.replicas": "2", "cleanup.policy": "delete"}
    changelog = TopicSpec("a-events-changelog", 8, compacted=True, max_message_bytes=8 << 20).configs(layout)
    assert changelog == {"min.insync.replicas": "2", "cleanup.policy": "compact", "max.message.bytes": str(8 << 20)}


SPEC = TopicSpec("app-ingest", 8)
GOOD = dict(partitions=8, replicas=3, min_insync=2, cleanup_policy="delete")


def test_a_topic_as_configured_or_better_is_accepted() -> None:
    assert mismatch(SPEC, Layout(3, 2), **GOOD) is None
    assert mismatch(SPEC, Layout(2, 1), **GOOD) is None


@pytest.mark.parametrize("found, says", [
    (dict(partitions=4), "topic app-ingest has 4 partitions, configured 8: set CONVOY_STREAM_PARTITIONS=4"),
    (dict(replicas=1), "topic app-ingest has replication factor 1, configured 3"),
    (dict(min_insync=1), "topic app-ingest has min.insync.replicas=1, configured 2"),
])
def test_a_topic_with_less_is_refused_with_the_fix(found: dict, says: str) -> None:
    problem = mismatch(SPEC, Layout(3, 2), **{**GOOD, **found})
    assert problem is not None and problem.startswith(says) and "\n" not in problem


def test_a_changelog_that_retention_may_delete_is_refused() -> None:
    spec = TopicSpec("app-events-changelog", 8, compacted=True)
    problem = mismatch(spec, Layout(3, 2), **{**GOOD, "cleanup_policy": "compact,delete"})
    assert problem is not None and "cleanup.policy=compact,delete" in problem
    assert mismatch(spec, Layout(3, 2), **{**GOOD, "cleanup_policy": "compact"}) is None
