"""What the local Kafka (one node or a cluster) is configured with, before any JVM starts:
the version a user selects, where its jars go, and that a SCRAM cluster requires SASL from
clients while its brokers talk PLAINTEXT on loopback, with no password in any file."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkafka.cluster_cli import parse_users
from devkafka.embedded_cluster import EmbeddedKafkaCluster
from devkafka.embedded_kafka import (
    KAFKA_VERSION_ENV,
    EmbeddedKafka,
    KafkaStartError,
    default_cache_dir,
    kafka_version,
)


def test_the_default_is_kafka_4_and_the_environment_selects_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KAFKA_VERSION_ENV, raising=False)
    assert kafka_version().startswith("4.")
    monkeypatch.setenv(KAFKA_VERSION_ENV, "3.9.2")
    assert kafka_version() == "3.9.2"
    assert EmbeddedKafka(9092, Path("/tmp/x")).version == "3.9.2"
    assert default_cache_dir("3.9.2") != default_cache_dir("4.1.1")


@pytest.mark.parametrize("wanted", ["3.8.1", "5.0.0", "latest", "4.1"])
def test_a_version_that_cannot_run_here_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, wanted: str) -> None:
    monkeypatch.setenv(KAFKA_VERSION_ENV, wanted)
    with pytest.raises(KafkaStartError, match=KAFKA_VERSION_ENV):
        kafka_version()


def _properties(node: EmbeddedKafka) -> dict[str, str]:
    node.controller_port = node._controller_port_cfg
    return node._properties()


def test_a_scram_cluster_needs_sasl_from_clients_and_keeps_passwords_out_of_its_config(tmp_path: Path) -> None:
    cluster = EmbeddedKafkaCluster(3, tmp_path, scram_users={"admin": "pa55-word"})
    props = [_properties(n) for n in cluster.nodes.values()]
    voters = {p["controller.quorum.voters"] for p in props}
    assert len(voters) == 1 and voters.pop().count("@") == 3
    for p in props:
        assert p["listener.security.protocol.map"] == "CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
        assert p["inter.broker.listener.name"] == "INTERNAL"
        assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
        assert p["default.replication.factor"] == "3" and p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["auto.create.topics.enable"] == "false"
        assert "pa55-word" not in "".join(p.values())
    assert len(cluster.bootstrap.split(",")) == 3
    env = cluster.client_env()
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert (env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_PASSWORD"]) == ("admin", "pa55-word")


def test_a_plaintext_cluster_and_a_single_node_need_no_credentials(tmp_path: Path) -> None:
    cluster = EmbeddedKafkaCluster(3, tmp_path)
    assert cluster.client_env() == {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
                                    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    single = _properties(EmbeddedKafka(9092, tmp_path / "one", controller_port=9093))
    assert single["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert single["default.replication.factor"] == "1"


@pytest.mark.parametrize("name,password", [("a,b", "x"), ("admin", "p]w"), ("admin", "")])
def test_scram_users_the_storage_tool_would_misread_are_refused(tmp_path: Path, name: str, password: str) -> None:
    with pytest.raises(KafkaStartError, match="SCRAM user"):
        EmbeddedKafkaCluster(3, tmp_path, scram_users={name: password})


def test_scram_user_arguments() -> None:
    assert parse_users(["admin:se:cret", "app:x"]) == {"admin": "se:cret", "app": "x"}
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        parse_users(["admin"])


def test_a_data_dir_formatted_with_other_scram_users_is_refused_not_silently_reused(tmp_path: Path) -> None:
    node = EmbeddedKafka(9092, tmp_path, internal_port=9093, scram_users={"admin": "x"})
    node.log_dirs.mkdir(parents=True)
    (node.log_dirs / "meta.properties").write_text("cluster.id=c\n")   # formatted earlier ...
    (tmp_path / "scram-users").write_text("alice\n")                   # ... for alice
    with pytest.raises(KafkaStartError, match=r"formatted with SCRAM users \['alice'\], asked for \['admin'\]"):
        node._format_storage()
    (tmp_path / "scram-users").write_text("admin\n")
    node._format_storage()                                             # same users: reused as is
