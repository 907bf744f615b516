"""A call never fails without sending a request merely because every provider is cooling down.

It probes the provider whose cooldown ends first, one probe per provider at a
time; concurrent calls wait for that probe's outcome within their deadline, then
go or fail. In virtual time (trio's MockClock), with scripted providers.
"""

from __future__ import annotations

import anyio
import pytest
import trio.testing

from llmcomm import (
    AuthenticationError,
    CooldownTracker,
    LLMException,
    LLMTimeoutError,
    ProviderUnavailableError,
)

from .routing_fakes import FINISH, Scripted, client

pytestmark = pytest.mark.anyio


def busy() -> ProviderUnavailableError:
    return ProviderUnavailableError("busy")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


async def test_the_only_provider_cooling_down_is_probed_not_skipped() -> None:
    provider = Scripted("only", [busy()], ["recovered", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    async with client(provider, cooldown=tracker) as llm:
        with pytest.raises(ProviderUnavailableError):
            await llm.generate_text("hi")
        assert tracker.cooling("only")
        assert await llm.generate_text("hi") == "recovered"  # 0 s later: probed at once
        assert not tracker.cooling("only")
    assert len(provider.started) == 2


async def test_after_an_auth_failure_the_next_call_still_tries() -> None:
    provider = Scripted("only", [AuthenticationError("bad key", status_code=401)], ["fixed", FINISH])
    tracker = CooldownTracker(auth_cooldown=300.0)
    async with client(provider, cooldown=tracker) as llm:
        with pytest.raises(AuthenticationError):
            await llm.generate_text("hi")
        assert await llm.generate_text("hi") == "fixed"


async def test_concurrent_calls_wait_for_the_probe_and_go_when_it_heals() -> None:
    provider = Scripted("only", [busy()], [1.0, "probe", FINISH], ["after", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    results: dict[str, tuple[str, float]] = {}
    async with client(provider, cooldown=tracker) as llm:
        with pytest.raises(ProviderUnavailableError):
            await llm.generate_text("hi")
        t0 = anyio.current_time()

        async def call(name: str) -> None:
            text = await llm.generate_text("hi")
            results[name] = (text, anyio.current_time() - t0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "probe")
            await anyio.sleep(0.1)
            tg.start_soon(call, "waiter")
    assert results["probe"] == ("probe", exactly(1.0))
    assert results["waiter"] == ("after", exactly(1.0))
    # The waiter sent nothing until the probe's first chunk closed the breaker.
    assert [s - t0 for s in provider.started[1:]] == [exactly(0.0), exactly(1.0)]


async def test_concurrent_calls_fail_with_the_probes_error_without_sending() -> None:
    provider = Scripted("only", [busy()], [2.0, ProviderUnavailableError("still down", status_code=503)])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    errors: dict[str, tuple[LLMException, float]] = {}
    async with client(provider, cooldown=tracker) as llm:
        with pytest.raises(ProviderUnavailableError):
            await llm.generate_text("hi")
        t0 = anyio.current_time()

        async def call(name: str) -> None:
            try:
                await llm.generate_text("hi")
            except LLMException as exc:
                errors[name] = (exc, anyio.current_time() - t0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "probe")
            await anyio.sleep(0.5)
            tg.start_soon(call, "waiter")
    assert len(provider.started) == 2  # the first failure and the probe: the waiter sent nothing
    waiter, at = errors["waiter"]
    assert isinstance(waiter, ProviderUnavailableError)
    assert "probe" in str(waiter) and "still down" in str(waiter)
    assert waiter.status_code == 503
    assert at == exactly(2.0)
    assert errors["probe"][1] == exactly(2.0)


async def test_waiting_for_a_probe_is_bounded_by_the_calls_deadline() -> None:
    provider = Scripted("only", [busy()], [100.0, "slow", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    async with client(provider, cooldown=tracker) as llm:
        with pytest.raises(ProviderUnavailableError):
            await llm.generate_text("hi")
        async with anyio.create_task_group() as tg:
            tg.start_soon(llm.generate_text, "hi")  # the probe, slow
            await anyio.sleep(0.5)
            t0 = anyio.current_time()
            with pytest.raises(LLMTimeoutError):
                await llm.generate_text("hi", timeout=2.0)
            assert anyio.current_time() - t0 == exactly(2.0)
            tg.cancel_scope.cancel()
    assert len(provider.started) == 2


async def test_the_provider_whose_cooldown_ends_first_is_probed() -> None:
    primary = Scripted("primary", [busy()], [busy()], ["primary", FINISH])
    backup = Scripted("backup", [busy()], ["backup", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    async with client(primary, backup, cooldown=tracker) as llm:
        with pytest.raises(LLMException):
            await llm.generate_text("hi")  # both fail: the primary first, the backup 0 s later
        await anyio.sleep(5)
        with pytest.raises(LLMException):
            await llm.generate_text("hi", provider="primary")  # forced: the primary cools 5 s longer
        response = await llm.generate_response("hi")
    assert (response.provider, response.content) == ("backup", "backup")
    assert [(a.provider, a.outcome) for a in response.attempts] == [("primary", "skipped-cooldown"), ("backup", "won")]
