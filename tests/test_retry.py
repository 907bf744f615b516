"""RetryHandler and CooldownTracker on their own: injected randomness and clock, no sleeping (the race's use of them runs in virtual time in tests/test_routing_race.py and tests/test_routing_probe.py)."""

from __future__ import annotations

import pytest

from llmcomm import (
    AuthenticationError,
    CooldownTracker,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitError,
    RetryHandler,
)


def test_backoff_is_full_jitter_capped() -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    handler = RetryHandler(max_retries=10, base_delay=0.5, max_delay=8.0, rng=uniform)
    delays = [handler.delay(n) for n in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(low == 0.0 for low, _ in bounds)


def test_retry_after_is_used_as_given() -> None:
    handler = RetryHandler(rng=lambda low, high: 0.0)
    assert handler.delay(0, RateLimitError("slow down", retry_after=3.5)) == 3.5
    assert handler.delay(0, ProviderUnavailableError("busy", retry_after=0.25)) == 0.25
    assert handler.delay(0, ProviderUnavailableError("busy")) == 0.0


def test_only_retryable_errors_within_the_budget() -> None:
    handler = RetryHandler(max_retries=2)
    busy = ProviderUnavailableError("busy")
    assert handler.should_retry(busy, 0)
    assert handler.should_retry(busy, 1)
    assert not handler.should_retry(busy, 2)
    assert not handler.should_retry(InvalidRequestError("bad"), 0)
    assert not handler.should_retry(AuthenticationError("who"), 0)
    assert not handler.should_retry(RateLimitError("quota", retryable=False), 0)


@pytest.fixture
def clock() -> list[float]:
    return [100.0]


def test_breaker_opens_after_consecutive_failures(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=3, cooldown=30, clock=lambda: clock[0])
    busy = ProviderUnavailableError("busy")
    for _ in range(2):
        tracker.failure("p", busy)
        assert tracker.acquire("p") == "closed"
    tracker.failure("p", busy)
    assert tracker.acquire("p") is None
    assert tracker.snapshot() == {"p": 30.0}
    clock[0] += 30
    assert tracker.acquire("p") == "probe"
    assert tracker.acquire("p") is None  # one probe at a time
    tracker.failure("p", busy)  # the probe failed: open again at once
    assert tracker.acquire("p") is None
    clock[0] += 30
    assert tracker.acquire("p") == "probe"
    tracker.success("p")
    assert tracker.acquire("p") == "closed"


def test_success_resets_the_count(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=2, clock=lambda: clock[0])
    tracker.failure("p", ProviderUnavailableError("busy"))
    tracker.success("p")
    tracker.failure("p", ProviderUnavailableError("busy"))
    assert tracker.acquire("p") == "closed"


def test_invalid_requests_never_count_and_auth_cools_longer(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=1, cooldown=30, auth_cooldown=300, clock=lambda: clock[0])
    tracker.failure("p", InvalidRequestError("bad"))
    assert tracker.acquire("p") == "closed"
    tracker.failure("p", AuthenticationError("who"))
    clock[0] += 299
    assert tracker.acquire("p") is None
    clock[0] += 1
    assert tracker.acquire("p") == "probe"


def test_released_probe_can_be_taken_again(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=1, cooldown=1, clock=lambda: clock[0])
    tracker.failure("p", ProviderUnavailableError("busy"))
    clock[0] += 1
    assert tracker.acquire("p") == "probe"
    tracker.release("p")
    assert tracker.acquire("p") == "probe"


def test_the_earliest_to_cool_down_can_be_probed_before_its_time(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=1, cooldown=30, clock=lambda: clock[0])
    tracker.failure("a", ProviderUnavailableError("busy"))
    clock[0] += 5
    tracker.failure("b", ProviderUnavailableError("busy"))
    assert tracker.acquire("a") is None and tracker.acquire("b") is None
    assert tracker.earliest(["b", "a"]) == "a"
    assert tracker.earliest([]) is None
    assert tracker.force_probe("a") == "probe"
    assert tracker.probing("a")
    assert tracker.force_probe("a") is None  # one probe per provider at a time
    assert tracker.force_probe("healthy") == "closed"
    tracker.success("a")
    assert tracker.acquire("a") == "closed"
    assert not tracker.probing("a")


def test_a_probe_that_reached_a_provider_refusing_the_request_frees_the_slot(clock: list[float]) -> None:
    tracker = CooldownTracker(failures=1, cooldown=30, clock=lambda: clock[0])
    tracker.failure("p", ProviderUnavailableError("busy"))
    assert tracker.force_probe("p") == "probe"
    tracker.failure("p", InvalidRequestError("bad"))
    assert not tracker.probing("p")
    assert tracker.cooling("p")  # still open: a refused request says nothing of its health


def test_the_default_clock_is_the_event_loops() -> None:
    import anyio

    tracker = CooldownTracker(failures=1, cooldown=30)
    assert tracker.clock is anyio.current_time
    assert "cooldown=30" in repr(tracker)
