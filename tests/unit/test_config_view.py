"""The config view's ordering rules, without Kafka: versions by offset, waiting for an offset."""

from __future__ import annotations

import asyncio

from tables.config import ConfigStore


def test_older_records_never_overwrite_newer_ones_and_indexes_follow() -> None:
    view = ConfigStore("unused:9092", "t")
    view._apply("endpoint/e1", {"uid": "e1", "project_id": "p", "owner_id": "o1", "url": "u"}, 5)
    view._apply("endpoint/e1", {"uid": "e1", "project_id": "p", "owner_id": "old", "url": "u"}, 3)  # a late re-read
    assert view.get("endpoint", "e1")["owner_id"] == "o1"
    assert [e["uid"] for e in view.endpoints_by_owner("p", "o1")] == ["e1"] and view.endpoints_by_owner("p", "old") == []
    view._apply("endpoint/e1", None, 6)
    assert view.get("endpoint", "e1") is None and view.endpoints_by_owner("p", "o1") == []
    assert view.position == 6


async def test_caught_up_to_waits_for_the_offset_or_times_out() -> None:
    view = ConfigStore("unused:9092", "t")
    assert await view.caught_up_to(-1, timeout=0.1)
    assert not await view.caught_up_to(2, timeout=0.05)

    async def later() -> None:
        await asyncio.sleep(0.05)
        view._apply("project/p", {"uid": "p"}, 1)
        await asyncio.sleep(0.05)
        view._apply("project/q", {"uid": "q"}, 2)

    task = asyncio.create_task(later())
    assert await view.caught_up_to(2, timeout=2)
    await task
    assert view.get("project", "q") == {"uid": "q"}
