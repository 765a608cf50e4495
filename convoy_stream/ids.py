"""Identifiers: ULIDs that carry their partition, API keys, mask ids.

Why partition-carrying ids: every record for one dedup key (project +
idempotency key) must reach the same partition so one agent deduplicates it,
and a lookup by event id must find the worker that owns that partition. So an
event id names its partition: the first two characters of the ULID's random
part encode it (Crockford base32, up to 1,024 partitions). The event, its
dedup entry, its deliveries (whose uids extend the event's) all live in that
partition. Reading the partition back costs a string slice, where hashing
candidate ids until one landed on the partition was costly
(docs/mechanisms.md#hot-path).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets
import string
from collections.abc import Iterable
from datetime import datetime

from murmurhash2 import murmurhash2
from ulid import ULID
from ulid.base32 import ENCODE as _CROCKFORD

from . import clock

_ALNUM = string.ascii_letters + string.digits
_DECODE = {char: value for value, char in enumerate(_CROCKFORD)}
#: Partitions an id can name: two base32 characters.
MAX_PARTITIONS = 32 * 32
_TIME_CHARS = 10
_round_robin = itertools.count()


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a JSON-serialized key."""
    return kafka_partition(json.dumps(key).encode(), partitions)


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 with Kafka's seed), in C rather than aiokafka's
    pure-Python murmur2, which cost a bridge message much CPU (docs/mechanisms.md#hot-path)."""
    return (murmurhash2(key, _KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % partitions


_KAFKA_MURMUR2_SEED = 0x9747B28C


def partition_of(key: str, partitions: int) -> int:
    """The partition of a table key `<scope>/<uid>` (or a bare uid).

    Ids minted here name their partition; anything else (an id typed by a
    user, a key of another shape) falls back to Kafka's hash, so a lookup of
    a foreign id still answers, with "not found".
    """
    uid = key.rpartition("/")[2]
    marker = uid[_TIME_CHARS:_TIME_CHARS + 2]
    if len(marker) == 2 and marker[0] in _DECODE and marker[1] in _DECODE:
        partition = _DECODE[marker[0]] * 32 + _DECODE[marker[1]]
        if partition < partitions:
            return partition
    return partition_for(key, partitions)


def new_ulid() -> str:
    return str(ULID())


def mint_id(partition: int | None, partitions: int, *, timestamp: float | None = None) -> str:
    """A ULID naming `partition` (None: the next partition round-robin).

    The time prefix stays intact, so ids still sort by creation time and the
    retention sweep's time cut-off still applies.
    """
    if not 0 < partitions <= MAX_PARTITIONS:
        raise ValueError(f"ids can name at most {MAX_PARTITIONS} partitions, not {partitions}")
    if partition is None:
        partition = next(_round_robin) % partitions
    ts = int((timestamp if timestamp is not None else clock.seconds()) * 1000) & _TIME_MASK
    # 70 random bits (the 80 of a ULID less the 10 that name the partition) from the OS's
    # CSPRNG, and the time's 48, written two characters at a time (the standard library's
    # base32 is Python).
    bits = int.from_bytes(_random_bytes(9), "big") >> 2
    pairs = _PAIRS
    return (pairs[ts >> 40] + pairs[(ts >> 30) & 1023] + pairs[(ts >> 20) & 1023] + pairs[(ts >> 10) & 1023]
            + pairs[ts & 1023] + pairs[partition] + pairs[(bits >> 60) & 1023] + pairs[(bits >> 50) & 1023]
            + pairs[(bits >> 40) & 1023] + pairs[(bits >> 30) & 1023] + pairs[(bits >> 20) & 1023]
            + pairs[(bits >> 10) & 1023] + pairs[bits & 1023])


#: Every 10-bit value as two Crockford base32 characters.
_PAIRS = tuple(_CROCKFORD[n // 32] + _CROCKFORD[n % 32] for n in range(1024))
#: A ULID's time is 48 bits of milliseconds.
_TIME_MASK = (1 << 48) - 1

#: Bytes read from the OS's CSPRNG ahead (one read per few hundred ids instead of one each),
#: and how many of them are used. A forked child starts with none: it never repeats its
#: parent's bytes.
_POOL_SIZE = 4096
_pool = b""
_pool_used = 0


def _random_bytes(n: int) -> bytes:
    global _pool, _pool_used
    start = _pool_used
    if start + n > len(_pool):
        _pool, start = os.urandom(_POOL_SIZE), 0
    _pool_used = start + n
    return _pool[start:start + n]


def _forget_pool() -> None:
    global _pool, _pool_used
    _pool, _pool_used = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def lowest_uid_at(moment: datetime) -> str:
    """The smallest ULID minted at `moment`: every uid minted earlier sorts below it."""
    ms = max(int(moment.timestamp() * 1000), 0)
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + bytes(10)))


def dedup_key(project_id: str, idempotency_key: str) -> str:
    """The idempotency table key of an event: `<project>:<idempotency key>` ("" without a key).

    Every record with one dedup key goes to one partition (`partition_for`), whose agent keeps
    the first as the original and stores the rest as duplicates; lookups by idempotency key
    hash the same string to find that partition's worker.
    """
    return f"{project_id}:{idempotency_key}" if idempotency_key else ""


def scoped(scope: str, uid: str) -> str:
    """The table key of `uid` within `scope` (a project id)."""
    return f"{scope}/{uid}" if scope else uid


def by_partition(scope: str, uids: Iterable[str], partitions: int) -> dict[int, list[str]]:
    """The uids grouped by the partition their rows live on."""
    grouped: dict[int, list[str]] = {}
    for uid in uids:
        grouped.setdefault(partition_of(scoped(scope, uid), partitions), []).append(uid)
    return grouped


def mask_id(length: int = 16) -> str:
    """Unguessable public id, as Convoy's uniuri.NewLen(16)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, mask, sha256 digest of the secret part).

    Format `CO.<mask16>.<secret64>` as Convoy. The secret has 64 random
    alphanumerics (~380 bits), so a fast digest is enough: a slow password
    hash would cost every request and buy nothing against such entropy.
    """
    mask = mask_id(16)
    secret = mask_id(64)
    return f"CO.{mask}.{secret}", mask, key_digest(secret)


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
