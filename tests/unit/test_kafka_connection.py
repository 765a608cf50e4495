"""Kafka connection settings: what each client gets, what is refused, what is never shown."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from convoy_stream.kafka_connection import KafkaConnection, KafkaSettingError
from convoy_stream.settings import Settings
from tests.support.tls import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl(pki, **extra: str) -> KafkaConnection:
    return KafkaConnection.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9096,b2:9096", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": "s3cret-pw", "KAFKA_SSL_CA_FILE": str(pki.ca), **extra})


def test_plaintext_by_default() -> None:
    kafka = KafkaConnection.from_env({})
    assert kafka.client_options() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert kafka.faust_credentials() is None


def test_sasl_ssl_gives_faust_the_tls_context_so_it_never_falls_back_to_plaintext(pki) -> None:
    kafka = sasl_ssl(pki)
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, SASLCredentials)
    # What Faust's consumer, producer and admin will pass to aiokafka.
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["ssl_context"] is kafka.ssl_context and auth["sasl_plain_username"] == "alice"
    options = kafka.client_options()
    assert options["bootstrap_servers"] == "b1:9096,b2:9096" and options["security_protocol"] == "SASL_SSL"
    assert options["ssl_context"].check_hostname and options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kafka.faust_broker() == ["kafka://b1:9096", "kafka://b2:9096"]


def test_ssl_with_client_certificate_builds_faust_ssl_credentials(pki) -> None:
    kafka = KafkaConnection(bootstrap="b:9093", security_protocol="ssl", ssl_ca_file=str(pki.ca),
                            ssl_cert_file=str(pki.client_cert), ssl_key_file=str(pki.client_key))
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, SSLCredentials) and credentials.context is kafka.ssl_context
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"
    assert "client certificate" in kafka.describe()


def test_sasl_plaintext_has_no_tls() -> None:
    kafka = KafkaConnection(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                            sasl_password="p")
    assert credentials_to_aiokafka_auth(kafka.faust_credentials())["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in kafka.client_options()


def test_secrets_are_never_in_repr_or_description(pki) -> None:
    kafka = sasl_ssl(pki)
    settings = Settings(kafka=kafka, admin_token="x")
    for text in (repr(kafka), str(kafka), repr(settings), kafka.describe(), repr(kafka.faust_credentials())):
        assert "s3cret-pw" not in text
    assert "sasl_password='***'" in repr(kafka)


def test_settings_keep_the_connection_on_their_bootstrap(pki) -> None:
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092", kafka=sasl_ssl(pki), admin_token="x")
    assert settings.kafka.bootstrap == "k1:9092,k2:9092" and settings.kafka.security_protocol == "SASL_SSL"


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM=GSSAPI is not"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"},
     "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"KAFKA_SSL_CA_FILE": "/etc/hostname"}, "KAFKA_SSL_CA_FILE is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/no/such/ca.pem"}, "KAFKA_SSL_CA_FILE=/no/such/ca.pem: no such file"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/etc/hostname"}, "go together"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/etc/hostname"}, "not usable as PEM"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "kafka"}, "'kafka' is not host:port"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "needs AWS_REGION"),
])
def test_a_wrong_setting_is_one_line_that_names_it(env, message) -> None:
    with pytest.raises(KafkaSettingError) as error:
        KafkaConnection.from_env(env)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_client_key_that_does_not_match_its_certificate_is_refused(pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path)
    with pytest.raises(KafkaSettingError, match="not usable as PEM"):
        KafkaConnection(security_protocol="SSL", ssl_cert_file=str(pki.client_cert), ssl_key_file=str(other.client_key))


def test_msk_iam_signs_tokens_with_aws_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """OAUTHBEARER is AWS MSK IAM: AWS's signer presigns a kafka-cluster:Connect request."""
    import asyncio

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    kafka = KafkaConnection(bootstrap="b-1.msk.example:9098", security_protocol="SASL_SSL",
                            sasl_mechanism="OAUTHBEARER", aws_region="eu-west-1")
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, OAuthCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SASL_SSL"
    token = asyncio.run(kafka.client_options()["sasl_oauth_token_provider"].token())
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert parse_qs(url.query)["Action"] == ["kafka-cluster:Connect"]
