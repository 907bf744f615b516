"""Load: a thousand concurrent streams through one client, and a pool that runs dry.

The thousand streams share one `LLMCommunication`, one event loop and one fake
server. First every reply stalls after its first chunk, so when every consumer
has one, every stream holds a connection of the pool; then a thousand complete
replies run at once and each must arrive whole.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import aclosing

import anyio
import pytest

from llmcomm import LLMCommunication, LLMException, ProviderConfig, ProviderUnavailableError
from llmcomm._types import Message, Request, StreamChunk
from llmcomm.providers._anthropic import AnthropicProvider
from llmcomm.providers._http import new_http_client
from llmcomm.testing import FakeServer, Script

from ..helpers import config, provider

pytestmark = pytest.mark.anyio

#: concurrent streams per backend (trio's share of the time budget is smaller)
STREAMS = {"asyncio": 1000, "trio": 300}
#: tokens of each complete reply
TOKENS = 60
#: the most the whole load may take on a busy two-core machine
LOAD_BOUND = 60.0


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * max(STREAMS.values()) + 256  # a client and a server socket per stream, and spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
@pytest.mark.usefixtures("enough_file_descriptors")
async def test_a_thousand_concurrent_streams_on_one_client(fake: FakeServer, anyio_backend: str) -> None:
    count = STREAMS[anyio_backend]
    firsts: list[str] = []
    errors: list[LLMException] = []
    all_started = anyio.Event()
    connections_when_all_started = 0

    async def held_open() -> None:
        # Each reply stalls after its first chunk: the stream keeps its connection.
        nonlocal connections_when_all_started
        try:
            async with llm.generate_stream("hi") as stream:
                firsts.append((await stream.__anext__()).text)
                if len(firsts) == count:
                    connections_when_all_started = fake.open_connections
                    all_started.set()
                await all_started.wait()
        except LLMException as exc:
            errors.append(exc)
            all_started.set()

    texts: list[str] = []

    async def complete() -> None:
        try:
            texts.append(await llm.generate_text("hi"))
        except LLMException as exc:
            errors.append(exc)

    async with LLMCommunication(config(provider(fake), timeout=LOAD_BOUND)) as llm:
        began = time.monotonic()
        fake.default = Script(tokens=TOKENS, stall_after=1, keepalive_interval=1.0)
        with anyio.fail_after(LOAD_BOUND):
            async with anyio.create_task_group() as calls:
                for _ in range(count):
                    calls.start_soon(held_open)
        assert errors == []  # no PoolTimeout, nor anything else
        assert firsts == ["tok0 "] * count
        assert connections_when_all_started == count  # all open at once, each on a connection of its own

        fake.default = Script(tokens=TOKENS)
        with anyio.fail_after(LOAD_BOUND):
            async with anyio.create_task_group() as calls:
                for _ in range(count):
                    calls.start_soon(complete)
        took = time.monotonic() - began

    assert errors == []
    assert texts == ["".join(f"tok{i} " for i in range(TOKENS))] * count
    assert fake.request_count == 2 * count
    print(f"{count} concurrent streams on {anyio_backend}, held open and then complete, in {took:.1f} s")


def _request() -> Request:
    return Request(messages=(Message("user", "hi"),))


async def _hold(provider: AnthropicProvider, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    # Read one chunk and keep the response (and so its pooled connection) open until cancelled.
    async with aclosing(provider.stream(_request())) as chunks:  # type: ignore[type-var]
        first: StreamChunk = await chunks.__anext__()
        assert first.text
        task_status.started()
        await anyio.sleep_forever()


async def test_an_exhausted_pool_is_a_typed_error_not_a_hang(fake: FakeServer) -> None:
    """Two stalled streams hold a pool of two; the third request fails once the pool timeout passes.

    The provider gets a small pool directly; `Configuration(max_connections=..., pool_timeout=...)`
    sets the same for an `LLMCommunication` (tested below).
    """
    fake.default = Script(chunks=("a", "b"), stall_after=1, keepalive_interval=0.05)
    cfg = ProviderConfig(name="anthropic", kind="anthropic", base_url=fake.anthropic_base_url, api_key="k", timeout=0.5)
    client = new_http_client(max_connections=2, pool_timeout=0.5)
    async with client:
        anthropic = AnthropicProvider(cfg, client)
        async with anyio.create_task_group() as holders:
            for _ in range(2):
                await holders.start(_hold, anthropic)
            started = time.monotonic()
            with pytest.raises(ProviderUnavailableError, match="no free connection in the pool") as caught:
                async with aclosing(anthropic.stream(_request())) as chunks:  # type: ignore[type-var]
                    await chunks.__anext__()
            elapsed = time.monotonic() - started
            holders.cancel_scope.cancel()
        await anthropic.aclose()
    assert 0.45 <= elapsed < 1.5
    assert caught.value.retryable
    assert fake.request_count == 2  # the third request never reached the wire


async def test_the_pool_timeout_of_the_client_is_the_one_applied(fake: FakeServer) -> None:
    fake.default = Script(chunks=("a", "b"), stall_after=1, keepalive_interval=0.05)
    cfg = ProviderConfig(name="anthropic", kind="anthropic", base_url=fake.anthropic_base_url, api_key="k")
    client = new_http_client(max_connections=1, pool_timeout=0.3)
    async with client:
        anthropic = AnthropicProvider(cfg, client)
        async with anyio.create_task_group() as holders:
            await holders.start(_hold, anthropic)
            error: LLMException | None = None
            with anyio.move_on_after(1.0):
                try:
                    async with aclosing(anthropic.stream(_request())) as chunks:  # type: ignore[type-var]
                        await chunks.__anext__()
                except LLMException as exc:
                    error = exc
            holders.cancel_scope.cancel()
        await anthropic.aclose()
    assert isinstance(error, ProviderUnavailableError)


async def test_the_pool_is_configured_through_the_public_api(fake: FakeServer) -> None:
    """`Configuration(max_connections=1, pool_timeout=0.3)`: a second stream fails fast while one holds the pool."""
    fake.default = Script(chunks=("a", "b"), stall_after=1, keepalive_interval=0.05)
    cfg = config(provider(fake), max_connections=1, pool_timeout=0.3)
    async with LLMCommunication(cfg) as llm, llm.generate_stream("hold the only connection") as holder:
        await holder.__anext__()
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError, match="no free connection in the pool"):
            await llm.generate_text("no room")
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert fake.request_count == 1
