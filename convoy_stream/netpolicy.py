"""Which hosts the instance may be told to connect to on a tenant's behalf.

Endpoint and dynamic-event URLs (a dispatcher sends to them) and broker-source hosts
(Kafka brokers, the SQS endpoint, the AMQP host: bridges connect to them) must not point
inside the instance's network: private, loopback, link-local, shared, reserved and
multicast addresses and the cloud metadata names are refused, unless the instance sets
`CONVOY_STREAM_ALLOW_PRIVATE_NETWORKS=true` (`make run` and the tests do: everything runs
on one machine).

Checked at validation: literal addresses in every spelling a resolver accepts (decimal
`2130706433`, hex `0x7f000001`, short `127.1`, octal, IPv4-mapped IPv6) and well-known
names. DNS names are not resolved here: an answer at validation proves nothing at send
time (DNS rebinding), so whatever connects must check the address it connects to.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from typing import Any, Iterator, Mapping

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names that reach the instance itself or a cloud's metadata service.
BLOCKED_NAMES = frozenset({
    "localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal",
})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")

REFUSED = "points to a private, loopback, link-local or metadata address"


def literal_ip(host: str) -> IPAddress | None:
    """The address `host` spells, in any form `inet_aton` or `ipaddress` accepts."""
    text = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text) and any(c.isdigit() for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded(ip: IPAddress) -> Iterator[IPAddress]:
    yield ip
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None:
                yield inner
        if ip in _NAT64:
            yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def is_internal(ip: IPAddress) -> bool:
    """Not a public unicast address (or hides one that is not)."""
    return any(not a.is_global or a.is_multicast or a.is_unspecified for a in _embedded(ip))


def host_problem(host: str, *, allow_private: bool) -> str | None:
    """Why the instance must not connect to `host`, or None."""
    if allow_private:
        return None
    name = host.strip().lower().rstrip(".")
    if name in BLOCKED_NAMES or name.endswith(".localhost"):
        return REFUSED
    ip = literal_ip(name)
    if ip is not None and is_internal(ip):
        return REFUSED
    return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return None  # the URL's own validation reports it
    return host_problem(host, allow_private=allow_private)


def _broker_host(address: str) -> str:
    """`host` of `host:port`, `[v6]:port` or a bare host."""
    address = address.strip()
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def pub_sub_hosts(pub_sub: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(field, host) pairs a broker source would connect to."""
    if not pub_sub:
        return []
    kind = pub_sub.get("type")
    config = pub_sub.get(kind) or {}
    if kind == "kafka":
        return [("pub_sub.kafka.brokers", _broker_host(b)) for b in config.get("brokers") or []]
    if kind == "amqp":
        return [("pub_sub.amqp.host", str(config.get("host") or ""))]
    if kind == "sqs" and config.get("endpoint"):
        try:
            return [("pub_sub.sqs.endpoint", urllib.parse.urlsplit(config["endpoint"]).hostname or "")]
        except ValueError:
            return []
    return []  # Google Pub/Sub: Google's endpoint (or the instance's emulator), no tenant host


def pub_sub_problem(pub_sub: Mapping[str, Any] | None, *, allow_private: bool) -> str | None:
    """`<field>:<reason>` for the first refused broker host, or None."""
    for field, host in pub_sub_hosts(pub_sub):
        if host_problem(host, allow_private=allow_private):
            return f"{field}:{host} {REFUSED}"
    return None
