"""The API role reads Faust's assignment from the consumer group as Faust's assignor writes it."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from convoy_stream.api_role import distribution_of
from convoy_stream.faust_ext.group_assignment import changelog_distribution

CHANGELOG = "app-events-changelog"
DISTRIBUTION = {"http://10.0.0.1:5005": {CHANGELOG: [0, 2]}, "http://10.0.0.2:5005": {CHANGELOG: [1, 3]}}


def _member_assignment(distribution: dict) -> bytes:
    """What Faust's leader gives one member (`PartitionAssignor._protocol_assignments`)."""
    metadata = ClientMetadata(assignment=ClientAssignment(actives={CHANGELOG: [0, 2]}, standbys={}),
                              url="http://10.0.0.1:5005", changelog_distribution=distribution)
    return ConsumerProtocolMemberAssignment(4, [(CHANGELOG, [0, 2])], zlib.compress(metadata.dumps())).encode()


def _described(state: str, assignment: bytes, protocol: str = "faust", group: str = "app") -> list:
    member = ("member-1", "client", "/10.0.0.1", b"", assignment)
    return [SimpleNamespace(groups=[(0, group, state, "consumer", protocol, [member])])]


def test_the_distribution_is_decoded_from_a_member_assignment() -> None:
    assert changelog_distribution(_member_assignment(DISTRIBUTION)) == DISTRIBUTION
    assert changelog_distribution(b"") == {}
    with pytest.raises(ValueError):
        changelog_distribution(b"\x00\x04not an assignment")


def test_only_a_stable_faust_group_has_owners() -> None:
    assignment = _member_assignment(DISTRIBUTION)
    assert distribution_of(_described("Stable", assignment), "app") == DISTRIBUTION
    # Between generations (or before any worker joined) no one owns anything: lookups answer 503.
    assert distribution_of(_described("PreparingRebalance", assignment), "app") == {}
    assert distribution_of(_described("CompletingRebalance", b""), "app") == {}
    assert distribution_of(_described("Stable", assignment, group="other"), "app") == {}
    assert distribution_of(_described("Stable", assignment, protocol="range"), "app") == {}
