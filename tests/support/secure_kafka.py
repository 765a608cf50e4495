"""An embedded broker with TLS and SASL listeners, for the connection-settings tests.

One broker, three client listeners:
- PLAINTEXT (`kafka.bootstrap`): readiness checks and test set-up only;
- SASL_SSL with SCRAM-SHA-512 (`sasl_ssl`): user `alice`, created when storage is formatted;
- SSL with required client certificates (`mutual_tls`): mutual TLS, as Aiven uses;
- ELSEWHERE (`elsewhere`): plaintext, but advertised under a host name that does not resolve,
  as a broker in a container advertises its container name.
Certificates come from `tests.support.tls` (made at test time); the broker's names
`localhost` and `127.0.0.1`, and clients verify host names.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkafka.embedded_kafka import CLUSTER_ID, HOST, EmbeddedKafka, KafkaStartError, free_port
from convoy_stream.kafka_connection import KafkaConnection
from tests.support.tls import Pki, make_pki

USER, PASSWORD = "alice", "alice-secret"


@dataclass
class SecureKafka:
    kafka: EmbeddedKafka
    pki: Pki
    sasl_port: int
    tls_port: int
    elsewhere_port: int

    def sasl_ssl(self, password: str = PASSWORD, ca: Path | None = None) -> KafkaConnection:
        return KafkaConnection(bootstrap=f"{HOST}:{self.sasl_port}", security_protocol="SASL_SSL",
                               sasl_mechanism="SCRAM-SHA-512", sasl_username=USER, sasl_password=password,
                               ssl_ca_file=str(ca or self.pki.ca))

    def mutual_tls(self, ca: Path | None = None, client_cert: bool = True) -> KafkaConnection:
        return KafkaConnection(bootstrap=f"{HOST}:{self.tls_port}", security_protocol="SSL",
                               ssl_ca_file=str(ca or self.pki.ca),
                               ssl_cert_file=str(self.pki.client_cert) if client_cert else "",
                               ssl_key_file=str(self.pki.client_key) if client_cert else "")


#: Where the ELSEWHERE listener says it is: a name that never resolves (RFC 6761 `.invalid`).
ELSEWHERE_HOST = "kafka-1.convoy-stream.invalid"


def _properties(pki: Pki, port: int, controller: int, sasl: int, tls: int, elsewhere: int) -> dict[str, str]:
    return {
        "listeners": (f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller},"
                      f"SASL_SSL://{HOST}:{sasl},SSL://{HOST}:{tls},ELSEWHERE://{HOST}:{elsewhere}"),
        "advertised.listeners": (f"PLAINTEXT://{HOST}:{port},SASL_SSL://{HOST}:{sasl},SSL://{HOST}:{tls},"
                                 f"ELSEWHERE://{ELSEWHERE_HOST}:{elsewhere}"),
        "listener.security.protocol.map": ("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,"
                                           "ELSEWHERE:PLAINTEXT"),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca),
        "listener.name.ssl.ssl.client.auth": "required",
    }


def _format_with_scram_user(kafka: EmbeddedKafka) -> None:
    """Format KRaft storage with the SCRAM user (KIP-900: `kafka-storage format --add-scram`).

    Done here, before `start()` (which then finds the storage formatted), with the broker's
    own config and jars, so the user exists before the broker serves its first request.
    """
    kafka.ensure_jars()
    kafka._write_config()
    cmd = [*kafka._jvm_args("256m", short_lived=True), "kafka.tools.StorageTool", "format",
           "-t", CLUSTER_ID, "-c", str(kafka.properties_path),
           "--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=120)
    if result.returncode != 0:
        pytest.fail(f"formatting storage with a SCRAM user failed:\n{result.stdout.decode()[-3000:]}",
                    pytrace=False)


def secure_kafka(directory: Path) -> Iterator[SecureKafka]:
    """Start the broker (a generator for a fixture); stopped when the generator closes."""
    pki = make_pki(directory / "pki")
    port, controller, sasl, tls, elsewhere = (free_port() for _ in range(5))
    kafka = EmbeddedKafka(port, directory / "kafka", controller_port=controller,
                          extra_properties=_properties(pki, port, controller, sasl, tls, elsewhere))
    try:
        _format_with_scram_user(kafka)
        kafka.start(timeout=120)
    except KafkaStartError as exc:
        kafka.stop()
        pytest.fail(f"secure Kafka did not start: {exc}", pytrace=False)
    try:
        yield SecureKafka(kafka, pki, sasl, tls, elsewhere)
    finally:
        kafka.stop()
