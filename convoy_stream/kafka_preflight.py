"""A first connection to the app's cluster, before anything else: one line when it fails.

aiokafka answers wrong credentials, an untrusted certificate and an unreachable broker alike
with "Unable to bootstrap" after logging each attempt, and Faust then retries forever. So the
worker first connects to each bootstrap server itself, concurrently, with the same settings as
every client, and `check_cluster` raises `ClusterUnusable` with the cause (authentication
failed for user X, certificate not trusted, no broker reachable at ...) within twice
`CONNECT_TIMEOUT` seconds. One bootstrap server that accepts the credentials is enough; every
broker the cluster then advertises must accept them too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka.errors import AuthenticationFailedError, KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from .kafka_connection import KafkaConnection

#: Seconds each bootstrap server gets to connect, handshake and authenticate.
CONNECT_TIMEOUT = 10.0


class ClusterUnusable(RuntimeError):
    """The app's cluster cannot be used with these settings; the message is one line."""


@contextmanager
def quiet_aiokafka(level: int = logging.CRITICAL) -> Iterator[None]:
    """aiokafka logs every failed attempt (errors and warnings); the caller reports one line."""
    logger = logging.getLogger("aiokafka")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


async def check_cluster(kafka: KafkaConnection, timeout: float = CONNECT_TIMEOUT) -> None:
    """Return once a bootstrap server accepts these settings and every broker it advertises does.

    Clients learn the brokers' addresses from the cluster (`advertised.listeners`), so a
    cluster reached through its bootstrap address may still be unusable from here (a container
    host name, a private address): that is named too.
    """
    with quiet_aiokafka():
        outcomes = await asyncio.gather(*(_try(kafka, host, port, timeout) for host, port in kafka.hosts))
        connected = [outcome for outcome in outcomes if not isinstance(outcome, tuple)]
        if connected:
            try:
                advertised = await _advertised(connected[0], timeout)
            finally:
                for conn in connected:
                    conn.close()
            checks = await asyncio.gather(*(_try(kafka, host, port, timeout) for host, port in advertised))
            for (host, port), outcome in zip(advertised, checks):
                if isinstance(outcome, tuple):
                    raise ClusterUnusable(
                        f"the cluster advertises broker {host}:{port}, which fails from here ({outcome[1]}): its "
                        "advertised.listeners must be an address clients can reach")
                outcome.close()
            return
    failures = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    # The most telling cause wins: credentials and certificates before plain unreachability.
    for kind in ("auth", "tls", "protocol"):
        for failure in failures:
            if failure[0] == kind:
                raise ClusterUnusable(failure[1])
    where = ", ".join(f"{host}:{port} ({outcome[1]})" for (host, port), outcome in zip(kafka.hosts, outcomes)
                      if isinstance(outcome, tuple))
    raise ClusterUnusable(f"no Kafka broker reachable at {where}: check KAFKA_BOOTSTRAP_SERVERS and the network")


async def _advertised(conn: Any, timeout: float) -> list[tuple[str, int]]:
    """The (host, port) of every live broker, as the cluster tells its clients."""
    from aiokafka.protocol.metadata import MetadataRequest

    response = await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
    return sorted({(str(broker[1]), int(broker[2])) for broker in response.brokers})


async def _try(kafka: KafkaConnection, host: str, port: int, timeout: float) -> Any:
    """The open connection when `host:port` connected and authenticated, else (kind, one-line cause)."""
    from aiokafka.conn import create_conn

    options = kafka.client_options()
    options.pop("bootstrap_servers")
    where = f"{host}:{port}"
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, client_id="convoy-stream-preflight", request_timeout_ms=int(timeout * 1000),
                        **options), timeout)
    except (SaslAuthenticationFailed, AuthenticationFailedError):
        return "auth", (f"authentication failed for user {kafka.sasl_username or '(AWS IAM)'} with "
                        f"{kafka.sasl_mechanism} at {where}: wrong user name or password (KAFKA_SASL_USERNAME, "
                        "KAFKA_SASL_PASSWORD), or the user does not exist for this mechanism")
    except UnsupportedSaslMechanismError as exc:
        return "auth", f"{where} refuses KAFKA_SASL_MECHANISM={kafka.sasl_mechanism}: {_first_line(exc)}"
    except ssl.SSLCertVerificationError as exc:
        return "tls", (f"TLS certificate of {where} not trusted: {exc.verify_message}; set KAFKA_SSL_CA_FILE to "
                       "the CA that signed it" if "hostname" not in (exc.verify_message or "").lower() else
                       f"TLS certificate of {where} does not name that host: {exc.verify_message}")
    except ssl.SSLError as exc:
        reason = exc.reason or _first_line(exc)
        if "CERTIFICATE_REQUIRED" in str(reason).upper():
            return "tls", (f"{where} requires a client certificate: set KAFKA_SSL_CERT_FILE and "
                           "KAFKA_SSL_KEY_FILE (mutual TLS)")
        if "WRONG_VERSION_NUMBER" in str(reason).upper():
            return "protocol", f"{where} does not speak TLS: is KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} right?"
        return "tls", f"TLS handshake with {where} failed: {reason}"
    except (ConnectionRefusedError, socket.gaierror, asyncio.TimeoutError) as exc:
        return "unreachable", _unreachable(exc, timeout)
    except (KafkaError, ConnectionResetError, BrokenPipeError, EOFError):
        if kafka.uses_tls:
            # TLS 1.3 reports a refused client certificate after the handshake, as a closed connection.
            return "tls", (f"{where} closed the TLS connection: does it require a client certificate "
                           "(KAFKA_SSL_CERT_FILE, KAFKA_SSL_KEY_FILE), or is it not a TLS listener?")
        return "protocol", (f"{where} closed the connection without a Kafka answer: is it a TLS or SASL listener "
                            f"(KAFKA_SECURITY_PROTOCOL={kafka.security_protocol})?")
    except OSError as exc:  # no route to host, network unreachable, ...
        return "unreachable", exc.strerror or type(exc).__name__
    return conn


def _unreachable(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:.0f}s"
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    return "connection refused"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
