"""A client is a resource like an `httpx2.AsyncClient` (DESIGN Part 2, "Lifecycle").

Opened in one task and closed in another, it ends every open stream (typed error,
upstream closed) and returns without RuntimeError or ExceptionGroup; the user's
code never runs inside a task group or cancel scope of llmcomm's; a call on a
closed client or from another event loop is a typed `LLMException`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from functools import partial
from typing import Any

import anyio
import pytest

from llmcomm import LLMCommunication, LLMException, ProviderConfig
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

pytestmark = pytest.mark.anyio

SILENT = Script(delay_before_first_token=30, keepalive_interval=0.05)
STALL = Script(chunks=("a", "b"), stall_after=1, keepalive_interval=0.05)


def pair(server: FakeServer) -> tuple[ProviderConfig, ProviderConfig]:
    return (
        provider(server, "anthropic", name="primary", model="primary"),
        provider(server, "openai", name="backup", model="backup"),
    )


async def test_closed_from_another_task_ends_every_stream(server: FakeServer) -> None:
    """Mid-race, mid-read and between reads: each consumer gets a typed error; every upstream closes."""
    server.route(model="primary", script=SILENT)
    server.route(model="backup", script=STALL)
    llm = LLMCommunication(config(*pair(server), fallback_timeout=0.2))
    outcomes: dict[str, BaseException | None] = {}
    idle_stream_ready = anyio.Event()

    async def opener() -> None:  # a framework's start-up hook: its task ends right away
        await llm.__aenter__()

    async def read(name: str, **options: Any) -> None:
        try:
            async with llm.generate_stream("hi", **options) as stream:
                async for _ in stream:
                    pass
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    async def between_reads() -> None:
        try:
            async with llm.generate_stream("hi", provider="backup") as stream:
                await stream.__anext__()
                idle_stream_ready.set()
                await anyio.sleep(1.0)  # the consumer's own work; the client closes meanwhile
                await stream.__anext__()
            outcomes["between"] = None
        except BaseException as exc:
            outcomes["between"] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: _started(opener, task_status))
            tg.start_soon(partial(read, "racing"))  # the silent primary, then the hedge
            tg.start_soon(partial(read, "reading", provider="backup"))
            tg.start_soon(between_reads)
            await idle_stream_ready.wait()
            await server.wait_for_requests(4)
            started = time.monotonic()
            async with anyio.create_task_group() as closer:  # a shutdown hook: yet another task
                closer.start_soon(llm.aclose)
            took = time.monotonic() - started
        for request in server.requests:
            await server.wait_closed(request, timeout=1.0)
    assert took < 1.5
    assert set(outcomes) == {"racing", "reading", "between"}
    for name, outcome in outcomes.items():
        assert isinstance(outcome, LLMException), (name, outcome)
        assert not isinstance(outcome, BaseExceptionGroup)
        assert "closed" in str(outcome)


async def _started(fn: Any, task_status: anyio.abc.TaskStatus[None]) -> None:
    await fn()
    task_status.started()


async def test_a_client_opened_in_a_task_that_ended_is_used_and_closed_elsewhere(server: FakeServer) -> None:
    llm = LLMCommunication(config(provider(server)))
    async with anyio.create_task_group() as tg:
        tg.start_soon(llm.__aenter__)
    assert await llm.generate_text("hi") == "Hello from llmcomm.testing."
    async with anyio.create_task_group() as tg:
        tg.start_soon(llm.aclose)
    with pytest.raises(LLMException, match="closed"):
        await llm.generate_text("hi")


async def test_asyncio_wait_for_on_open_and_close(server: FakeServer, anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("asyncio.wait_for runs its awaitable in a task of its own on Python 3.11")
    llm = LLMCommunication(config(provider(server)))
    await asyncio.wait_for(llm.__aenter__(), 5)
    stream = llm.generate_stream("hi")
    assert (await stream.__anext__()).text
    await asyncio.wait_for(llm.aclose(), 5)
    with pytest.raises(LLMException, match="closed"):  # after what was read already, if anything
        async for _ in stream:
            pass


async def test_user_code_runs_in_no_scope_of_llmcomm(server: FakeServer) -> None:
    server.route(model="primary", script=Script(status=500))
    server.route(model="backup", script=Script(chunks=("x",), reset_after=1))
    async with LLMCommunication(config(*pair(server))) as llm:
        assert anyio.current_effective_deadline() == math.inf
        with pytest.raises(LLMException):
            await llm.generate_text("hi")
        async with llm.generate_stream("hi", provider="backup") as stream:
            assert anyio.current_effective_deadline() == math.inf  # between reads: no scope of ours
            with pytest.raises(LLMException):
                async for _ in stream:
                    assert anyio.current_effective_deadline() == math.inf
        await anyio.sleep(0.05)  # failures inside llmcomm never cancel the user's task


async def test_a_stream_opened_read_and_closed_by_three_tasks(server: FakeServer) -> None:
    server.default = Script(tokens=500, token_delay=0.005)
    async with LLMCommunication(config(provider(server))) as llm:
        stream = llm.generate_stream("hi")
        texts: list[str] = []

        async def first() -> None:
            texts.append((await stream.__anext__()).text)

        async def more() -> None:
            for _ in range(3):
                texts.append((await stream.__anext__()).text)

        for step in (first, more, stream.aclose):
            async with anyio.create_task_group() as tg:
                tg.start_soon(step)
        await server.wait_closed(server.requests[-1], timeout=1.0)
    assert texts == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]


async def test_calls_on_a_closed_client_are_typed(server: FakeServer) -> None:
    llm = LLMCommunication(config(provider(server)))
    with pytest.raises(LLMException, match="not open"):
        await llm.generate_text("hi")
    async with llm:
        unstarted = llm.generate_stream("hi")
    for attempt in (lambda: llm.generate_text("hi"), lambda: llm.generate_response("hi"), unstarted.__anext__):
        with pytest.raises(LLMException, match="closed") as info:
            await attempt()
        assert info.value.request_id
    with pytest.raises(LLMException, match="closed"):
        llm.generate_stream("hi")
    with pytest.raises(LLMException, match="once"):
        await llm.__aenter__()


async def test_a_call_from_another_event_loop_is_typed(server: FakeServer) -> None:
    llm = LLMCommunication(config(provider(server)))
    loop = asyncio.new_event_loop()
    opened = threading.Thread(target=loop.run_until_complete, args=(llm.__aenter__(),))
    opened.start()
    opened.join()
    try:
        with pytest.raises(LLMException, match="another event loop"):
            await llm.generate_text("hi")
        with pytest.raises(LLMException, match="another event loop"):
            llm.generate_stream("hi")
        assert server.request_count == 0
    finally:
        closed = threading.Thread(target=loop.run_until_complete, args=(llm.aclose(),))
        closed.start()
        closed.join()
        loop.close()
