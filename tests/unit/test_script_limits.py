"""Every run of a tenant's script has a time, memory and output limit, and one project's
scripts cannot hold up another's: the limits end the script, never the worker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Iterator

import pytest

from convoy_stream import transforms
from convoy_stream.script_pool import ScriptPool
from convoy_stream.settings import Settings
from convoy_stream.transforms import ScriptLimits, TransformError


@pytest.fixture
def limits() -> Iterator[None]:
    """Tests that change the limits put the defaults back."""
    yield
    transforms.configure(ScriptLimits())


@pytest.mark.parametrize("script", [
    "function transform(p) { while (true) {} }",
    "function transform(p) { for (;;) { JSON.stringify(p) } }",
    # promise jobs run after the call returned: they are held to the limit too
    "function transform(p) { Promise.resolve().then(function () { while (true) {} }); return p }",
    "async function spin() { await null; while (true) {} } function transform(p) { spin(); return p }",
])
def test_a_script_past_its_time_limit_fails_and_the_next_run_works(script: str) -> None:
    started = time.monotonic()
    with pytest.raises(TransformError, match=r"^script exceeded its time limit of 200 ms$"):
        transforms.run(script, {"n": 1}, project="p-time")
    assert time.monotonic() - started < 5
    assert transforms.run("function transform(p) { return p.n + 1 }", {"n": 1}, project="p-time") == 2


def test_a_script_past_its_memory_limit_fails(limits: None) -> None:
    transforms.configure(ScriptLimits(timeout_ms=10_000, max_memory=16 * 1024 * 1024))
    grow = "function transform(p) { const a = []; while (true) a.push(new Array(10000).fill(p.n)); }"
    with pytest.raises(TransformError, match=r"^script exceeded its memory limit of 16 MiB$"):
        transforms.run(grow, {"n": 1}, project="p-memory")
    with pytest.raises(TransformError, match=r"memory limit of 16 MiB while loading"):
        transforms.check("var a = []; while (true) a.push(new Array(10000).fill(1)); function transform(p) { return p }")
    assert transforms.run("function transform(p) { return p.n }", {"n": 7}, project="p-memory") == 7


@pytest.mark.parametrize("name", ["ArrayBuffer", "Uint8Array", "SharedArrayBuffer", "WebAssembly", "Atomics",
                                  "setTimeout", "FinalizationRegistry"])
def test_memory_outside_the_heap_and_later_runs_are_not_offered(name: str) -> None:
    """V8 keeps buffers outside the heap its limit counts; timers would run after the limit."""
    assert transforms.run(f"function transform(p) {{ return typeof {name} }}", {}, project="p-globals") == "undefined"


def test_a_script_that_makes_v8_abort_ends_only_its_script_process() -> None:
    # an array longer than V8 allows is a fatal error for the process running V8
    fatal = "function transform(p) { return ('y'.repeat(2 ** 27) + p.n).split('').length }"
    with pytest.raises(TransformError, match="^script made V8 abort its process"):
        transforms.run(fatal, {"n": 12345}, project="p-fatal")
    assert transforms.run("function transform(p) { return p.n }", {"n": 3}, project="p-fatal") == 3


def test_test_function_output_is_bounded() -> None:
    big = "function transform(p) { return {event_type: 'e', data: {blob: 'x'.repeat(70 * 1024)}} }"
    with pytest.raises(TransformError, match=r"^transform's result exceeds the output limit of 64 KiB$"):
        transforms.try_once(big, {})
    chatty = "function transform(p) { for (let i = 0; i < 100; i++) console.log('x'.repeat(1000), i); return p }"
    with pytest.raises(TransformError, match=r"^console output exceeds the output limit of 64 KiB$"):
        transforms.try_once(chatty, {})
    assert transforms.try_once("function transform(p) { console.log('ok'); return p }", {"n": 1}) == ({"n": 1}, ["ok"])
    # a broker message may be as large as an event: the bridges' limit is Kafka's record size
    assert len(transforms.run(big, {}, project="p-output")["data"]["blob"]) == 70 * 1024


def test_a_scripts_own_error_message_is_cut_short() -> None:
    with pytest.raises(TransformError) as failure:
        transforms.run("function transform(p) { throw new Error('e'.repeat(1000000)) }", {}, project="p-error")
    assert str(failure.value).startswith("transform threw: Error: eee") and len(str(failure.value)) < 600


def test_projects_never_share_a_scripts_globals() -> None:
    script = "var seen = []; function transform(p) { seen.push(p.n); return seen }"
    assert transforms.run(script, {"n": 1}, project="p-one") == [1]
    assert transforms.run(script, {"n": 2}, project="p-two") == [2]
    assert transforms.run(script, {"n": 3}, project="p-one") == [1, 3]


def test_one_project_waits_for_its_own_scripts_never_for_anothers() -> None:
    """A's three slow jobs take one thread at a time; B's job starts at once on the other."""
    async def scenario() -> tuple[float, float]:
        pool = ScriptPool(threads=2, per_project=1)
        release = threading.Event()
        began = time.monotonic()

        def slow() -> float:
            release.wait(10)
            return time.monotonic() - began

        a_jobs = [asyncio.create_task(pool.run("A", slow)) for _ in range(3)]
        await asyncio.sleep(0.05)
        b_done = await asyncio.wait_for(pool.run("B", lambda: time.monotonic() - began), 5)
        release.set()
        a_done = max(await asyncio.gather(*a_jobs))
        pool.shutdown()
        return b_done, a_done

    b_done, a_done = asyncio.run(scenario())
    assert b_done < 1.0 and b_done < a_done


def test_a_cancelled_caller_keeps_its_projects_turn_until_its_script_ends() -> None:
    """Threads cannot be stopped: a request given up must not let its project take a second thread."""
    async def scenario() -> list[str]:
        pool = ScriptPool(threads=2, per_project=1)
        release, order = threading.Event(), []

        def first() -> None:
            release.wait(10)
            order.append("first ended")

        task = asyncio.create_task(pool.run("A", first))
        await asyncio.sleep(0.05)
        task.cancel()
        second = asyncio.create_task(pool.run("A", lambda: order.append("second ran")))
        await asyncio.sleep(0.2)
        order.append("released")
        release.set()
        await asyncio.wait_for(second, 5)
        pool.shutdown()
        return order

    assert asyncio.run(scenario()) == ["released", "first ended", "second ran"]


@pytest.mark.parametrize("name, value", [("CONVOY_STREAM_SCRIPT_TIMEOUT_MS", "0"), ("CONVOY_STREAM_SCRIPT_MAX_MEMORY", "64MB"),
                                         ("CONVOY_STREAM_SCRIPT_RUNNERS", "-1")])
def test_a_wrong_script_setting_stops_the_process_with_one_line(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONVOY_STREAM_ADMIN_TOKEN", "t")
    with pytest.raises(SystemExit, match=f"^convoy-stream: {name} must be a positive whole number"):
        Settings.from_env()


def test_a_memory_limit_too_small_for_v8_is_refused_at_start() -> None:
    settings = Settings(admin_token="t", script_max_memory=1024)
    with pytest.raises(SystemExit, match="at least 4 MiB"):
        ScriptLimits.from_settings(settings)
