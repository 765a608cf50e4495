"""Identifiers: ULIDs that land on a chosen partition, API keys, mask ids.

Why partition-aligned ids: every record for one dedup key (project +
idempotency key) must reach the same partition so one agent deduplicates it.
If the event id hashed elsewhere, lookups by event id would go to the wrong
worker. So the event id is minted to hash to the dedup key's partition; then
the event, its dedup entry and its deliveries all live in one partition and
Faust's key routing finds them by any of those keys. Kafka's default
partitioner is murmur2 over the serialized (JSON) key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time

from aiokafka.partitioner import murmur2
from ulid import ULID

_ALNUM = string.ascii_letters + string.digits


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a JSON-serialized key."""
    return (murmur2(json.dumps(key).encode()) & 0x7FFFFFFF) % partitions


def new_ulid() -> str:
    return str(ULID())


def mint_id(partition: int, partitions: int, *, scope: str = "", seed: str | None = None, timestamp: float | None = None) -> str:
    """A ULID whose table key (`<scope>/<ulid>`, or the bare ULID) hashes to `partition`.

    Tables key events and deliveries by `<project>/<uid>` so one project's
    rows sort together (range scans for listing); the id is chosen so that
    this key lands on the partition that owns the event. With a `seed` the
    result is deterministic (delivery ids: a replay after a crash re-emits
    the same uid and consumers can drop it).
    """
    ts_ms = int((timestamp if timestamp is not None else time.time()) * 1000)
    for attempt in range(10_000):
        if seed is None:
            randomness = secrets.token_bytes(10)
        else:
            randomness = hashlib.blake2b(f"{seed}:{attempt}".encode(), digest_size=10).digest()
        candidate = str(ULID.from_bytes(ts_ms.to_bytes(6, "big") + randomness))
        if partition_for(scoped(scope, candidate), partitions) == partition:
            return candidate
    raise RuntimeError("could not mint an id for partition %d" % partition)  # pragma: no cover


def scoped(scope: str, uid: str) -> str:
    """The table key of `uid` within `scope` (a project id)."""
    return f"{scope}/{uid}" if scope else uid


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
