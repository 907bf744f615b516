"""Rate-limit budgets and the scoped breaker in the race, in virtual time (trio's MockClock).

Scripted providers carry a `ProviderConfig` (its `rpm`, `tpm`, `max_tokens`) and may hand
response headers to `REPLY_HEADERS` as `send()` does, so budgets, `retry-after` and header
ceilings are asserted to the microsecond: a requests budget of `rpm` holds a burst of
`burst(rpm)` and regains `refill_rate(rpm)` per second.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import anyio
import pytest
import trio.testing

from llmcomm import CooldownTracker, ProviderConfig, ProviderUnavailableError, RateLimitError, Request, StreamChunk
from llmcomm._routing._state import LocalState, StateBackend
from llmcomm._routing._state._types import burst, refill_rate
from llmcomm.providers._send import REPLY_HEADERS

from .routing_fakes import FINISH, Scripted, Step, client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


def exactly(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


def outcomes(response: object) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in response.attempts]  # type: ignore[attr-defined]


class Limited(Scripted):
    """A scripted provider with a configuration (budgets) that reports `headers` per attempt, as `send()` does."""

    def __init__(
        self,
        name: str,
        *scripts: Sequence[Step],
        rpm: int | None = None,
        tpm: int | None = None,
        headers: Sequence[Mapping[str, str]] = (),
    ) -> None:
        super().__init__(name, *scripts)
        self.config = ProviderConfig(
            name=name,
            kind="openai",
            model="m",
            base_url=f"http://127.0.0.1:9/{name}/v1",
            api_key="sk-x",
            rpm=rpm,
            tpm=tpm,
        )
        self.headers = list(headers)

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        if self.headers and (sink := REPLY_HEADERS.get()) is not None:
            sink(self.headers.pop(0))
        async for chunk in super().stream(request):
            yield chunk


async def test_a_provider_out_of_requests_is_skipped_and_the_next_serves() -> None:
    limited = Limited("limited", ["a", FINISH], rpm=60)
    spare = Limited("spare", ["b", FINISH])
    async with client(limited, spare) as llm:
        t0 = anyio.current_time()
        served = [(await llm.generate_response("hi")).provider for _ in range(int(burst(60)))]
        response = await llm.generate_response("hi")
        assert anyio.current_time() - t0 == exactly(0.0)  # skipped before sending: no wait
        assert llm.manager.cooldown.snapshot() == {}  # a skip says nothing of the provider's health
    assert served == ["limited"] * 3
    assert outcomes(response) == [("limited", "skipped-rate-limit"), ("spare", "won")]
    skipped = response.attempts[0]
    assert skipped.error is not None and "requests per minute" in skipped.error and "room again in" in skipped.error
    assert len(limited.started) == 3  # the fourth request was never sent


async def test_when_every_provider_is_out_the_call_waits_for_the_first_to_have_room() -> None:
    slow = Limited("slow", ["a", FINISH], rpm=60)
    fast = Limited("fast", ["b", FINISH], rpm=120)
    async with client(slow, fast) as llm:
        for _ in range(int(burst(60) + burst(120))):
            await llm.generate_response("hi")
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
        elapsed = anyio.current_time() - t0
    assert elapsed == exactly(1 / refill_rate(120))  # fast regains one request first
    assert response.provider == "fast"
    assert outcomes(response) == [
        ("slow", "skipped-rate-limit"),
        ("fast", "skipped-rate-limit"),
        ("slow", "skipped-rate-limit"),
        ("fast", "won"),
    ]


async def test_alone_and_out_of_budget_the_call_waits_then_is_served() -> None:
    only = Limited("only", ["a", FINISH], rpm=60)
    async with client(only) as llm:
        for _ in range(3):
            await llm.generate_response("hi")
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
        assert anyio.current_time() - t0 == exactly(1 / refill_rate(60))
    assert outcomes(response) == [("only", "skipped-rate-limit"), ("only", "won")]


@pytest.mark.parametrize("providers", [1, 2])
async def test_out_of_budget_past_the_deadline_fails_at_once_saying_when(providers: int) -> None:
    limited = [Limited(f"p{i}", ["a", FINISH], rpm=60) for i in range(providers)]
    async with client(*limited, timeout=0.5) as llm:
        for _ in range(3 * providers):
            await llm.generate_response("hi")
        t0 = anyio.current_time()
        with pytest.raises(RateLimitError) as caught:
            await llm.generate_response("hi")
        assert anyio.current_time() - t0 == exactly(0.0)  # no pointless wait for the deadline
    error = caught.value
    assert error.retry_after == pytest.approx(1 / refill_rate(60))
    assert "out of its rate-limit budget" in error.message and "raise the call's timeout" in error.message
    assert [len(p.started) for p in limited] == [3] * providers


async def test_a_retry_after_keeps_the_provider_off_until_then() -> None:
    headers = [{"retry-after": "5"}]
    limited = Limited("limited", [RateLimitError("slow down", retry_after=5.0)], ["a", FINISH], headers=headers)
    spare = Limited("spare", ["b", FINISH])
    async with client(limited, spare) as llm:
        t0 = anyio.current_time()
        first = await llm.generate_response("hi")
        await anyio.sleep(4.9)
        held = await llm.generate_response("hi")
        await anyio.sleep(0.2)
        back = await llm.generate_response("hi")
        assert anyio.current_time() - t0 == exactly(5.1)
    assert outcomes(first) == [("limited", "failed"), ("spare", "won")]
    assert outcomes(held) == [("limited", "skipped-rate-limit"), ("spare", "won")]
    assert held.attempts[0].error is not None and "retry-after" in held.attempts[0].error
    assert outcomes(back) == [("limited", "won")]
    assert len(limited.started) == 2


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_a_remaining_count_of_zero_holds_the_provider_until_its_reset(wire: str) -> None:
    if wire == "openai":
        seen = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    else:
        reset = datetime.fromtimestamp(time.time() + 2.0, UTC).isoformat().replace("+00:00", "Z")
        seen = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
    limited = Limited("limited", ["a", FINISH], headers=[seen])
    spare = Limited("spare", ["b", FINISH])
    async with client(limited, spare) as llm:
        assert (await llm.generate_response("hi")).provider == "limited"
        held = await llm.generate_response("hi")
        await anyio.sleep(2.1)
        back = await llm.generate_response("hi")
    assert outcomes(held) == [("limited", "skipped-rate-limit"), ("spare", "won")]
    assert outcomes(back) == [("limited", "won")]


async def test_tokens_are_charged_at_an_estimate_and_settled_to_the_real_usage() -> None:
    # max_tokens 100 makes each estimate ~101 tokens; the real usage is 5 (3 in, 2 out). Without
    # settling, the 500-token burst of tpm=10000 would hold 4 calls; settled, it holds many more.
    limited = Limited("limited", ["a", FINISH], tpm=10_000)
    spare = Limited("spare", ["b", FINISH])
    assert burst(10_000) == 500
    async with client(limited, spare) as llm:
        served = [(await llm.generate_response("hi", max_tokens=100)).provider for _ in range(20)]
    assert served == ["limited"] * 20


async def test_a_failed_attempt_gives_its_estimate_back() -> None:
    failing = Limited("limited", [RateLimitError("busy", retryable=False)], tpm=10_000)
    spare = Limited("spare", ["b", FINISH])
    async with client(failing, spare, cooldown_failures=100) as llm:
        served = [(await llm.generate_response("hi", max_tokens=400)).provider for _ in range(6)]
    assert served == ["spare"] * 6
    assert len(failing.started) == 6  # never skipped: nothing it failed to do was counted


async def test_the_breaker_is_kept_by_endpoint_and_model_not_by_name() -> None:
    # two names for one endpoint, key and model: one breaker
    first = Limited("first", [ProviderUnavailableError("down")])
    second = Limited("second", [ProviderUnavailableError("down")], ["b", FINISH])
    second.config = first.config
    third = Limited("third", ["c", FINISH])
    tracker = CooldownTracker(failures=1, cooldown=30.0)
    async with client(first, second, third, cooldown=tracker) as llm:
        assert (await llm.generate_response("hi")).provider == "third"
        response = await llm.generate_response("hi")
        assert set(tracker.snapshot()) == {"first", "second"}
        assert isinstance(tracker.state, LocalState)
    assert outcomes(response) == [("first", "skipped-cooldown"), ("second", "skipped-cooldown"), ("third", "won")]


class _Broken:
    """A state whose budgets raise (a bug, an unexpected client error); the rest is a `LocalState`."""

    def __init__(self) -> None:
        self.local = LocalState()

    def __getattr__(self, name: str) -> object:
        return getattr(self.local, name)

    async def take(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("redis://:pw@host broke")


async def test_a_state_that_raises_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    limited = Limited("limited", ["a", FINISH], rpm=60)
    tracker = CooldownTracker()
    tracker.use_state(cast(StateBackend, _Broken()))
    async with client(limited, cooldown=tracker) as llm:
        texts = [await llm.generate_text("hi") for _ in range(5)]
    assert texts == ["a"] * 5
    assert "rate-limit state failed (RuntimeError)" in caplog.text
    assert "pw@" not in caplog.text


async def test_a_wait_for_budget_is_not_counted_as_a_retry() -> None:
    # three calls spend the burst; the fourth waits for room, fails retryably, and still has its one retry
    limited = Limited("only", *[["a", FINISH]] * 3, [ProviderUnavailableError("blip")], ["b", FINISH], rpm=60)
    async with client(limited, max_retries=1) as llm:
        for _ in range(3):
            await llm.generate_response("hi")
        response = await llm.generate_response("hi")
    assert response.content == "b"
    assert [o for _, o in outcomes(response)] == [
        "skipped-rate-limit",
        "failed",
        "skipped-rate-limit",
        "won",
    ]
