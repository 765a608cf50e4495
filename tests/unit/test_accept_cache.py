"""What the accept path keeps between requests (`web/accept_cache.py`) follows config changes.

A key that authenticated once is recognised again without hashing; revoking it, giving it a
new secret, moving it or deleting its project must take effect with the next request, whether
the change was made on this process or read from the config topic (both go through
`ConfigStore._apply`).
"""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import make_mocked_request

from convoy_stream.ids import key_digest
from convoy_stream.web.accept_cache import MAX_ENTRIES, AcceptCache
from convoy_stream.web.auth import authenticate, project_for
from convoy_stream.web.envelope import ApiError
from tables.config import ConfigStore

ADMIN = hashlib.sha256(b"admin-token").hexdigest()


def request(token: str, project_id: str = "p1"):  # type: ignore[no-untyped-def]
    req = make_mocked_request("POST", f"/api/v1/projects/{project_id}/events",
                              headers={"Authorization": f"Bearer {token}"}, match_info={"projectID": project_id})
    return req


def view_with_key(offset: int = 0) -> ConfigStore:
    view = ConfigStore("unused:9092", "t")
    view._apply("project/p1", {"uid": "p1", "type": "outgoing"}, offset)
    view._apply("project/p2", {"uid": "p2", "type": "outgoing"}, offset + 1)
    view._apply("apikey/mask1", {"uid": "mask1", "project_id": "p1", "digest": key_digest("s3cret")}, offset + 2)
    return view


def status(call) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as failure:
        call()
    return failure.value.status


def test_a_revoked_key_is_refused_at_the_next_request() -> None:
    view = view_with_key()
    cache = AcceptCache(view)
    for _ in range(2):  # the second answer comes from the cache
        assert project_for(request("CO.mask1.s3cret"), view, ADMIN, cache)["uid"] == "p1"
    assert status(lambda: project_for(request("CO.mask1.wrong"), view, ADMIN, cache)) == 401
    view._apply("apikey/mask1", None, 10)  # revoked (on any worker: read from the config topic)
    assert status(lambda: project_for(request("CO.mask1.s3cret"), view, ADMIN, cache)) == 401


def test_a_new_secret_or_project_for_a_key_takes_effect_at_once() -> None:
    view = view_with_key()
    cache = AcceptCache(view)
    assert authenticate(request("CO.mask1.s3cret"), view, ADMIN, cache).project_id == "p1"
    view._apply("apikey/mask1", {"uid": "mask1", "project_id": "p1", "digest": key_digest("rotated")}, 10)
    assert status(lambda: authenticate(request("CO.mask1.s3cret"), view, ADMIN, cache)) == 401
    assert authenticate(request("CO.mask1.rotated"), view, ADMIN, cache).project_id == "p1"
    view._apply("apikey/mask1", {"uid": "mask1", "project_id": "p2", "digest": key_digest("rotated")}, 11)
    assert status(lambda: project_for(request("CO.mask1.rotated", "p1"), view, ADMIN, cache)) == 401
    assert project_for(request("CO.mask1.rotated", "p2"), view, ADMIN, cache)["uid"] == "p2"


def test_a_deleted_project_is_not_found_even_with_a_remembered_key() -> None:
    view = view_with_key()
    cache = AcceptCache(view)
    assert project_for(request("CO.mask1.s3cret"), view, ADMIN, cache)["uid"] == "p1"
    view._apply("project/p1", None, 10)
    assert status(lambda: project_for(request("CO.mask1.s3cret"), view, ADMIN, cache)) == 404


def test_the_admin_token_still_wins_and_the_cache_stays_bounded() -> None:
    view = view_with_key()
    cache = AcceptCache(view)
    assert authenticate(request("admin-token"), view, ADMIN, cache).admin
    for n in range(MAX_ENTRIES + 5):
        cache.put(("x", n), n)
    assert cache.get(("x", 0)) is None and cache.get(("x", MAX_ENTRIES + 4)) == MAX_ENTRIES + 4
