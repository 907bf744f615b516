"""The fallback race, retries, deadlines, the idle watchdog and cooldown, against real TCP.

The rules themselves are asserted exactly in virtual time (tests/test_routing_race.py,
tests/test_routing_probe.py); here they are checked over real HTTP on both wires, with
wall-clock bounds only where the wire is what is being tested (the hedge, pings).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import anyio
import pytest

from llmcomm import (
    AllProvidersFailedError,
    AuthenticationError,
    CooldownTracker,
    InvalidRequestError,
    LLMCommunication,
    LLMTimeoutError,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
)
from llmcomm.testing import FakeServer, Script

from .helpers import KEY, config, provider, refused_url

pytestmark = pytest.mark.anyio

SILENT = Script(text="too late", delay_before_first_token=30, keepalive_interval=0.2)


def pair(server: FakeServer, **options: object) -> tuple[ProviderConfig, ProviderConfig]:
    """A primary (Anthropic wire, model "primary") and a backup (OpenAI wire, model "backup")."""
    return (
        provider(server, "anthropic", name="primary", model="primary", **options),
        provider(server, "openai", name="backup", model="backup", **options),
    )


def by_model(server: FakeServer, model: str) -> list[float]:
    return [r.received_at for r in server.requests if r.model == model]


async def test_instant_failure_falls_back_at_once(server: FakeServer) -> None:
    server.route(model="primary", script=Script(status=529))
    server.route(model="backup", script=Script(text="from backup"))
    async with LLMCommunication(config(*pair(server))) as llm:
        await llm.generate_text("warm up", provider="backup")  # connections and SDK paths warm
        started = time.monotonic()
        response = await llm.generate_response("hi")
        elapsed = time.monotonic() - started
    assert response.content == "from backup"
    assert response.provider == "backup"
    assert [(a.provider, a.outcome) for a in response.attempts] == [("primary", "failed"), ("backup", "won")]
    assert response.attempts[0].error is not None and "ProviderUnavailableError" in response.attempts[0].error
    # The backup starts as soon as the primary's 529 arrives, not after the 2 s hedge.
    assert elapsed < 0.5
    (primary_at,) = by_model(server, "primary")
    backup_at = by_model(server, "backup")[-1]
    assert backup_at - primary_at < 0.2


@pytest.mark.parametrize("status", [401, 429])
async def test_fallback_on_auth_and_rate_limit(server: FakeServer, status: int) -> None:
    server.route(model="primary", script=Script(status=status))
    server.route(model="backup", script=Script(text="ok"))
    async with LLMCommunication(config(*pair(server))) as llm:
        assert await llm.generate_text("hi") == "ok"


async def test_connection_refused_falls_back(server: FakeServer) -> None:
    down = ProviderConfig(name="down", kind="anthropic", api_key=KEY, base_url=refused_url())
    up = provider(server, "openai", name="up")
    async with LLMCommunication(config(down, up)) as llm:
        started = time.monotonic()
        response = await llm.generate_response("hi")
    assert time.monotonic() - started < 1.0
    assert [(a.provider, a.outcome) for a in response.attempts] == [("down", "failed"), ("up", "won")]


@pytest.mark.slow
async def test_silent_primary_is_raced_and_closed(server: FakeServer) -> None:
    server.route(model="primary", script=SILENT)
    server.route(model="backup", script=Script(text="backup wins"))
    async with LLMCommunication(config(*pair(server), fallback_timeout=2.0)) as llm:
        started = time.monotonic()
        response = await llm.generate_response("hi")
        elapsed = time.monotonic() - started
        primary = next(r for r in server.requests if r.model == "primary")
        await server.wait_closed(primary, timeout=0.5)
    assert response.content == "backup wins"
    assert 1.8 <= elapsed <= 2.8
    assert [(a.provider, a.outcome) for a in response.attempts] == [("primary", "cancelled"), ("backup", "won")]
    (backup_at,) = by_model(server, "backup")
    assert 1.8 <= backup_at - primary.received_at <= 2.6
    assert primary.client_closed_at is not None
    assert primary.client_closed_at - started <= elapsed + 0.5


@pytest.mark.slow
async def test_primary_answering_late_still_wins(server: FakeServer) -> None:
    server.route(model="primary", script=Script(text="primary wins", delay_before_first_token=2.3))
    server.route(model="backup", script=Script(text="backup", delay_before_first_token=10))
    async with LLMCommunication(config(*pair(server), fallback_timeout=2.0)) as llm:
        started = time.monotonic()
        response = await llm.generate_response("hi")
        elapsed = time.monotonic() - started
        backup = next(r for r in server.requests if r.model == "backup")
        await server.wait_closed(backup, timeout=0.5)
    assert response.content == "primary wins"
    assert 2.1 <= elapsed <= 3.0
    assert [(a.provider, a.outcome) for a in response.attempts] == [("primary", "won"), ("backup", "cancelled")]
    assert response.time_to_first_token is not None and 2.1 <= response.time_to_first_token <= 3.0


@pytest.mark.slow
async def test_hedged_stream_closed_from_another_task(server: FakeServer) -> None:
    """A user's generator over a raced stream, closed by a different task (a web framework's shape)."""
    server.route(model="primary", script=SILENT)
    server.route(model="backup", script=Script(tokens=500, token_delay=0.01))
    async with LLMCommunication(config(*pair(server), fallback_timeout=0.5)) as llm:

        async def body() -> AsyncGenerator[str]:
            async with llm.generate_stream("hi") as stream:
                async for chunk in stream:
                    yield chunk.text

        generator = body()
        assert await generator.__anext__() == "tok0 "
        async with anyio.create_task_group() as tg:
            tg.start_soon(generator.aclose)
        for request in server.requests:
            await server.wait_closed(request, timeout=0.5)
    assert server.open_connections == 0


async def test_retry_honours_retry_after(server: FakeServer) -> None:
    server.enqueue(Script(status=429, retry_after=0.3), Script(text="after the wait"))
    async with LLMCommunication(config(provider(server), max_retries=2)) as llm:
        response = await llm.generate_response("hi")
    assert response.content == "after the wait"
    assert server.request_count == 2  # one retry owner: the SDK retried nothing
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.3  # the header's wait, not the jittered backoff
    assert [a.outcome for a in response.attempts] == ["failed", "won"]


async def test_retry_after_ms_is_honoured(server: FakeServer) -> None:
    server.enqueue(Script(status=503, retry_after_ms=250), Script(text="ok"))
    async with LLMCommunication(config(provider(server, "openai"), max_retries=1)) as llm:
        assert await llm.generate_text("hi") == "ok"
    assert server.request_count == 2
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.25


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_never_retried(server: FakeServer, status: int) -> None:
    server.default = Script(status=status)
    async with LLMCommunication(config(provider(server), max_retries=3)) as llm:
        started = time.monotonic()
        with pytest.raises((InvalidRequestError, AuthenticationError)):
            await llm.generate_text("hi")
    assert time.monotonic() - started < 1.0
    assert server.request_count == 1


async def test_exhausted_quota_is_not_retried(server: FakeServer) -> None:
    server.default = Script(status=429, error_code="insufficient_quota")
    async with LLMCommunication(config(provider(server, "openai"), max_retries=3)) as llm:
        with pytest.raises(RateLimitError, match="quota") as info:
            await llm.generate_text("hi")
    assert not info.value.retryable
    assert server.request_count == 1


async def test_retry_waits_until_no_untried_provider_is_left(server: FakeServer) -> None:
    server.route(model="primary", script=Script(status=500))
    server.route(model="backup", script=Script(status=503))
    async with LLMCommunication(config(*pair(server), max_retries=2, retry_base_delay=0.01)) as llm:
        with pytest.raises(AllProvidersFailedError) as info:
            await llm.generate_text("hi")
    models = [r.model for r in server.requests]
    assert models == ["primary", "backup"] * 3
    assert len(info.value.errors) == 6
    assert all(isinstance(e, ProviderUnavailableError) for e in info.value.errors)


async def test_retry_after_past_the_deadline_fails_now(server: FakeServer) -> None:
    server.default = Script(status=429, retry_after=30)
    async with LLMCommunication(config(provider(server), max_retries=2)) as llm:
        with pytest.raises(RateLimitError):
            await llm.generate_text("hi", timeout=2.0)
    assert server.request_count == 1


async def test_one_provider_raises_its_own_error(server: FakeServer) -> None:
    server.default = Script(status=401)
    async with LLMCommunication(config(provider(server))) as llm:
        with pytest.raises(AuthenticationError):
            await llm.generate_text("hi")


async def test_all_failed_lists_every_attempt(server: FakeServer) -> None:
    server.route(model="primary", script=Script(status=401))
    server.route(model="backup", script=Script(status=400))
    async with LLMCommunication(config(*pair(server))) as llm:
        with pytest.raises(AllProvidersFailedError) as info:
            await llm.generate_text("hi")
    error = info.value
    assert [type(e) for e in error.errors] == [AuthenticationError, InvalidRequestError]
    assert not isinstance(error, BaseExceptionGroup)
    assert error.request_id is not None


async def test_deadline_covers_the_whole_call(server: FakeServer) -> None:
    server.default = Script(chunks=("a", "b"), stall_after=1)
    async with LLMCommunication(config(provider(server))) as llm:
        with pytest.raises(LLMTimeoutError) as info:
            await llm.generate_text("hi", timeout=0.5)
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert isinstance(info.value, TimeoutError)


async def test_deadline_before_first_token_closes_every_attempt(server: FakeServer) -> None:
    server.default = SILENT
    async with LLMCommunication(config(*pair(server), fallback_timeout=0.2)) as llm:
        with pytest.raises(LLMTimeoutError):
            await llm.generate_text("hi", timeout=0.6)
        assert server.request_count == 2
        for request in server.requests:
            await server.wait_closed(request, timeout=0.5)


async def test_slow_consumer_is_not_an_idle_provider(server: FakeServer) -> None:
    server.default = Script(tokens=600)
    async with LLMCommunication(config(provider(server), stream_idle_timeout=0.3)) as llm:
        count = 0
        async with llm.generate_stream("hi") as stream:
            async for _chunk in stream:
                count += 1
                if count == 1:
                    await anyio.sleep(0.6)  # the buffer fills up; the provider is not to blame
    assert count == 601


async def test_cancellation_is_reraised_unchanged(server: FakeServer) -> None:
    server.default = SILENT
    async with LLMCommunication(config(provider(server))) as llm:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await llm.generate_text("hi")

                tg.start_soon(call)
                await server.wait_for_requests(1)
                scope.cancel()
        assert scope.cancelled_caught
        await server.wait_closed(server.requests[-1], timeout=0.5)


async def test_cooldown_skips_a_failing_provider_then_probes(server: FakeServer) -> None:
    now = [1000.0]
    server.route(model="primary", script=Script(status=503))
    server.route(model="backup", script=Script(text="ok"))
    tracker = CooldownTracker(failures=3, cooldown=30, clock=lambda: now[0])
    async with LLMCommunication(config(*pair(server), cooldown=tracker)) as llm:
        assert llm.manager.cooldown is tracker
        for _ in range(3):
            assert await llm.generate_text("hi") == "ok"
        response = await llm.generate_response("hi")
        assert [(a.provider, a.outcome) for a in response.attempts] == [
            ("primary", "skipped-cooldown"),
            ("backup", "won"),
        ]
        assert len(by_model(server, "primary")) == 3
        now[0] += 31  # cooldown over: one half-open probe
        server.route(model="primary", script=Script(text="healed"))
        assert await llm.generate_text("hi") == "healed"
        assert await llm.generate_text("hi") == "healed"


async def test_auth_failure_cools_down_longer_and_400_never(server: FakeServer) -> None:
    now = [0.0]
    server.route(model="primary", script=Script(status=400))
    server.route(model="backup", script=Script(status=401))
    tracker = CooldownTracker(auth_cooldown=300, clock=lambda: now[0])
    async with LLMCommunication(config(*pair(server), cooldown=tracker)) as llm:
        with pytest.raises(AllProvidersFailedError):
            await llm.generate_text("hi")
        assert not tracker.cooling("primary")
        assert tracker.cooling("backup")
        now[0] += 299
        assert tracker.cooling("backup")
        now[0] += 2
        assert not tracker.cooling("backup")


async def test_forced_provider(server: FakeServer) -> None:
    server.route(model="primary", script=Script(text="p"))
    server.route(model="backup", script=Script(text="b"))
    async with LLMCommunication(config(*pair(server))) as llm:
        assert await llm.generate_text("hi", provider="backup") == "b"
        assert await llm.generate_text("hi") == "p"


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_lone_provider_cooling_down_is_probed_not_refused(server: FakeServer, kind: str) -> None:
    """The legacy shape: one provider, one 529, and the provider recovered by the next call."""
    server.enqueue(Script(status=529), Script(text="recovered"))
    async with LLMCommunication(config(provider(server, kind), cooldown_failures=1)) as llm:  # type: ignore[arg-type]
        with pytest.raises(ProviderUnavailableError):
            await llm.generate_text("hi")
        assert llm.manager.cooldown.cooling(kind)
        assert await llm.generate_text("hi") == "recovered"
        assert not llm.manager.cooldown.cooling(kind)
    assert server.request_count == 2
