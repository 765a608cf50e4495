"""The instance ingest rate limit's token bucket, with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convoy_stream.web.ratelimit import TokenBucket, is_limited, limiter_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_one_seconds_worth_then_refuses() -> None:
    clock = Clock()
    bucket = TokenBucket(5, clock=clock)
    decisions = [bucket.take() for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[5].remaining == 0 and decisions[5].retry_after == 1


def test_tokens_refill_with_time_and_never_beyond_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(2, clock=clock)
    assert bucket.take().allowed and bucket.take().allowed and not bucket.take().allowed
    clock.now += 0.5  # one token back
    assert bucket.take().allowed
    assert not bucket.take().allowed
    clock.now += 3600  # a long idle time refills to capacity, not 7200 tokens
    assert sum(bucket.take().allowed for _ in range(10)) == 2


def test_retry_after_is_whole_seconds_until_a_token_is_free() -> None:
    clock = Clock()
    bucket = TokenBucket(0.1, clock=clock)  # one event every 10 s
    assert bucket.take().allowed
    refused = bucket.take()
    assert not refused.allowed and refused.retry_after == 10
    clock.now += 7.5
    assert bucket.take().retry_after == 3  # 2.5 s rounded up


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(1, clock=clock)
    assert bucket.take().allowed
    clock.now -= 100
    assert not bucket.take().allowed
    clock.now += 1
    assert bucket.take().allowed


def test_fractional_rates_hold_at_least_one_token_and_report_a_limit_of_at_least_one() -> None:
    bucket = TokenBucket(0.5, clock=Clock())
    assert bucket.capacity == 1 and bucket.limit == 1
    assert bucket.take().allowed


def test_zero_rate_means_no_limiter_and_bad_values_are_refused() -> None:
    assert limiter_for(0) is None
    assert limiter_for(-1) is None
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, capacity=0.5)


def test_only_event_creating_routes_are_limited() -> None:
    assert is_limited("POST", "/ingest/{maskID}") and is_limited("patch", "/ingest/{maskID}")
    assert not is_limited("GET", "/ingest/{maskID}")  # X/Twitter CRC
    for suffix in ("", "/fanout", "/broadcast", "/dynamic"):
        assert is_limited("POST", "/api/v1/projects/{projectID}/events" + suffix)
    assert not is_limited("GET", "/api/v1/projects/{projectID}/events")
    assert not is_limited("POST", "/api/v1/projects/{projectID}/endpoints")


@settings(max_examples=200)
@given(rate=st.floats(0.01, 1000), steps=st.lists(st.floats(0, 5), max_size=60))
def test_never_more_than_capacity_plus_rate_times_elapsed(rate: float, steps: list[float]) -> None:
    """Over any run, accepted <= capacity + rate * elapsed: the limit is never exceeded."""
    clock = Clock()
    bucket = TokenBucket(rate, clock=clock)
    start, accepted = clock.now, 0
    for step in steps:
        clock.now += step
        accepted += bucket.take().allowed
        assert accepted <= bucket.capacity + rate * (clock.now - start) + 1e-6
