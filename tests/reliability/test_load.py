"""Load: a thousand concurrent streams through one client, and a pool that runs dry.

The thousand streams share one `LLMCommunication`, one event loop and one fake
server. Every consumer waits after its first chunk until all of them have one; a
reply is longer than a stream's buffer, so no upstream response can end before
then: at that moment every stream holds a connection of the pool.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import aclosing

import anyio
import pytest

from llmcomm import LLMCommunication, LLMException, ProviderConfig, ProviderUnavailableError
from llmcomm._manager import STREAM_BUFFER
from llmcomm._types import Message, Request, StreamChunk
from llmcomm.providers._anthropic import AnthropicProvider
from llmcomm.providers._http import new_http_client
from llmcomm.testing import FakeServer, Script

from ..helpers import config, provider

pytestmark = pytest.mark.anyio

#: concurrent streams per backend (trio's share of the time budget is smaller)
STREAMS = {"asyncio": 1000, "trio": 300}
#: longer than a stream's buffer: a response stays open while its consumer waits
TOKENS = STREAM_BUFFER + 44
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
    fake.default = Script(tokens=TOKENS)
    expected = "".join(f"tok{i} " for i in range(TOKENS))
    texts: list[str] = []
    errors: list[LLMException] = []
    started_streams = 0
    all_started = anyio.Event()
    connections_when_all_started = 0

    async def one() -> None:
        nonlocal started_streams, connections_when_all_started
        parts: list[str] = []
        try:
            async with llm.generate_stream("hi") as stream:
                async for chunk in stream:
                    parts.append(chunk.text)
                    if len(parts) == 1:
                        started_streams += 1
                        if started_streams == count:
                            connections_when_all_started = fake.open_connections
                            all_started.set()
                        await all_started.wait()
        except LLMException as exc:
            errors.append(exc)
        texts.append("".join(parts))

    async with LLMCommunication(config(provider(fake), timeout=LOAD_BOUND)) as llm:
        began = time.monotonic()
        with anyio.fail_after(LOAD_BOUND):
            async with anyio.create_task_group() as calls:
                for _ in range(count):
                    calls.start_soon(one)
        took = time.monotonic() - began

    assert errors == []  # no PoolTimeout, nor anything else
    assert texts == [expected] * count
    assert fake.request_count == count
    assert connections_when_all_started == count  # all open at once, each on a connection of its own
    print(f"{count} concurrent streams on {anyio_backend} in {took:.1f} s")


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
