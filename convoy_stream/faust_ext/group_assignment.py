"""Faust's partition assignment, read from the consumer group by a process outside it.

Faust's leader puts the whole assignment into every member's Kafka assignment: the
`user_data` of aiokafka's `ConsumerProtocolMemberAssignment` is Faust's `ClientMetadata`
(JSON, compressed by `PartitionAssignor._compress`), whose `changelog_distribution` maps each
worker's URL (its `canonical_url`) to the changelog partitions it is active for. That map is
what `router.table_metadata` answers from inside a worker; `changelog_distribution` decodes
it from the bytes `describe_consumer_groups` returns, as `PartitionAssignor.on_assignment`
does, so the API role (`convoy_stream/api_role.py`) routes lookups the way a worker does.
"""

from __future__ import annotations

from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientMetadata
from faust.assignor.partition_assignor import PartitionAssignor

#: The assignor's protocol name in the group (`PartitionAssignor.name`).
PROTOCOL = "faust"

#: worker URL -> changelog topic -> partitions the worker is active for.
Distribution = dict[str, dict[str, list[int]]]


def changelog_distribution(member_assignment: bytes) -> Distribution:
    """The group's changelog distribution carried by one member's assignment bytes.

    Every member's assignment carries the same distribution (the leader writes it into each);
    empty bytes (a group between generations) carry none. Raises `ValueError` on bytes that
    are not Faust's assignment.
    """
    if not member_assignment:
        return {}
    try:
        assignment = ConsumerProtocolMemberAssignment.decode(member_assignment)
        metadata: Any = ClientMetadata.loads(PartitionAssignor._decompress(assignment.user_data))
    except Exception as exc:  # zlib.error, a decoding error of aiokafka's or Faust's
        raise ValueError(f"not a Faust assignment: {type(exc).__name__}") from exc
    return {str(url): {str(topic): [int(p) for p in parts] for topic, parts in topics.items()}
            for url, topics in dict(metadata.changelog_distribution).items()}
