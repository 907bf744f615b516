"""The race's rules in virtual time: trio's MockClock jumps to the next deadline, so every time is exact.

Scripted providers (no sockets) sleep and answer on the loop's clock; the race, the
breaker and the retry policy read the same clock, so the 2 s hedge, the idle
watchdog, deadlines and Retry-After are asserted to the microsecond.
"""

from __future__ import annotations

import math

import anyio
import pytest
import trio.testing

from llmcomm import (
    AllProvidersFailedError,
    AnthropicProvider,
    CooldownTracker,
    InvalidRequestError,
    LLMException,
    LLMTimeoutError,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
    RetryHandler,
    StreamInterruptedError,
)
from llmcomm.providers._base import attempt_timeout

from .routing_fakes import FINISH, PING, Scripted, Step, client

pytestmark = pytest.mark.anyio

SILENT: list[Step] = [3600]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


def outcomes(response: object) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in response.attempts]  # type: ignore[attr-defined]


async def test_hedge_starts_the_next_provider_at_exactly_the_fallback_timeout() -> None:
    primary = Scripted("primary", SILENT)
    backup = Scripted("backup", [0.5, "from backup", FINISH])
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
        elapsed = anyio.current_time() - t0
    assert response.content == "from backup"
    assert elapsed == exactly(2.5)
    assert backup.started[0] - t0 == exactly(2.0)
    assert primary.closed[0] - t0 == exactly(2.5)  # the loser is closed when the winner's first chunk comes
    assert outcomes(response) == [("primary", "cancelled"), ("backup", "won")]
    assert response.time_to_first_token == exactly(2.5)
    assert response.attempts[1].time_to_first_token == exactly(0.5)


async def test_a_late_primary_still_wins_and_the_hedge_is_closed() -> None:
    primary = Scripted("primary", [2.3, "primary", FINISH])
    backup = Scripted("backup", [10, "backup", FINISH])
    async with client(primary, backup, fallback_timeout=2.0) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert response.content == "primary"
    assert backup.started[0] - t0 == exactly(2.0)
    assert backup.closed[0] - t0 == exactly(2.3)
    assert outcomes(response) == [("primary", "won"), ("backup", "cancelled")]


async def test_pings_and_empty_chunks_do_not_win_the_race() -> None:
    primary = Scripted("primary", [PING, 1, PING, 1, PING, 3600])
    backup = Scripted("backup", [0.25, "b", FINISH])
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert response.provider == "backup"
    assert anyio.current_time() - t0 == exactly(2.25)


async def test_an_early_failure_starts_the_next_provider_at_once() -> None:
    primary = Scripted("primary", [0.1, ProviderUnavailableError("529 overloaded")])
    backup = Scripted("backup", [0.2, "ok", FINISH])
    third = Scripted("third")
    async with client(primary, backup, third) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(0.1)
    assert response.response_time == exactly(0.3)
    assert third.started == []
    assert outcomes(response) == [("primary", "failed"), ("backup", "won")]


async def test_the_hedge_timer_restarts_with_each_fallback() -> None:
    primary = Scripted("primary", [0.5, ProviderUnavailableError("down")])
    backup = Scripted("backup", SILENT)
    third = Scripted("third", [0.1, "third", FINISH])
    async with client(primary, backup, third) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert third.started[0] - t0 == exactly(2.5)  # 0.5 (fallback) + 2.0 (hedge)
    assert response.provider == "third"


async def test_idle_watchdog_fires_exactly_after_the_last_chunk() -> None:
    provider = Scripted("p", ["one ", 1.0, "two ", PING, 3600])
    async with client(provider, stream_idle_timeout=5.0) as llm:
        t0 = anyio.current_time()
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_text("hi")
    # The keep-alive chunk at 1.0 s reset the watchdog, as any chunk of a started stream does.
    assert anyio.current_time() - t0 == exactly(6.0)
    assert info.value.partial_text == "one two "
    assert provider.closed[0] - t0 == exactly(6.0)
    assert len(provider.started) == 1  # nothing replayed after the first chunk


async def test_a_slow_consumer_is_not_an_idle_provider() -> None:
    provider = Scripted("p", ["a", "b", "c", FINISH])
    async with client(provider, stream_idle_timeout=1.0) as llm, llm.generate_stream("hi") as stream:
        texts = []
        async for chunk in stream:
            texts.append(chunk.text)
            await anyio.sleep(10)  # the consumer, not the provider, is slow
    assert texts == ["a", "b", "c", ""]
    assert stream.response is not None and stream.response.content == "abc"


async def test_the_per_attempt_timeout_fails_the_attempt_and_falls_back() -> None:
    slow = Scripted("slow", SILENT, timeout=1.5)
    backup = Scripted("backup", [0.5, "late", FINISH])
    async with client(slow, backup, fallback_timeout=10.0) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert backup.started[0] - t0 == exactly(1.5)
    assert response.content == "late"
    assert response.attempts[0].outcome == "failed"
    assert "provider's timeout" in (response.attempts[0].error or "")


def test_an_attempts_limit_is_its_configs_timeout_or_the_providers_own() -> None:
    assert attempt_timeout(Scripted("own", timeout=1.5)) == 1.5
    assert attempt_timeout(Scripted("none")) == math.inf  # only the call's deadline bounds it
    for unusable in (0, -2.0, float("nan"), True, "3"):
        provider = Scripted("odd")
        provider.timeout = unusable  # type: ignore[assignment]
        assert attempt_timeout(provider) == math.inf
    built = AnthropicProvider(ProviderConfig(name="c", kind="anthropic", api_key="k", timeout=7.0))
    assert attempt_timeout(built) == 7.0


class Unready(Scripted):
    """A user's provider whose optional members are properties that fail."""

    @property
    def timeout(self) -> float:  # type: ignore[override]
        raise RuntimeError("not configured yet")

    @property
    def config(self) -> object:
        raise RuntimeError("not configured yet")


async def test_an_optional_member_that_fails_to_read_counts_as_not_declared() -> None:
    provider = Unready("unready")
    assert attempt_timeout(provider) == math.inf
    async with client(provider) as llm:
        assert await llm.generate_text("hi") == "hello"


async def test_the_per_attempt_timeout_covers_the_stream_after_its_first_chunk() -> None:
    slow = Scripted("slow", ["a", 1.0, "b", 3600], timeout=2.0)
    async with client(slow, stream_idle_timeout=60.0) as llm:
        t0 = anyio.current_time()
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_text("hi")
    assert anyio.current_time() - t0 == exactly(2.0)
    assert info.value.partial_text == "ab"


async def test_the_call_deadline_before_the_first_chunk() -> None:
    primary, backup = Scripted("primary", SILENT), Scripted("backup", SILENT)
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        with pytest.raises(LLMTimeoutError):
            await llm.generate_text("hi", timeout=3.0)
    assert anyio.current_time() - t0 == exactly(3.0)
    assert [c - t0 for c in primary.closed + backup.closed] == [exactly(3.0), exactly(3.0)]


async def test_the_call_deadline_after_the_first_chunk() -> None:
    provider = Scripted("p", ["a", 1.0, "b", 1.0, "c", 3600])
    async with client(provider) as llm:
        t0 = anyio.current_time()
        with pytest.raises(LLMTimeoutError) as info:
            await llm.generate_text("hi", timeout=4.0)
    assert anyio.current_time() - t0 == exactly(4.0)
    assert info.value.provider == "p"
    assert isinstance(info.value, TimeoutError)


async def test_retry_after_is_waited_exactly() -> None:
    provider = Scripted("p", [0.1, RateLimitError("slow down", retry_after=1.5)], ["ok", FINISH])
    async with client(provider, max_retries=2) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert [s - t0 for s in provider.started] == [exactly(0.0), exactly(1.6)]
    assert [a.outcome for a in response.attempts] == ["failed", "won"]


async def test_backoff_follows_the_retry_policy_given_to_the_configuration() -> None:
    busy = ProviderUnavailableError("busy")
    provider = Scripted("p", [busy], [busy], ["ok", FINISH])
    retry = RetryHandler(max_retries=2, base_delay=0.5, max_delay=8.0, rng=lambda low, high: high)
    async with client(provider, retry=retry) as llm:
        t0 = anyio.current_time()
        assert await llm.generate_text("hi") == "ok"
    assert [s - t0 for s in provider.started] == [exactly(0.0), exactly(0.5), exactly(1.5)]


async def test_retries_wait_until_no_untried_provider_is_left() -> None:
    busy = ProviderUnavailableError("busy")
    primary, backup = Scripted("primary", [busy]), Scripted("backup", [0.25, busy])
    retry = RetryHandler(max_retries=1, base_delay=1.0, rng=lambda low, high: high)
    async with client(primary, backup, retry=retry) as llm:
        t0 = anyio.current_time()
        with pytest.raises(AllProvidersFailedError) as info:
            await llm.generate_text("hi")
    assert [s - t0 for s in primary.started] == [exactly(0.0), exactly(1.25)]
    assert [s - t0 for s in backup.started] == [exactly(0.0), exactly(1.25)]
    assert len(info.value.errors) == 4


async def test_a_retry_past_the_deadline_fails_at_once() -> None:
    provider = Scripted("p", [RateLimitError("slow down", retry_after=30)])
    async with client(provider, max_retries=3) as llm:
        t0 = anyio.current_time()
        with pytest.raises(RateLimitError):
            await llm.generate_text("hi", timeout=10)
    assert anyio.current_time() == exactly(t0)
    assert len(provider.started) == 1


async def test_client_errors_are_never_retried() -> None:
    provider = Scripted("p", [InvalidRequestError("bad", status_code=400)])
    async with client(provider, max_retries=3) as llm:
        with pytest.raises(InvalidRequestError):
            await llm.generate_text("hi")
    assert len(provider.started) == 1


async def test_cooldown_opens_probes_and_closes_on_the_race_clock() -> None:
    busy = ProviderUnavailableError("busy")
    primary = Scripted("primary", [busy], [busy], [busy], ["healed", FINISH])
    backup = Scripted("backup", ["backup", FINISH])
    tracker = CooldownTracker(failures=3, cooldown=30.0)
    async with client(primary, backup, cooldown=tracker) as llm:
        for _ in range(3):
            assert await llm.generate_text("hi") == "backup"
        response = await llm.generate_response("hi")
        assert outcomes(response) == [("primary", "skipped-cooldown"), ("backup", "won")]
        assert tracker.snapshot() == {"primary": 30.0}
        await anyio.sleep(29.9)
        assert tracker.cooling("primary")
        await anyio.sleep(0.1)
        assert not tracker.cooling("primary")
        response = await llm.generate_response("hi")  # the half-open probe
        assert (response.provider, response.content) == ("primary", "healed")
        assert tracker.acquire("primary") == "closed"
    assert len(primary.started) == 4


async def test_a_failed_probe_opens_the_breaker_again_for_a_whole_cooldown() -> None:
    busy = ProviderUnavailableError("busy")
    primary = Scripted("primary", [busy])
    backup = Scripted("backup", ["backup", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=10.0)
    async with client(primary, backup, cooldown=tracker) as llm:
        await llm.generate_text("hi")
        await anyio.sleep(10)
        await llm.generate_text("hi")  # the probe fails
        assert tracker.snapshot() == {"primary": 10.0}
    assert len(primary.started) == 2


@pytest.mark.parametrize("script", [SILENT, ["a", 3600]], ids=["mid-race", "mid-read"])
async def test_a_stream_closed_from_another_task_ends_its_reader_at_once(script: list[Step]) -> None:
    primary, backup = Scripted("primary", script), Scripted("backup", SILENT)
    async with client(primary, backup) as llm:
        stream = llm.generate_stream("hi")
        t0 = anyio.current_time()

        async def close_later() -> None:
            await anyio.sleep(3.0)
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_later)
            with pytest.raises(LLMException, match="closed"):
                async for _ in stream:
                    pass
            assert anyio.current_time() - t0 == exactly(3.0)
    assert [c - t0 for c in primary.closed] == [exactly(3.0)]
    assert stream.response is None


async def test_closing_the_client_from_another_task_ends_its_calls() -> None:
    provider = Scripted("p", ["a", 3600])
    llm = client(provider)
    async with anyio.create_task_group() as tg:
        tg.start_soon(llm.__aenter__)
    t0 = anyio.current_time()
    async with anyio.create_task_group() as tg:

        async def close_later() -> None:
            await anyio.sleep(1.0)
            await llm.aclose()

        tg.start_soon(close_later)
        with pytest.raises(LLMException, match="closed"):
            await llm.generate_text("hi")
    assert [c - t0 for c in provider.closed] == [exactly(1.0)]


async def test_two_attempts_ready_in_the_same_instant_one_wins_the_other_is_closed() -> None:
    primary = Scripted("primary", [2.5, "primary", FINISH])
    backup = Scripted("backup", [0.5, "backup", FINISH])  # hedged at 2.0: ready at 2.5 too
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert response.content in ("primary", "backup")
    assert [(a.outcome) for a in response.attempts].count("won") == 1
    assert [c - t0 for c in primary.closed + backup.closed] == [exactly(2.5), exactly(2.5)]


async def test_a_failure_right_after_the_closing_chunk_still_interrupts_the_stream() -> None:
    provider = Scripted("p", ["a", FINISH, ProviderUnavailableError("broken after the end")])
    async with client(provider) as llm, llm.generate_stream("hi") as stream:
        seen = []
        with pytest.raises(StreamInterruptedError) as info:
            async for chunk in stream:
                seen.append((chunk.text, chunk.finish_reason))
    assert seen == [("a", None), ("", "stop")]
    assert info.value.partial_text == "a"
    assert "broken after the end" in str(info.value)


async def test_a_call_that_asks_for_reasoning_waits_the_reasoning_fallback_timeout() -> None:
    primary = Scripted("primary", SILENT)
    backup = Scripted("backup", [0.5, "from backup", FINISH])
    for provider in (primary, backup):
        provider.capabilities = frozenset({"reasoning"})  # type: ignore[attr-defined]
    async with client(primary, backup, reasoning_fallback_timeout=30.0) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("think hard", reasoning_effort="high")
    assert response.content == "from backup"
    assert backup.started[0] - t0 == exactly(30.0)
    assert response.attempts[1].reason == "hedge-reasoning 30 s"


async def test_reasoning_effort_none_keeps_the_fallback_timeout() -> None:
    primary = Scripted("primary", SILENT)
    backup = Scripted("backup", [0.5, "from backup", FINISH])
    async with client(primary, backup) as llm:
        t0 = anyio.current_time()
        await llm.generate_response("quick", reasoning_effort="none")
    assert backup.started[0] - t0 == exactly(2.0)
