"""A stopping worker exits within its shutdown timeout, and says what it was still waiting for."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from convoy_stream.kafka_connection import SettingError
from convoy_stream.settings import Settings
from convoy_stream.shutdown import EXIT_STATUS, Deadline, still_stopping


def test_the_deadline_exits_once_after_its_timeout_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    exited = threading.Event()
    statuses: list[int] = []
    deadline = Deadline(0.2, exit=lambda status: (statuses.append(status), exited.set()),
                        describe=lambda: "Consumer.stop, in wait_for")
    with caplog.at_level(logging.CRITICAL, logger="convoy_stream.shutdown"):
        deadline.arm()
        deadline.arm()  # a second signal changes nothing
        assert not exited.wait(0.05)
        assert exited.wait(30)
    assert statuses == [EXIT_STATUS]
    [line] = [r.getMessage() for r in caplog.records]
    assert line == ("worker did not stop within 0.2 s (CONVOY_STREAM_SHUTDOWN_TIMEOUT), exiting with status 1; "
                    "still stopping: Consumer.stop, in wait_for")


class Hanging:
    """A service whose stop waits on something that never happens (Kafka, gone)."""

    shortlabel = "Consumer"

    async def stop(self) -> None:
        await self.commit()

    async def commit(self) -> None:
        await asyncio.Event().wait()


def test_still_stopping_names_the_service_and_the_call_it_waits_in() -> None:
    async def main() -> str:
        task = asyncio.ensure_future(Hanging().stop())
        asyncio.ensure_future(asyncio.sleep(10))  # not a stop: not named
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, still_stopping, loop)  # read from another thread, as the deadline does
        task.cancel()
        return found

    assert asyncio.run(main()) == "Consumer.stop, in Event.wait"


def test_once_the_loop_is_done_it_is_the_process_exit() -> None:
    assert still_stopping(None).startswith("the process's exit")


@pytest.mark.parametrize(("value", "seconds"), [("45", 45.0), ("2.5", 2.5), ("90s", 90.0), ("1m30s", 90.0),
                                                ("500ms", 0.5)])
def test_duration_settings_take_seconds_or_go_durations(monkeypatch: pytest.MonkeyPatch, value: str,
                                                        seconds: float) -> None:
    monkeypatch.setenv("CONVOY_STREAM_ADMIN_TOKEN", "t")
    monkeypatch.setenv("CONVOY_STREAM_SHUTDOWN_TIMEOUT", value)
    monkeypatch.setenv("CONVOY_STREAM_COMMIT_STALL_AFTER", value)
    settings = Settings.from_env()
    assert settings.shutdown_timeout == settings.commit_stall_after == seconds


def test_duration_settings_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOY_STREAM_ADMIN_TOKEN", "t")
    monkeypatch.delenv("CONVOY_STREAM_SHUTDOWN_TIMEOUT", raising=False)
    monkeypatch.delenv("CONVOY_STREAM_COMMIT_STALL_AFTER", raising=False)
    settings = Settings.from_env()
    assert (settings.shutdown_timeout, settings.commit_stall_after) == (10.0, 30.0)


@pytest.mark.parametrize("name", ["CONVOY_STREAM_SHUTDOWN_TIMEOUT", "CONVOY_STREAM_COMMIT_STALL_AFTER"])
@pytest.mark.parametrize("value", ["0", "-5", "-1s", "ten", "10 s", "nan", "inf", "5d"])
def test_a_wrong_duration_stops_the_process_with_one_line(monkeypatch: pytest.MonkeyPatch, name: str,
                                                          value: str) -> None:
    monkeypatch.setenv("CONVOY_STREAM_ADMIN_TOKEN", "t")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=f"^{name}='{value}' is not a duration of more than zero"):
        Settings.from_env()

