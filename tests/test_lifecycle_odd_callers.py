"""Odd callers: providers and hooks that raise what they should not, and providers that never await.

Whatever a provider or a hook does, the call ends with a reply or a typed
`LLMException` (never a hang, an `ExceptionGroup` or a dead client); the hedge and
the deadlines keep firing beside a provider that never yields to the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from llmcomm import (
    HookEvent,
    LLMCommunication,
    LLMException,
    LLMTimeoutError,
    ProviderUnavailableError,
    Request,
    StreamChunk,
    StreamInterruptedError,
)
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider
from .routing_fakes import FINISH, Scripted, client

pytestmark = pytest.mark.anyio


class Abort(BaseException):
    """What a library might raise to unwind: gevent's GreenletExit, a plugin's own exit."""


ODD: dict[str, Callable[[], BaseException]] = {
    "BaseException-subclass": lambda: Abort("odd"),
    "GeneratorExit": GeneratorExit,
    "stray-CancelledError": asyncio.CancelledError,
}


@pytest.mark.parametrize("odd", ODD.values(), ids=ODD.keys())
async def test_an_odd_raise_before_the_first_chunk_falls_back(odd: Callable[[], BaseException]) -> None:
    async with client(Scripted("odd", [0.01, odd()]), Scripted("good", [0.01, "hello", FINISH])) as llm:
        response = await llm.generate_response("hi")
        await anyio.sleep(0.01)  # the client and the caller's task are intact
        assert await llm.generate_text("again") == "hello"
    assert (response.provider, response.content) == ("good", "hello")
    assert response.attempts[0].outcome == "failed"
    assert "fix the provider" in (response.attempts[0].error or "")


@pytest.mark.parametrize("odd", ODD.values(), ids=ODD.keys())
async def test_an_odd_raise_from_the_only_provider_is_typed(odd: Callable[[], BaseException]) -> None:
    async with client(Scripted("odd", [odd()])) as llm:
        with pytest.raises(ProviderUnavailableError) as info:
            await llm.generate_text("hi")
    assert not isinstance(info.value, BaseExceptionGroup)
    assert type(info.value.__cause__) is type(odd())


@pytest.mark.parametrize("odd", ODD.values(), ids=ODD.keys())
async def test_an_odd_raise_after_the_first_chunk_interrupts_the_stream(odd: Callable[[], BaseException]) -> None:
    async with client(Scripted("odd", ["partial ", 0.01, odd()])) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_text("hi")
    assert info.value.partial_text == "partial "


async def test_system_exit_from_a_provider_reaches_the_caller_unwrapped() -> None:
    async with client(Scripted("exits", [0.01, SystemExit(3)]), Scripted("slow", [5, "late", FINISH])) as llm:
        with pytest.raises(SystemExit):
            await llm.generate_text("hi", timeout=2)


class Spinner:
    """A provider that never awaits: keep-alive chunks from a sync loop for `spin` seconds, then text."""

    kind = "custom"
    model = "m"

    def __init__(self, name: str, spin: float, text_spin: bool = False) -> None:
        self.name = name
        self.spin = spin
        self.text_spin = text_spin

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        if self.text_spin:
            yield StreamChunk("first ", self.name, self.model)
        started = time.monotonic()
        while time.monotonic() - started < self.spin:
            yield StreamChunk("x" if self.text_spin else "", self.name, self.model)
        yield StreamChunk("spun", self.name, self.model)
        yield StreamChunk("", self.name, self.model, 1, "stop")

    async def aclose(self) -> None:
        pass


async def _beating(beats: list[float]) -> None:
    while True:
        beats.append(time.monotonic())
        await anyio.sleep(0.01)


def _longest_gap(beats: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(beats))


async def test_a_provider_that_never_awaits_is_hedged_and_the_loop_keeps_running() -> None:
    beats: list[float] = []
    llm = client(Spinner("spin", 1.0), Scripted("good"), fallback_timeout=0.1)
    async with llm, anyio.create_task_group() as tg:
        tg.start_soon(_beating, beats)
        await anyio.sleep(0.05)
        started = time.monotonic()
        response = await llm.generate_response("hi")
        elapsed = time.monotonic() - started
        tg.cancel_scope.cancel()
    assert response.provider == "good"
    assert elapsed < 0.5
    assert _longest_gap(beats) < 0.5  # frozen, the loop would miss every beat for the whole 1 s spin


async def test_the_deadline_fires_beside_a_provider_that_never_awaits() -> None:
    async with client(Spinner("spin", 1.0)) as llm:
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            await llm.generate_text("hi", timeout=0.2)
        assert time.monotonic() - started < 0.5


async def test_the_deadline_fires_while_reading_a_provider_that_never_awaits() -> None:
    beats: list[float] = []
    async with client(Spinner("spin", 1.0, text_spin=True)) as llm, anyio.create_task_group() as tg:
        tg.start_soon(_beating, beats)
        await anyio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            await llm.generate_text("hi", timeout=0.2)
        # The spinner would hold the loop for 1 s: well before that, the deadline fired.
        assert time.monotonic() - started < 0.9
        tg.cancel_scope.cancel()
    assert _longest_gap(beats) < 0.5  # frozen, the loop would miss every beat for the whole 1 s spin


HOOK_KINDS = ("on_request_start", "on_first_token", "on_request_end", "on_error")


@pytest.mark.parametrize("kind", HOOK_KINDS)
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_a_hook_raising_a_base_exception_never_hangs_the_caller(server: FakeServer, kind: str, wire: str) -> None:
    """The FastAPI shape: the client is owned by a lifespan task, the call is made by another."""
    llm = LLMCommunication(config(provider(server, wire)))  # type: ignore[arg-type]

    def hook(event: HookEvent) -> None:
        raise Abort(f"from {event.kind}")

    getattr(llm.hooks, kind)(hook)
    ready, stop = anyio.Event(), anyio.Event()

    async def lifespan() -> None:
        async with llm:
            ready.set()
            await stop.wait()

    results: list[Any] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lifespan)
        await ready.wait()
        with anyio.fail_after(5):
            results.append(await llm.generate_text("hi"))
            server.default = Script(status=500)
            with pytest.raises(LLMException) as info:
                await llm.generate_text("hi")
            results.append(info.value)
        stop.set()
    assert results[0] == "Hello from llmcomm.testing."
    assert isinstance(results[1], ProviderUnavailableError)
