"""A served stream's deadlines, kept at the network read (`llmcomm.providers._watch`).

On llmcomm's own HTTP client the idle watchdog, the call's deadline and a close
from another task act on the read that waits; on a caller's own `httpx2` client
the call scopes each batch instead. Both must look the same to a caller: the
error type, the partial text, the time it took, the upstream connection closed.
Over real HTTP to the fake server, both wires, asyncio and trio.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx2
import pytest

from llmcomm import (
    AnthropicProvider,
    Configuration,
    LLMCommunication,
    LLMException,
    LLMTimeoutError,
    OpenAIProvider,
    ProviderConfig,
    ProviderUnavailableError,
    StreamInterruptedError,
)
from llmcomm.providers._http import new_http_client
from llmcomm.providers._watch import WatchedBackend, watch_connections, watchable
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]
Client = Literal["llmcomm", "own"]


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture(params=["llmcomm", "own"])
def client(request: pytest.FixtureRequest) -> Client:
    value: Client = request.param
    return value


@asynccontextmanager
async def opened(
    server: FakeServer, kind: Kind, client: Client, provider_timeout: float | None = None, **settings: Any
) -> AsyncIterator[LLMCommunication]:
    """A client on `server`: llmcomm's own HTTP client, or a provider built on the caller's own `httpx2` client."""
    entry = provider(server, kind) if provider_timeout is None else provider(server, kind, timeout=provider_timeout)
    if client == "llmcomm":
        async with LLMCommunication(config(entry, **settings)) as llm:
            yield llm
        return
    async with httpx2.AsyncClient() as http:
        built = AnthropicProvider(entry, http) if kind == "anthropic" else OpenAIProvider(entry, http)
        async with LLMCommunication(Configuration(providers=[built], max_retries=0, **settings)) as llm:
            yield llm


def test_every_pool_of_llmcomms_client_is_watched() -> None:
    # httpx2 takes no network backend: llmcomm sets the attribute its pools read. An httpx2
    # release that moves it must fail here, not quietly put a cancel scope back on every event.
    for proxy in (None, "http://127.0.0.1:9"):
        http = new_http_client(proxy=proxy, environ={})
        transports: list[Any] = [http._transport, *http._mounts.values()]
        backends = [type(t._pool._network_backend) for t in transports if t is not None]
        assert backends and backends == [WatchedBackend] * len(backends)
        assert watch_connections(http) == 0  # already watched: not wrapped twice


async def test_a_served_stream_is_watched_only_on_llmcomms_client(
    server: FakeServer, kind: Kind, client: Client
) -> None:
    server.default = Script(tokens=50)
    async with opened(server, kind, client) as llm, llm.generate_stream("hi") as stream:
        await stream.__anext__()
        call = stream._call
        assert call is not None and call.winner is not None and call.winner.watch is not None
        assert call.winner.watch.attached is (client == "llmcomm")
        assert len(await stream.text()) > 0
    assert stream.response is not None and stream.response.usage.completion_tokens == 50


async def test_a_stall_mid_stream_is_idleness(server: FakeServer, kind: Kind, client: Client) -> None:
    server.default = Script(chunks=("one ", "two ", "three"), stall_after=2)
    async with opened(server, kind, client, stream_idle_timeout=0.4) as llm:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_text("hi")
        elapsed = time.monotonic() - started
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert info.value.partial_text == "one two "
    assert "0.4 s" in str(info.value)
    assert 0.35 <= elapsed < 1.5
    assert server.request_count == 1  # nothing replayed after the first chunk


async def test_pings_do_not_keep_a_stalled_stream_alive(server: FakeServer, client: Client) -> None:
    # Bytes arrive every 0.05 s, so no network read waits long: the deadline is the batch's, not the read's.
    server.default = Script(chunks=("one ", "two ", "three"), stall_after=2, keepalive_interval=0.05)
    async with opened(server, "anthropic", client, stream_idle_timeout=0.4) as llm:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError):
            await llm.generate_text("hi")
        assert 0.35 <= time.monotonic() - started < 1.5
        await server.wait_closed(server.requests[-1], timeout=0.5)


async def test_the_calls_deadline_ends_a_stream_that_keeps_flowing(
    server: FakeServer, kind: Kind, client: Client
) -> None:
    server.default = Script(tokens=2000, token_delay=0.005)  # 10 s of tokens, never idle
    async with opened(server, kind, client) as llm:
        started = time.monotonic()
        parts: list[str] = []
        with pytest.raises(LLMTimeoutError) as info:
            async with llm.generate_stream("hi", timeout=0.6) as stream:
                async for chunk in stream:
                    parts.append(chunk.text)
        elapsed = time.monotonic() - started
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert parts, "tokens flowed before the deadline"
    assert "0.6 s" in str(info.value)
    assert 0.55 <= elapsed < 1.6


@pytest.mark.parametrize("bounded", [True, False], ids=["deadlines", "no-deadline"])
async def test_a_close_from_another_task_stops_a_waiting_read(
    server: FakeServer, kind: Kind, client: Client, bounded: bool
) -> None:
    # With every timeout infinite (all accepted) the read's deadline is inf, and a close must still reach it.
    unbounded = {} if bounded else {"provider_timeout": math.inf, "timeout": math.inf, "stream_idle_timeout": math.inf}
    server.default = Script(chunks=("one ", "two ", "three"), stall_after=2)
    async with opened(server, kind, client, **unbounded) as llm:
        stream = llm.generate_stream("hi")
        assert (await stream.__anext__()).text == "one "
        outcome: list[BaseException] = []

        async def reader() -> None:
            try:
                async for _ in stream:
                    pass
            except LLMException as exc:
                outcome.append(exc)

        started = time.monotonic()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.sleep(0.2)  # the reader now waits on the network
                await stream.aclose()
        assert time.monotonic() - started < 1.2
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert len(outcome) == 1 and "closed" in str(outcome[0])


async def test_a_pooled_connection_carries_no_watch_into_its_next_reply(server: FakeServer, kind: Kind) -> None:
    # Three replies on one kept-alive connection; the last stalls and must still meet its own idle deadline.
    async with LLMCommunication(config(provider(server, kind), stream_idle_timeout=0.4)) as llm:
        server.default = Script(text="first")
        assert await llm.generate_text("hi") == "first"
        assert await llm.generate_text("hi") == "first"
        server.default = Script(chunks=("one ", "two"), stall_after=1)
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError):
            await llm.generate_text("hi")
        assert 0.35 <= time.monotonic() - started < 1.5
    assert [r.connection_id for r in server.requests] == [1, 1, 1]


async def test_a_read_cancelled_from_outside_ends_the_call_and_says_so(
    server: FakeServer, kind: Kind, client: Client
) -> None:
    # A caller's poll timeout around one read: the provider's stream is closed with the cancellation,
    # so the reply cannot go on; the next read says so instead of ending as if the reply were whole.
    server.default = Script(chunks=("one ", "two ", "three"), token_delay=0.5)
    async with opened(server, kind, client) as llm, llm.generate_stream("hi") as stream:
        assert (await stream.__anext__()).text == "one "
        with anyio.move_on_after(0.2):
            await stream.__anext__()
        with pytest.raises(LLMException, match="cancelled") as info:
            await stream.__anext__()
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert info.value.request_id is not None
    assert stream.response is None  # no reply is reported whole


@pytest.mark.parametrize("when", ["racing", "serving"])
async def test_a_cancelled_consumer_task_ends_the_call_as_cancelled(server: FakeServer, kind: Kind, when: str) -> None:
    ends: list[str] = []

    class Ends:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: ends.append(name) if name.startswith("request_") and name != "request_start" else None

    server.default = Script(
        chunks=("one ", "two "), stall_after=1, delay_before_first_token=5.0 if when == "racing" else 0
    )
    async with LLMCommunication(config(provider(server, kind)), observer=Ends()) as llm:
        stream = llm.generate_stream("hi")

        async def read() -> None:
            async for _ in stream:
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.sleep(0.3)  # the read now waits on the network
            tg.cancel_scope.cancel()
        await server.wait_closed(server.requests[-1], timeout=1.0)
        assert ends == ["request_cancelled"]
        assert llm.metrics.snapshot()["series"][0]["cancelled"] == 1
        with pytest.raises(LLMException, match="cancelled"):
            await stream.__anext__()
        await stream.aclose()


class Reconnecting:
    """A user's resilience wrapper around a built-in provider: once the stream breaks, it sends a fresh request."""

    kind = "custom"

    def __init__(self, inner: AnthropicProvider | OpenAIProvider) -> None:
        self.inner = inner
        self.name, self.model = "resilient", inner.model

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        for attempt in range(2):
            try:
                async for chunk in self.inner.stream(request):
                    yield chunk
                return
            except ProviderUnavailableError:
                if attempt == 1:
                    raise

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("stop", ["idle", "call-timeout"])
async def test_a_wrapper_that_sends_again_mid_stream_is_still_bounded(
    server: FakeServer, kind: Kind, stop: str
) -> None:
    # The wrapper's second request is sent inside a read of the call, not in its race: only a
    # built-in provider's own reads may keep the call's deadline, so this one is scoped per batch.
    server.enqueue(
        Script(chunks=("one ", "two ", "three"), reset_after=2), Script(chunks=("uno ", "dos ", "tres"), stall_after=1)
    )
    inner = AnthropicProvider(provider(server, kind)) if kind == "anthropic" else OpenAIProvider(provider(server, kind))
    idle, timeout = (0.4, 30.0) if stop == "idle" else (60.0, 1.0)
    config = Configuration(providers=[Reconnecting(inner)], stream_idle_timeout=idle, max_retries=0)
    async with LLMCommunication(config) as llm:
        started = time.monotonic()
        expected = StreamInterruptedError if stop == "idle" else LLMTimeoutError
        with anyio.fail_after(5), pytest.raises(expected):
            await llm.generate_text("hi", timeout=timeout)
        assert time.monotonic() - started < 1.8
        await server.wait_closed(server.requests[-1], timeout=0.5)
    assert len(server.requests) == 2


def test_only_the_built_in_providers_read_under_the_watch() -> None:
    config = ProviderConfig(name="a", kind="anthropic", api_key="k")
    assert watchable(AnthropicProvider(config)) and watchable(
        OpenAIProvider(dataclasses.replace(config, kind="openai"))
    )
    assert not watchable(Reconnecting(AnthropicProvider(config)))
    assert not watchable(type("Sub", (AnthropicProvider,), {})(config))  # a subclass may read otherwise


ROUNDS = 21  # closes after 0 to 6 checkpoints, three times each: some land while the race connects


async def test_a_close_while_the_race_connects_reads_as_closed(server: FakeServer, client: Client) -> None:
    # trio connects in a nursery (happy eyeballs), so a cancellation there arrives as a group of
    # Cancelled: it is still a cancellation, never "the provider raised BaseExceptionGroup".
    outcomes: list[str] = []
    server.default = Script(tokens=5)
    async with opened(server, "anthropic", client) as llm:
        for i in range(ROUNDS):
            stream = llm.generate_stream("hi")

            async def read(stream: Any = stream) -> None:
                try:
                    async for _ in stream:
                        pass
                    outcomes.append("end")
                except LLMException as exc:
                    outcomes.append("closed" if "closed" in str(exc) else f"{type(exc).__name__}: {exc}")

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    for _ in range(i % 7):
                        await anyio.lowlevel.checkpoint()
                    await stream.aclose()
        assert llm.metrics.snapshot()["series"][0]["errors"] == {}
    assert [o for o in outcomes if o not in ("closed", "end")] == []


async def test_the_callers_timeout_while_the_race_connects_is_the_callers(server: FakeServer, client: Client) -> None:
    raised: list[str] = []
    server.default = Script(tokens=5)
    async with opened(server, "anthropic", client) as llm:
        for i in range(ROUNDS):
            stream = llm.generate_stream("hi")
            try:
                with anyio.fail_after(5), anyio.move_on_after(0.0003 * (i % 7)):
                    await stream.__anext__()
            except LLMException as exc:
                raised.append(f"{type(exc).__name__}: {exc}")
            await stream.aclose()
    assert raised == []
