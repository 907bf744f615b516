"""Redis killed under a running client and started again: no call fails or hangs, one warning,
and the client shares its state again once Redis is back."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication
from llmcomm.testing import FakeServer, Script

from ..helpers import provider
from .conftest import RedisServer

pytestmark = [
    pytest.mark.anyio,
    # coredis leaves the memory streams of a connection that failed unclosed (anyio warns when
    # they are collected); `_collect_leftovers` collects them inside these tests
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
]

#: the longest one call may take while Redis is gone: the 50 ms operation bound, a loaded machine
SLOWEST = 1.0


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    yield
    gc.collect()


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmcomm" and r.levelno == logging.WARNING and "shared state" in r.getMessage()
    ]


@pytest.mark.timeout(60)
async def test_redis_killed_and_restarted_mid_run_fails_no_call(
    server: FakeServer, redis_private: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmcomm")
    server.default = Script(text="served")
    config = Configuration(
        providers=(provider(server, "openai", rpm=60_000),), shared_state=redis_private.url, max_retries=0
    )
    durations: list[float] = []
    async with LLMCommunication(config) as llm:
        state: Any = llm.manager.cooldown.state
        assert await state.connect(10.0)
        for index in range(60):
            if index == 10:
                redis_private.kill()
            if index == 30:
                redis_private.start()
            started = time.monotonic()
            assert await llm.generate_text("hi") == "served"
            durations.append(time.monotonic() - started)
            await anyio.sleep(0.1 if index < 30 else 0.15)  # past the 3 s bypass once Redis is back
        assert not state.link._outage  # Redis answers again: the state is shared again
    assert max(durations) < SLOWEST, max(durations)
    assert len(outage_warnings(caplog)) == 1, outage_warnings(caplog)
    assert server.request_count == 60


@pytest.mark.timeout(60)
async def test_the_shared_state_is_opened_and_closed_with_the_client(server: FakeServer, redis: RedisServer) -> None:
    from llmcomm import CooldownTracker
    from llmcomm._routing._state import LocalState
    from llmcomm._routing._state._redis import RedisState

    tracker = CooldownTracker()
    own = tracker.state
    config = Configuration(providers=(provider(server, "openai"),), shared_state=redis.url, cooldown=tracker)
    async with LLMCommunication(config) as llm:
        state = tracker.state
        assert isinstance(state, RedisState)
        assert await llm.generate_text("hi")
    assert tracker.state is own and isinstance(own, LocalState)
    assert state.link._closed  # its thread is stopped (the autouse check finds no thread left)


@pytest.mark.timeout(60)
async def test_a_redis_that_is_not_there_delays_nothing(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    from .conftest import free_port

    caplog.set_level(logging.WARNING, logger="llmcomm")
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = Configuration(providers=(provider(server, "openai", rpm=6000),), shared_state=url, max_retries=0)
    started = time.monotonic()
    async with LLMCommunication(config) as llm:
        texts = [await llm.generate_text("hi") for _ in range(5)]
    assert time.monotonic() - started < 2.0
    assert texts == ["Hello from llmcomm.testing."] * 5
    assert len(outage_warnings(caplog)) == 1


@pytest.mark.timeout(60)
async def test_a_tracker_shared_by_two_clients_ends_on_its_own_state(server: FakeServer, redis: RedisServer) -> None:
    from contextlib import AsyncExitStack

    from llmcomm import CooldownTracker

    tracker = CooldownTracker()
    own = tracker.state
    config = Configuration(providers=(provider(server, "openai"),), shared_state=redis.url, cooldown=tracker)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(LLMCommunication(config))
        second = LLMCommunication(config)
        await second.__aenter__()
        await first.aclose()  # the first closes while the second is open: the second's state stays
        assert tracker.state is not own
        assert await second.generate_text("hi")
        await second.aclose()
    assert tracker.state is own
