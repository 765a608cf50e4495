"""How every Kafka client of this process connects to the app's own cluster.

One `KafkaConnection`, read from the standard Kafka settings (`KAFKA_BOOTSTRAP_SERVERS`,
`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_*`), becomes both aiokafka keyword
arguments (`client_options`) and Faust's `broker_credentials` (`faust_credentials`), so the
publisher, the config view, topic creation, the bridges' own-cluster consumers and Faust's
consumer, producer and admin all connect the same way. Guarantees:

- A wrong or inconsistent setting raises `KafkaSettingError` with one line naming the setting
  (SASL without a mechanism, a CA file that does not exist, a certificate without its key).
- TLS verifies the broker's certificate and host name (against `KAFKA_SSL_CA_FILE`, else the
  system CAs); `build_ssl_context` is the one place this process builds a TLS context for Kafka.
- Secrets (the SASL password, the key password) never appear in a repr or a log line.
- Faust's traps are avoided: `SASLCredentials` without an `ssl_context` silently speaks
  plaintext, and `SSLCredentials()` without a context raises; both always get the context.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

#: The optional package that signs AWS MSK IAM tokens (`pip install 'convoy-stream[msk]'`).
MSK_SIGNER = "aws_msk_iam_sasl_signer"


#: Each field of `KafkaConnection` and the environment variable it is read from.
ENV = {
    "bootstrap": "KAFKA_BOOTSTRAP_SERVERS",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_ca_file": "KAFKA_SSL_CA_FILE",
    "ssl_cert_file": "KAFKA_SSL_CERT_FILE",
    "ssl_key_file": "KAFKA_SSL_KEY_FILE",
    "ssl_key_password": "KAFKA_SSL_KEY_PASSWORD",
    "aws_region": "AWS_REGION",
}


class SettingError(ValueError):
    """A setting is wrong; the message is one line that names it (the process stops with it)."""


class KafkaSettingError(SettingError):
    """A Kafka connection setting is wrong; the message is one line that names it."""


def build_ssl_context(ca_file: str | None = None, cert_file: str | None = None,
                      key_file: str | None = None, key_password: str | None = None) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name.

    Trusts `ca_file` when given, else the system CAs; presents `cert_file`/`key_file` for
    mutual TLS. Used for the app's own cluster and for Kafka sources alike.
    """
    from aiokafka.helpers import create_ssl_context

    # A password callable even for an unencrypted key: OpenSSL would otherwise prompt on the
    # terminal for an encrypted one; now a wrong or missing password is an error.
    context = create_ssl_context(cafile=ca_file or None, certfile=cert_file or None,
                                 keyfile=key_file or None, password=lambda: key_password or "")
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each `host:port` entry; raises `KafkaSettingError` on a malformed one."""
    hosts: list[tuple[str, int]] = []
    for entry in bootstrap.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaSettingError(f"KAFKA_BOOTSTRAP_SERVERS: {entry!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise KafkaSettingError("KAFKA_BOOTSTRAP_SERVERS is empty")
    return hosts


@dataclass(frozen=True)
class KafkaConnection:
    """Where the app's cluster is and how to authenticate to it (validated on creation)."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_key_password: str = field(default="", repr=False)
    #: AWS region of an MSK cluster (OAUTHBEARER signs IAM tokens for it).
    aws_region: str = ""
    _ssl: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "security_protocol", (self.security_protocol or "PLAINTEXT").strip().upper())
        object.__setattr__(self, "sasl_mechanism", (self.sasl_mechanism or "").strip().upper())
        self._validate()
        if self.uses_tls:
            object.__setattr__(self, "_ssl", self._load_ssl())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "KafkaConnection":
        env = os.environ if env is None else env
        values: dict[str, Any] = {name: env.get(var, "") for name, var in ENV.items()}
        values["bootstrap"] = values["bootstrap"] or "127.0.0.1:9092"
        values["aws_region"] = values["aws_region"] or env.get("AWS_DEFAULT_REGION", "")
        values.update(overrides)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that gives a child process this connection (secrets included)."""
        return {var: str(getattr(self, name)) for name, var in ENV.items() if getattr(self, name)}

    # -- what it means ---------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return parse_bootstrap(self.bootstrap)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl

    def describe(self) -> str:
        """One line for the start banner, without secrets."""
        text = self.security_protocol
        if self.uses_sasl:
            who = f"user {self.sasl_username}" if self.sasl_mechanism != "OAUTHBEARER" else f"AWS IAM, {self.aws_region}"
            text += f" {self.sasl_mechanism} ({who})"
        if self.ssl_cert_file:
            text += " with a client certificate"
        return text

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name in ('sasl_password', 'ssl_key_password') and getattr(self, f.name) else getattr(self, f.name)!r}"
            for f in fields(self) if not f.name.startswith("_"))
        return f"KafkaConnection({shown})"

    # -- what clients get ------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin, connection)."""
        options: dict[str, Any] = {
            "bootstrap_servers": ",".join(f"{host}:{port}" for host, port in self.hosts),
            "security_protocol": self.security_protocol,
        }
        if self._ssl is not None:
            options["ssl_context"] = self._ssl
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = msk_token_provider(self.aws_region)
            else:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = self.sasl_password
        return options

    def faust_broker(self) -> list[str]:
        """Faust's `broker` setting: one URL per bootstrap server."""
        return [f"kafka://{host}:{port}" for host, port in self.hosts]

    def faust_credentials(self) -> Any:
        """Faust's `broker_credentials`: None for PLAINTEXT, else credentials carrying TLS."""
        from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials

        if self.security_protocol == "PLAINTEXT":
            return None
        if self.security_protocol == "SSL":
            return SSLCredentials(self._ssl)
        if self.sasl_mechanism == "OAUTHBEARER":
            return OAuthCredentials(oauth_cb=msk_token_provider(self.aws_region), ssl_context=self._ssl)
        # ssl_context=None makes SASLCredentials SASL_PLAINTEXT; a context makes it SASL_SSL.
        return SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                               ssl_context=self._ssl, mechanism=self.sasl_mechanism)

    # -- validation ------------------------------------------------------------------

    def _validate(self) -> None:
        parse_bootstrap(self.bootstrap)
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        if protocol not in PROTOCOLS:
            raise KafkaSettingError(f"KAFKA_SECURITY_PROTOCOL={protocol} is not one of {', '.join(PROTOCOLS)}")
        if self.uses_sasl:
            if not mechanism:
                raise KafkaSettingError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM "
                                        f"({', '.join(MECHANISMS)})")
            if mechanism not in MECHANISMS:
                raise KafkaSettingError(f"KAFKA_SASL_MECHANISM={mechanism} is not one of {', '.join(MECHANISMS)}")
            if mechanism == "OAUTHBEARER":
                if importlib.util.find_spec(MSK_SIGNER) is None:
                    raise KafkaSettingError("KAFKA_SASL_MECHANISM=OAUTHBEARER (AWS MSK IAM) needs AWS's token "
                                            "signer: pip install 'convoy-stream[msk]'")
                if not self.aws_region:
                    raise KafkaSettingError("KAFKA_SASL_MECHANISM=OAUTHBEARER (AWS MSK IAM) needs AWS_REGION")
            elif not self.sasl_username or not self.sasl_password:
                raise KafkaSettingError(f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and "
                                        "KAFKA_SASL_PASSWORD")
        else:
            for name, value in (("KAFKA_SASL_MECHANISM", mechanism), ("KAFKA_SASL_USERNAME", self.sasl_username),
                                ("KAFKA_SASL_PASSWORD", self.sasl_password)):
                if value:
                    raise KafkaSettingError(f"{name} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                                            "SASL (use SASL_SSL)")
        files = (("KAFKA_SSL_CA_FILE", self.ssl_ca_file), ("KAFKA_SSL_CERT_FILE", self.ssl_cert_file),
                 ("KAFKA_SSL_KEY_FILE", self.ssl_key_file))
        for name, path in files:
            if not path:
                continue
            if not self.uses_tls:
                raise KafkaSettingError(f"{name} is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS "
                                        "(use SSL or SASL_SSL)")
            if not os.path.isfile(path):
                raise KafkaSettingError(f"{name}={path}: no such file")
            if not os.access(path, os.R_OK):
                raise KafkaSettingError(f"{name}={path}: not readable by this user")
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise KafkaSettingError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS)")

    def _load_ssl(self) -> ssl.SSLContext:
        try:
            return build_ssl_context(self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file, self.ssl_key_password)
        except ssl.SSLError as exc:
            what = (f"KAFKA_SSL_CERT_FILE={self.ssl_cert_file} / KAFKA_SSL_KEY_FILE={self.ssl_key_file}"
                    if self.ssl_cert_file else f"KAFKA_SSL_CA_FILE={self.ssl_ca_file}")
            raise KafkaSettingError(f"{what}: not usable as PEM ({exc.reason or exc})") from None
        except OSError as exc:
            raise KafkaSettingError(f"TLS files: {exc.strerror or exc}") from None


def connection(kafka: "str | KafkaConnection") -> KafkaConnection:
    """A `KafkaConnection` for a bootstrap string (plaintext) or the connection itself."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(bootstrap=kafka)


def client_options(kafka: "str | KafkaConnection") -> dict[str, Any]:
    """aiokafka keyword arguments for a bootstrap string (plaintext) or a `KafkaConnection`."""
    return connection(kafka).client_options()


def msk_token_provider(region: str) -> Any:
    """An aiokafka token provider that signs AWS MSK IAM tokens with AWS's own library.

    Credentials come from the standard AWS chain (environment, profile, instance role); the
    signing runs in a thread, as the chain may query the instance metadata service.
    """
    from aiokafka.abc import AbstractTokenProvider
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    class MSKTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
        async def token(self) -> str:
            token, _expiry_ms = await asyncio.to_thread(MSKAuthTokenProvider.generate_auth_token, region)
            return str(token)

    return MSKTokenProvider()
