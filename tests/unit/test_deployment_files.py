"""docker-compose.yml and the Dockerfile agree with the settings the app reads.

There is no Docker engine where the tests run, so this reads the files: every variable the
compose file gives a worker is one the app knows, the workers' cluster is the compose
brokers with the users they define, and the ports line up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from convoy_stream.kafka_connection import KafkaConnection
from convoy_stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class Recording(dict):  # type: ignore[type-arg]
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def services(compose: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((name, service) for name, service in compose["services"].items() if name.startswith(prefix))


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Settings, set[str]]:
    recording = Recording({**env, "CONVOY_STREAM_DATA_DIR": str(tmp_path)})
    monkeypatch.setattr(os, "environ", recording)
    return Settings.from_env(), recording.asked


def test_workers_use_only_variables_the_app_reads(compose, monkeypatch, tmp_path) -> None:
    workers = dict(services(compose, "worker-"))
    assert len(workers) == 2
    for name, worker in workers.items():
        env = {key: str(value) for key, value in worker["environment"].items()}
        settings, asked = settings_from(env, monkeypatch, tmp_path)
        unknown = {key for key in env if key.startswith(("KAFKA_", "CONVOY_STREAM_")) and key not in asked}
        assert not unknown, f"{name}: the app never reads {sorted(unknown)}"
        assert settings.kafka.uses_sasl and settings.replication_factor == 3 and settings.min_insync_replicas == 2
        assert settings.host == name and settings.bind == "0.0.0.0"
        # The published port reaches the port the worker listens on.
        assert [port.split(":")[1] for port in worker["ports"]] == [str(settings.port)]


def test_the_workers_cluster_is_the_compose_brokers_with_a_user_they_define(compose, monkeypatch, tmp_path) -> None:
    brokers = dict(services(compose, "kafka-"))
    assert len(brokers) == 3
    voters = {f"{b['environment']['KAFKA_NODE_ID']}@{name}:9093" for name, b in brokers.items()}
    for name, worker in services(compose, "worker-"):
        settings, _ = settings_from({k: str(v) for k, v in worker["environment"].items()}, monkeypatch, tmp_path)
        kafka: KafkaConnection = settings.kafka
        assert {f"{host}:{port}" for host, port in kafka.hosts} == {
            b["environment"]["KAFKA_ADVERTISED_LISTENERS"].split("://")[1] for b in brokers.values()}
        assert settings.replication_factor <= len(brokers)
        assert set(worker["depends_on"]) == set(brokers)
        for broker in brokers.values():
            env = broker["environment"]
            assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
            assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(kafka.security_protocol + "://")
            assert kafka.sasl_mechanism in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
            users = dict(re.findall(r'user_(\w+)="([^"]*)"', env["KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG"]))
            assert users.get(kafka.sasl_username) == kafka.sasl_password
            assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
            assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == settings.min_insync_replicas


def test_workers_reach_the_emulators_the_compose_file_runs(compose) -> None:
    pubsub = compose["services"]["pubsub"]
    for _, worker in services(compose, "worker-"):
        host, port = worker["environment"]["PUBSUB_EMULATOR_HOST"].split(":")
        assert host in compose["services"] and f"--host-port=0.0.0.0:{port}" in pubsub["command"]
    assert {"rabbitmq", "sqs", "pubsub"} <= set(compose["services"])


def test_dockerfile_installs_at_build_time_runs_as_non_root_and_checks_health() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert any(line.startswith("RUN") and "pip install" in line for line in lines)
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    healthcheck = text[text.index("HEALTHCHECK"):]
    assert "/health" in healthcheck.split("ENTRYPOINT")[0]
    assert 'ENTRYPOINT ["convoy-stream"]' in text
    port = re.search(r"CONVOY_STREAM_PORT=(\d+)", text)
    assert port and f"EXPOSE {port.group(1)}" in text
