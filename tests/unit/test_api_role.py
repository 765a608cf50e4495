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


def test_an_api_process_without_the_workers_admin_token_refuses_to_start(tmp_path) -> None:
    """A token of its own would turn the workers' admin token away on the shared port."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CONVOY_STREAM_ADMIN_TOKEN"}
    env.update(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", CONVOY_STREAM_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "convoy_stream.cli", "api", "--processes", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"convoy-stream api: set CONVOY_STREAM_ADMIN_TOKEN to the workers' admin token (no {tmp_path}/admin-token to read it from)"]
    assert not (tmp_path / "admin-token").exists()
