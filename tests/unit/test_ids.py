"""Event ids name their partition, so lookups and the sweeper find the owner without hashing."""

from __future__ import annotations

import random
import time

import pytest
from aiokafka.partitioner import murmur2
from ulid import ULID

from convoy_stream.ids import MAX_PARTITIONS, dedup_key, kafka_partition, mint_id, partition_for, partition_of, scoped


@pytest.mark.parametrize("partitions", [1, 8, 12, 1024])
def test_every_partition_round_trips_through_the_id(partitions: int) -> None:
    for partition in range(partitions):
        uid = mint_id(partition, partitions)
        assert partition_of(uid, partitions) == partition
        assert partition_of(scoped("01JPROJECT0000000000000000", uid), partitions) == partition


def test_delivery_uids_extending_an_event_uid_share_its_partition() -> None:
    uid = mint_id(5, 8)
    assert partition_of("proj/" + uid + "ABCDEFGH", 8) == 5


def test_ids_stay_valid_ulids_ordered_by_time() -> None:
    earlier = mint_id(7, 8, timestamp=time.time() - 60)
    later = mint_id(0, 8)
    assert earlier < later
    assert str(ULID.from_str(later)) == later
    assert abs(ULID.from_str(earlier).timestamp - (time.time() - 60)) < 2


def test_ids_encode_their_millisecond_as_ulid_does() -> None:
    for seconds in (0.0, 1.5, 1_800_000_000.123, 2**48 / 1000 - 1):
        assert ULID.from_str(mint_id(3, 8, timestamp=seconds)).milliseconds == int(seconds * 1000)


def test_without_a_partition_ids_spread_over_all_partitions() -> None:
    assert {partition_of(mint_id(None, 8), 8) for _ in range(16)} == set(range(8))


def test_keys_land_where_kafkas_default_partitioner_puts_them() -> None:
    rng = random.Random(7)
    for size in [*range(0, 12), 40, 109, 1000]:
        for _ in range(50):
            key = rng.randbytes(size)
            for partitions in (1, 8, 12, 1024):
                assert kafka_partition(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


def test_foreign_ids_fall_back_to_kafkas_hash() -> None:
    # Too short to name a partition, a lower-case "marker", one naming partition 1023 of 8.
    for key in ["proj/not-an-id", "x", "proj/01jabcdefgab", "proj/01JABCDEFGZZZZZZZZZZZZZZZZ"]:
        assert partition_of(key, 8) == partition_for(key, 8)


def test_ids_are_unique() -> None:
    assert len({mint_id(3, 8) for _ in range(10_000)}) == 10_000


def test_too_many_partitions_is_refused() -> None:
    with pytest.raises(ValueError):
        mint_id(0, MAX_PARTITIONS + 1)


def test_a_dedup_key_is_the_project_and_its_idempotency_key() -> None:
    """REST events, webhooks and broker messages of a project share one key space: the same
    idempotency key makes the second a duplicate, whichever way each came in."""
    assert dedup_key("proj-1", "inv-42") == "proj-1:inv-42"
    assert dedup_key("proj-2", "inv-42") != dedup_key("proj-1", "inv-42")
    assert dedup_key("proj-1", "") == ""  # no key: never a duplicate
