"""The adaptive hedge in virtual time: its p95, window, floor, cap, budget and log lines; fixed mode unchanged.

trio's MockClock jumps to the next deadline, so every time below is exact.
"""

from __future__ import annotations

import logging
import math

import anyio
import pytest
import trio.testing

from llmcomm import AdaptiveHedge, Configuration, ConfigurationError, ProviderUnavailableError
from llmcomm._routing._hedge import HedgeBudget, InProcessStats

from .routing_fakes import FINISH, Scripted, Step, client

pytestmark = pytest.mark.anyio

KEY = ("primary", "m")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


def fast(seconds: float) -> list[Step]:
    return [seconds, "fast", FINISH]


# -- the statistics, pure ------------------------------------------------------------------------


def test_p95_is_the_nearest_rank_of_the_window() -> None:
    stats = InProcessStats(window=100)
    for i in range(1, 101):  # 0.01 .. 1.00
        stats.record(KEY, i / 100, now=0.0)
    assert stats.quantile(KEY, 0.95, now=0.0) == (0.95, 100)
    assert stats.quantile(KEY, 0.5, now=0.0) == (0.5, 100)
    assert stats.quantile(("other", "m"), 0.95, now=0.0)[1] == 0


def test_the_window_keeps_only_the_last_samples_and_forgets_old_ones() -> None:
    stats = InProcessStats(window=20, max_age=10.0)
    for _ in range(50):
        stats.record(KEY, 5.0, now=0.0)
    for _ in range(20):
        stats.record(KEY, 0.1, now=1.0)  # pushes every 5.0 out of the 20-sample window
    assert stats.quantile(KEY, 0.95, now=1.0) == (0.1, 20)
    value, n = stats.quantile(KEY, 0.95, now=11.5)  # all older than max_age
    assert n == 0
    assert math.isnan(value)


def test_memory_is_bounded_in_keys_too() -> None:
    stats = InProcessStats(window=5, max_keys=3)
    for i in range(10):
        stats.record((f"p{i}", "m"), 0.1, now=0.0)
    assert len(stats._windows) == 3
    assert all(len(w.samples) <= 5 for w in stats._windows.values())


def test_delay_rules_warmup_p95_floor_and_cap() -> None:
    policy = AdaptiveHedge(min_samples=20)
    for _ in range(19):
        policy.observe(KEY, 0.4, now=0.0)
    assert policy.delay(KEY, 2.0, now=0.0) == (2.0, "hedge-warmup 2 s")  # fewer than min_samples
    policy.observe(KEY, 0.4, now=0.0)
    assert policy.delay(KEY, 2.0, now=0.0) == (0.4, "hedge-p95 0.4 s")
    assert policy.delay(KEY, 0.3, now=0.0) == (0.3, "hedge-cap 0.3 s")  # never later than fallback_timeout
    quick = AdaptiveHedge(min_samples=1, floor=0.25)
    quick.observe(KEY, 0.01, now=0.0)
    assert quick.delay(KEY, 2.0, now=0.0) == (0.25, "hedge-floor 0.25 s")  # never earlier than the floor


def test_bad_parameters_are_refused() -> None:
    for kwargs in ({"min_samples": 0}, {"quantile": 1.0}, {"floor": -1.0}, {"budget_share": 2.0}, {"window": 5}):
        with pytest.raises(ValueError, match="need"):
            AdaptiveHedge(**kwargs)


def paused(budget: HedgeBudget) -> bool:
    return budget.exhausted


def test_budget_allows_its_share_and_recovers_as_the_window_slides() -> None:
    budget = HedgeBudget(share=0.10, window=60.0, minimum=0)
    for t in range(100):
        budget.call(float(t) * 0.1)
    assert [budget.spend(10.0) for _ in range(11)] == [True] * 10 + [False]
    assert budget.exhausted
    for t in range(9):
        budget.call(20.0 + t * 0.01)
    assert budget.exhausted  # 10 hedges in 109 calls: still spent
    assert not budget.spend(20.5)
    budget.call(21.0)  # 110 calls: room for an 11th hedge
    assert not paused(budget)
    assert budget.spend(21.0)
    # After the window the old hedges no longer count.
    assert budget.share_used(100.0) == 0.0


def test_a_quiet_client_still_has_its_minimum() -> None:
    budget = HedgeBudget(share=0.10, window=60.0, minimum=3)
    budget.call(0.0)
    assert [budget.spend(0.0) for _ in range(4)] == [True, True, True, False]


def test_budget_logs_once_when_it_runs_out_and_once_when_it_resumes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmcomm")
    budget = HedgeBudget(share=0.10, window=60.0, minimum=1)
    budget.call(0.0)
    assert budget.spend(0.0)
    for t in range(5):
        budget.call(1.0 + t)
        assert not budget.spend(1.0 + t)
    paused = [r for r in caplog.records if "hedging paused" in r.getMessage()]
    assert len(paused) == 1
    assert "10 % of the calls of the last 60 s" in paused[0].getMessage()
    for t in range(20):
        budget.call(70.0 + t)  # the spent hedge left the window
    resumed = [r for r in caplog.records if "hedging resumed" in r.getMessage()]
    assert len(resumed) == 1
    assert len([r for r in caplog.records if "hedging paused" in r.getMessage()]) == 1


# -- configuration ---------------------------------------------------------------------------------


def test_configuration_takes_a_mode_or_a_policy_and_refuses_anything_else() -> None:
    assert Configuration().hedge == "fixed"
    assert Configuration(hedge="adaptive").hedge == "adaptive"
    policy = AdaptiveHedge(min_samples=5)
    assert Configuration(hedge=policy).hedge is policy
    with pytest.raises(ConfigurationError, match="hedge must be 'fixed' or 'adaptive'"):
        Configuration(hedge="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="AdaptiveHedge"):
        Configuration(hedge=3)  # type: ignore[arg-type]


def test_llm_hedge_is_read_and_checked() -> None:
    env = {"OPENAI_API_KEY": "sk-real-looking-0123456789", "LLM_HEDGE": "adaptive"}
    assert Configuration.from_env(env).hedge == "adaptive"
    assert Configuration.from_env({**env, "LLM_HEDGE": ""}).hedge == "fixed"
    with pytest.raises(ConfigurationError, match=r"LLM_HEDGE='p95'.*LLM_HEDGE=adaptive"):
        Configuration.from_env({**env, "LLM_HEDGE": "p95"})


# -- in the race -----------------------------------------------------------------------------------


async def test_fixed_mode_is_part_one_rule_and_says_why() -> None:
    primary = Scripted("primary", [3600])
    backup = Scripted("backup", fast(0.5))
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(2.0)
    assert [a.reason for a in response.attempts] == ["first", "hedge-fixed 2 s"]
    snapshot = llm.metrics.snapshot()
    assert snapshot["total"]["hedges"] == {"fixed": 1}
    primary_series = next(s for s in snapshot["series"] if s["provider"] == "primary")
    assert primary_series["hedges"] == {"fixed": 1}  # counted on the provider that stayed silent
    assert 'llmcomm_hedges_total{provider="primary",model="m",reason="fixed"} 1' in llm.metrics.prometheus()


async def test_adaptive_uses_fallback_timeout_until_min_samples_then_the_p95() -> None:
    policy = AdaptiveHedge(min_samples=20)
    primary = Scripted("primary", *[fast(0.3)] * 20, [3600])
    backup = Scripted("backup", fast(0.1))
    async with client(primary, backup, hedge=policy) as llm:
        for _ in range(20):
            assert (await llm.generate_response("hi")).provider == "primary"
        assert backup.started == []  # no call took longer than the 2 s warm-up hedge
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(0.3)  # the p95 of 20 samples of 0.3 s
    assert response.provider == "backup"
    assert response.time_to_first_token == exactly(0.4)
    assert [a.reason for a in response.attempts] == ["first", "hedge-p95 0.3 s"]
    assert llm.metrics.snapshot()["total"]["hedges"] == {"p95": 1}


async def test_adaptive_during_warmup_hedges_at_fallback_timeout() -> None:
    primary = Scripted("primary", [3600])
    backup = Scripted("backup", fast(0.1))
    async with client(primary, backup, hedge="adaptive", fallback_timeout=1.5) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(1.5)
    assert response.attempts[-1].reason == "hedge-warmup 1.5 s"


async def test_adaptive_never_hedges_before_the_floor() -> None:
    policy = AdaptiveHedge(min_samples=5, floor=0.25)
    primary = Scripted("primary", *[fast(0.01)] * 5, [3600])
    backup = Scripted("backup", fast(0.1))
    async with client(primary, backup, hedge=policy) as llm:
        for _ in range(5):
            await llm.generate_response("hi")
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(0.25)
    assert response.attempts[-1].reason == "hedge-floor 0.25 s"


async def test_a_slow_primary_that_lost_still_counts_in_its_window() -> None:
    # A hedged primary that is still silent leaves the time it had been silent when the hedge
    # started as a sample (a lower bound), so the slow tail stays in the window and the p95 does
    # not drift down to the fast replies; the backup's speed is not fed into the primary's p95.
    policy = AdaptiveHedge(min_samples=1, window=10)
    primary = Scripted("primary", [3600])
    backup = Scripted("backup", fast(1.0))
    async with client(primary, backup, hedge=policy, fallback_timeout=2.0) as llm:
        await llm.generate_response("hi")
    value, n = policy.stats.quantile(("primary", "m"), 0.95, anyio.current_time())
    assert (value, n) == (exactly(2.0), 1)  # silent for 2 s when the hedge started


async def test_when_the_budget_is_spent_calls_wait_for_their_provider(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmcomm")
    policy = AdaptiveHedge(min_samples=1, budget_share=0.10, budget_window=60.0, budget_minimum=1)
    primary = Scripted("primary", fast(0.4), [1.2, "slow", FINISH])
    backup = Scripted("backup", fast(0.5))
    async with client(primary, backup, hedge=policy) as llm:
        await llm.generate_response("hi")  # one sample: p95 = 0.4 s
        first = await llm.generate_response("hi")  # the budget's one hedge
        assert [a.reason for a in first.attempts] == ["first", "hedge-p95 0.4 s"]
        t0 = anyio.current_time()
        later = await llm.generate_response("hi")
        assert anyio.current_time() - t0 == exactly(1.2)  # no hedge: the slow primary answered
        assert later.provider == "primary"
        assert len(later.attempts) == 1
        await llm.generate_response("hi")
    assert len(backup.started) == 1
    assert len([r for r in caplog.records if "hedging paused" in r.getMessage()]) == 1


async def test_a_failure_still_falls_back_at_once_when_the_budget_is_spent() -> None:
    policy = AdaptiveHedge(min_samples=1, budget_share=0.0, budget_minimum=0)
    primary = Scripted("primary", fast(0.4), [0.7, ProviderUnavailableError("down")])
    backup = Scripted("backup", fast(0.1))
    async with client(primary, backup, hedge=policy) as llm:
        await llm.generate_response("hi")
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert response.provider == "backup"
    assert backup.started[0] - t0 == exactly(0.7)
    assert [a.reason for a in response.attempts] == ["first", "fallback"]


async def test_with_three_providers_each_silent_one_leaves_one_sample() -> None:
    policy = AdaptiveHedge(min_samples=1, window=10)
    primary = Scripted("primary", [3600])
    second = Scripted("second", [3600])
    third = Scripted("third", fast(0.5))
    async with client(primary, second, third, hedge=policy, fallback_timeout=1.0) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert third.started[0] - t0 == exactly(2.0)  # the hedge timer restarts with each hedge
    assert [a.reason for a in response.attempts] == ["first", "hedge-warmup 1 s", "hedge-warmup 1 s"]
    now = anyio.current_time()
    assert policy.stats.quantile(("primary", "m"), 0.95, now) == (exactly(1.0), 1)
    assert policy.stats.quantile(("second", "m"), 0.95, now) == (exactly(1.0), 1)
    assert policy.stats.quantile(("third", "m"), 0.95, now) == (exactly(0.5), 1)
