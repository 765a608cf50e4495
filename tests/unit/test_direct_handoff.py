"""The consumer's hand-off of a fetched message to the streams (`direct_handoff.py`).

Faust's drain loop calls `consumer.wait_first(callback(message), consumer.suspend_flow.wait())`
for every message. These tests drive that call on a real mode `Service` (the base of
Faust's consumer) and check what a user of the pipeline relies on: every message handed
off reaches the stream, also when a rebalance suspends the flow mid-hand-off.
"""

from __future__ import annotations

import asyncio

from mode import Service

from convoy_stream import direct_handoff


class Consumer(Service):
    """What the drain loop touches: `wait_first`, `suspend_flow`, the stopped/crashed events."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def _hand_off_while_the_flow_is_suspended(install: bool) -> list[str]:
    consumer = Consumer()
    if install:
        direct_handoff.install(consumer)
    room = asyncio.Event()
    delivered: list[str] = []

    async def callback(message: str) -> None:  # waits for room in the stream's buffer
        await room.wait()
        delivered.append(message)

    drain = asyncio.create_task(consumer.wait_first(callback("m1"), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()  # a rebalance starts while m1 waits for room
    await asyncio.sleep(0.01)
    room.set()  # the streams keep taking messages while suspended
    await asyncio.wait_for(drain, 1)
    await asyncio.sleep(0.01)
    return delivered


def test_a_message_waiting_for_room_is_delivered_when_a_rebalance_suspends_the_flow() -> None:
    assert asyncio.run(_hand_off_while_the_flow_is_suspended(install=True)) == ["m1"]
    # Faust's own wait_first cancels the hand-off: the message is dropped.
    assert asyncio.run(_hand_off_while_the_flow_is_suspended(install=False)) == []


def test_the_hand_off_runs_without_tasks_of_its_own() -> None:
    async def scenario() -> tuple[list[str], int]:
        consumer = Consumer()
        direct_handoff.install(consumer)
        direct_handoff.install(consumer)  # idempotent
        delivered: list[str] = []
        tasks_seen: list[int] = []

        async def callback(message: str) -> None:
            tasks_seen.append(len(asyncio.all_tasks()))
            delivered.append(message)

        for message in ("m1", "m2", "m3"):
            await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
        return delivered, max(tasks_seen)

    delivered, tasks = asyncio.run(scenario())
    assert delivered == ["m1", "m2", "m3"]
    assert tasks == 1  # only the test's own task: Faust's path adds four per message


def test_while_the_flow_is_suspended_faust_decides() -> None:
    async def scenario() -> tuple[bool, list[str]]:
        consumer = Consumer()
        direct_handoff.install(consumer)
        consumer.suspend_flow.set()
        delivered: list[str] = []
        never = asyncio.Event()

        async def callback(message: str) -> None:
            await never.wait()
            delivered.append(message)

        result = await asyncio.wait_for(consumer.wait_first(callback("m1"), consumer.suspend_flow.wait()), 1)
        return result.stopped or bool(result.done), delivered

    returned, delivered = asyncio.run(scenario())
    assert returned and delivered == []  # returned at once, as Faust's wait_first does
