"""Rate-limit headers over real HTTP, on both wires, asyncio and trio: what the provider's
response says (`send()` hands the headers to the attempt) keeps the next calls off it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import pytest

from llmcomm import (
    ConfigurationError,
    CooldownTracker,
    LLMCommunication,
    ProviderConfig,
    RateLimitError,
)
from llmcomm._routing._state import LocalState
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

pytestmark = pytest.mark.anyio

Wire = Literal["anthropic", "openai"]


def outcomes(response: object) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in response.attempts]  # type: ignore[attr-defined]


def exhausted(wire: Wire, seconds: float) -> dict[str, str]:
    """Headers saying no request is left for `seconds`, as `wire`'s provider sends them."""
    if wire == "openai":
        return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{seconds:g}s"}
    reset = datetime.fromtimestamp(time.time() + seconds, UTC).isoformat().replace("+00:00", "Z")
    return {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_a_429_with_retry_after_keeps_the_next_calls_off_the_provider(server: FakeServer, wire: Wire) -> None:
    server.route(model="primary-model", script=Script(status=429, retry_after=30))
    server.route(model="backup-model", script=Script(text="from backup"))
    primary = provider(server, wire, name="primary", model="primary-model")
    backup = provider(server, wire, name="backup", model="backup-model")
    async with LLMCommunication(config(primary, backup)) as llm:
        first = await llm.generate_response("hi")
        second = await llm.generate_response("hi")
        async with llm.generate_stream("hi") as stream:
            streamed = "".join([chunk.text async for chunk in stream])
    assert outcomes(first) == [("primary", "failed"), ("backup", "won")]
    assert outcomes(second) == [("primary", "skipped-rate-limit"), ("backup", "won")]
    assert streamed == "from backup"
    assert [r.model for r in server.requests] == ["primary-model", "backup-model", "backup-model", "backup-model"]


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_no_requests_left_in_a_successful_reply_holds_the_provider(server: FakeServer, wire: Wire) -> None:
    server.route(model="primary-model", script=Script(text="from primary", headers=tuple(exhausted(wire, 30).items())))
    server.route(model="backup-model", script=Script(text="from backup"))
    primary = provider(server, wire, name="primary", model="primary-model")
    backup = provider(server, wire, name="backup", model="backup-model")
    async with LLMCommunication(config(primary, backup)) as llm:
        first = await llm.generate_response("hi")
        second = await llm.generate_response("hi")
    assert (first.provider, first.content) == ("primary", "from primary")
    assert outcomes(second) == [("primary", "skipped-rate-limit"), ("backup", "won")]
    assert second.content == "from backup"


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_alone_and_held_past_the_deadline_the_call_fails_saying_when(server: FakeServer, wire: Wire) -> None:
    server.default = Script(text="once", headers=tuple(exhausted(wire, 30).items()))
    only = provider(server, wire, name="only")
    async with LLMCommunication(config(only, timeout=5.0)) as llm:
        assert await llm.generate_text("hi") == "once"
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await llm.generate_text("hi")
        assert time.monotonic() - started < 1.0  # refused at once, not at the deadline
    error = caught.value
    assert error.retry_after is not None and 25 < error.retry_after <= 30
    assert "rate-limit budget" in error.message and "timeout" in error.message
    assert server.request_count == 1
    assert error.__cause__ is None


async def test_rpm_holds_a_provider_to_its_burst_then_falls_back(server: FakeServer) -> None:
    server.route(model="limited-model", script=Script(text="limited"))
    server.route(model="backup-model", script=Script(text="backup"))
    limited = provider(server, "openai", name="limited", model="limited-model", rpm=60)
    backup = provider(server, "anthropic", name="backup", model="backup-model")
    tracker = CooldownTracker()
    async with LLMCommunication(config(limited, backup, cooldown=tracker)) as llm:
        texts = [await llm.generate_text("hi") for _ in range(5)]
        assert isinstance(tracker.state, LocalState)
        assert tracker.snapshot() == {}
    assert texts == ["limited"] * 3 + ["backup"] * 2  # a burst of 5% of 60, at least 1: 3


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "60", float("nan")])
@pytest.mark.parametrize("field", ["rpm", "tpm"])
def test_a_budget_that_is_not_a_positive_whole_number_is_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ProviderConfig(name="p", kind="openai", **{field: value})  # type: ignore[arg-type]
    assert f"{field} of provider 'p' must be a positive whole number" in str(caught.value)
    assert "leave it None" in str(caught.value)


def test_a_budget_shows_in_the_provider_repr() -> None:
    shown = repr(ProviderConfig(name="p", kind="openai", rpm=600, tpm=90_000))
    assert "rpm=600" in shown and "tpm=90000" in shown
    assert "rpm" not in repr(ProviderConfig(name="p", kind="openai"))
