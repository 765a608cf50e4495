"""A worker with a dead part never looks healthy (`liveness.py`), and exits after its grace.

Faust's services are real `mode` services here (their crash and shutdown flags are what
Faust sets); the app around them is a stand-in with the attributes liveness reads.
"""

from __future__ import annotations

import asyncio

from faust.types import TP
from mode import Service
from mode.utils.trees import Node

from convoy_stream.liveness import EXIT_STATUS, STALL_AFTER, Liveness

INGEST = TP("app-ingest", 0)


class Part(Service):
    """A service of the worker (the consumer's fetcher, an agent, ...)."""


class Consumer:
    def __init__(self) -> None:
        self._committed_offset: dict[TP, int] = {INGEST: 10}
        self.end = 10

    def assignment(self) -> set[TP]:
        return {INGEST}

    def highwater(self, tp: TP) -> int:
        return self.end


class Publisher:
    connected = True


class App:
    def __init__(self) -> None:
        self.crashed = False
        self.crash_reason: BaseException | None = None
        self.should_stop = False
        self.rebalancing = False
        self.in_recovery = False
        self.consumer_generation_id = 3
        self.consumer = Consumer()
        self.publisher = Publisher()
        self.beacon: Node = Node(self)
        self._fetcher = Part()
        self.agent = Part()
        self.beacon.add(self.agent.beacon)


def started(service: Service) -> Service:
    service._started.set()
    return service


def liveness(app: App, now: list[float], exits: list[int], exit_after: float = 5.0) -> Liveness:
    return Liveness(app, exit_after=exit_after, ingest_topic="app-ingest", exit=exits.append, clock=lambda: now[0])


def test_a_running_worker_is_alive_and_one_stopping_on_request_is_not_dead() -> None:
    app, now, exits = App(), [0.0], []
    started(app._fetcher)
    live = liveness(app, now, exits)
    assert live.cause() is None
    app.should_stop = True
    app._fetcher._shutdown.set()  # Faust stops the fetcher while the worker stops
    assert live.cause() is None


def test_a_crashed_service_is_named_at_once() -> None:
    app = App()
    started(app._fetcher)
    live = liveness(app, [0.0], [])
    app.agent._crash(RuntimeError("boom"))
    assert live.cause() == "Part crashed: RuntimeError('boom')"


def test_a_fetcher_that_stopped_outside_a_rebalance_is_dead() -> None:
    app = App()
    live = liveness(app, [0.0], [])
    app.consumer_generation_id = 0
    assert live.cause() is None  # before the first assignment it has not started yet
    app.consumer_generation_id = 3
    assert live.cause() == "the Kafka consumer's fetcher stopped: no records are read"
    started(app._fetcher)
    assert live.cause() is None
    app._fetcher._shutdown.set()  # its drain loop ended
    app.rebalancing = True
    assert live.cause() is None  # a rebalance restarts what it needs
    app.rebalancing = False
    assert live.cause() == "the Kafka consumer's fetcher stopped: no records are read"


def test_a_reported_failure_stays_and_the_worker_exits_after_its_grace() -> None:
    app, now, exits = App(), [100.0], []
    started(app._fetcher)
    live = liveness(app, now, exits, exit_after=5.0)
    live.failed("the pipeline task stopped: IndexError('deque index out of range')")
    live.failed("a later cause")
    live.check()
    now[0] += 4.9
    live.check()
    assert exits == [] and live.cause() == "the pipeline task stopped: IndexError('deque index out of range')"
    now[0] += 0.2
    live.check()
    assert exits == [EXIT_STATUS]


def test_commits_that_stand_still_while_records_wait_are_a_stall() -> None:
    app, now, exits = App(), [0.0], []
    started(app._fetcher)
    live = liveness(app, now, exits)
    app.consumer.end = 50  # 40 records wait
    assert live.stalled() is None
    now[0] += STALL_AFTER - 1
    assert live.stalled() is None
    app.consumer._committed_offset[INGEST] = 20  # it moved: the clock starts again
    assert live.stalled() is None
    now[0] += STALL_AFTER - 1
    assert live.stalled() is None
    app.publisher.connected = False  # Kafka unreachable: waiting is all it can do
    now[0] += STALL_AFTER + 1
    assert live.stalled() is None
    app.publisher.connected = True
    assert live.stalled() is None
    now[0] += STALL_AFTER + 1
    assert live.stalled() == f"the pipeline has not moved for {STALL_AFTER + 1:.0f} s while 30 ingest records wait"
    live.check()
    assert live.cause() is not None and live.cause().startswith("the pipeline has not moved")


def test_the_stall_threshold_is_the_commit_stall_setting() -> None:
    app, now, exits = App(), [0.0], []
    started(app._fetcher)
    live = Liveness(app, exit_after=5.0, ingest_topic="app-ingest", stall_after=5.0, exit=exits.append,
                    clock=lambda: now[0])
    app.consumer.end = 50
    assert live.stalled() is None
    now[0] += 4.9
    assert live.stalled() is None
    now[0] += 0.2
    assert live.stalled() == "the pipeline has not moved for 5 s while 40 ingest records wait"


def test_nothing_waiting_is_no_stall() -> None:
    app, now = App(), [0.0]
    live = liveness(app, now, [])
    for _ in range(3):
        now[0] += STALL_AFTER
        assert live.stalled() is None


def test_the_watchdog_runs_on_its_own_task() -> None:
    async def scenario() -> list[int]:
        app, exits = App(), []
        started(app._fetcher)
        live = Liveness(app, exit_after=0.0, ingest_topic="app-ingest", exit=exits.append)
        live.start()
        app.crashed, app.crash_reason = True, KeyError("x")
        for _ in range(40):
            await asyncio.sleep(0.05)
            if exits:
                break
        return exits

    assert asyncio.run(scenario())[:1] == [EXIT_STATUS]
