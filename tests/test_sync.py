"""`SyncLLMCommunication` and `SyncLLMStream` against `llmcomm.testing`, from many kinds of threads."""

from __future__ import annotations

import asyncio
import gc
import importlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

from llmcomm import (
    AuthenticationError,
    Configuration,
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    ProviderConfig,
    StreamChunk,
    SyncLLMCommunication,
    SyncLLMStream,
    shutdown_llm_services,
)
from llmcomm._portal import SHARED, portal_thread_count
from llmcomm._sync_stream import SYNC_STREAM_BUFFER
from llmcomm.testing import FakeServer, RecordedRequest, Script

# The first facade of the run would otherwise pay for the cold SDK import.
importlib.import_module("anthropic")

KEY = "test-key-0123456789"
WAIT = 2.0


def portal_threads() -> int:
    return portal_thread_count()


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def closed_within(request: RecordedRequest, started: float, limit: float = 0.5) -> bool:
    wait_until(lambda: request.client_closed_at is not None, limit + 0.5)
    return request.client_closed_at is not None and request.client_closed_at - started < limit


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _portal_released() -> Iterator[None]:
    yield
    # Every facade a test opened was closed again, so the shared portal thread is gone.
    assert wait_until(lambda: not SHARED.running), SHARED
    assert wait_until(lambda: not portal_threads())


def config_for(server: FakeServer, **settings: float) -> Configuration:
    provider = ProviderConfig(name="anthropic", kind="anthropic", api_key=KEY, base_url=server.anthropic_base_url)
    return Configuration(providers=[provider], **settings)  # type: ignore[arg-type]


@pytest.fixture
def llm(server: FakeServer) -> Iterator[SyncLLMCommunication]:
    with SyncLLMCommunication(config_for(server)) as facade:
        yield facade


def test_calls_return_what_the_async_api_returns(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.default = Script(text="one two three", input_tokens=7)
    assert llm.generate_text("hi") == "one two three"
    assert llm.llm_call("hi") == "one two three"
    response = llm.generate_response([{"role": "user", "content": "hi"}], max_tokens=50, request_id="LLM-1-abcdef01")
    assert (response.content, response.provider, response.request_id) == (
        "one two three",
        "anthropic",
        "LLM-1-abcdef01",
    )
    assert dict(response.usage) == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert server.requests[-1].body["max_tokens"] == 50


def test_agenerate_response_serves_any_event_loop_of_the_caller(server: FakeServer, llm: SyncLLMCommunication) -> None:
    # The new-loop-per-request pattern: each call's loop is made for it and closed right after.
    server.default = Script(text="from any loop", input_tokens=4)
    responses = [
        asyncio.run(llm.agenerate_response("hi")),
        anyio.run(llm.agenerate_response, "hi", backend="trio"),
        asyncio.run(llm.agenerate_response("hi")),
    ]
    assert [(r.content, r.usage.total_tokens) for r in responses] == [("from any loop", 7)] * 3
    assert len({r.connection_id for r in server.requests}) == 1  # one client and pool, whatever the loop
    llm.close()
    # What the caller did, not what a process-wide shutdown would have done.
    with pytest.raises(LLMException, match=r"^this SyncLLMCommunication is closed; create a new one"):
        asyncio.run(llm.agenerate_response("hi"))
    with pytest.raises(LLMException, match=r"^this SyncLLMCommunication is closed; create a new one"):
        llm.generate_text("hi")
    assert len(server.requests) == 3  # nothing sent after the close


def test_no_provider_raises_configuration_error_at_construction() -> None:
    from llmcomm import ConfigurationError

    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        SyncLLMCommunication(Configuration())


def test_errors_keep_their_llmcomm_types(server: FakeServer, llm: SyncLLMCommunication) -> None:
    with pytest.raises(InvalidRequestError):
        llm.generate_stream("   ")  # refused before any network I/O
    assert server.request_count == 0
    server.enqueue(Script(status=401))
    with pytest.raises(AuthenticationError) as caught:
        llm.generate_text("hi")
    assert caught.value.status_code == 401


def test_stream_iterates_and_keeps_the_response(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=5))
    stream = llm.generate_stream("count")
    assert isinstance(stream, SyncLLMStream)
    chunks = list(stream)
    assert "".join(c.text for c in chunks) == "tok0 tok1 tok2 tok3 tok4 "
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert stream.response is not None
    assert stream.response.content == "tok0 tok1 tok2 tok3 tok4 "
    assert list(stream) == []


def test_stream_text_and_error_in_caller_thread(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(text="all of it"))
    with llm.generate_stream("x") as stream:
        assert stream.text() == "all of it"
    server.enqueue(Script(status=401))
    with pytest.raises(AuthenticationError), llm.generate_stream("x") as failing:
        next(failing)


def test_slow_reader_gets_every_chunk_in_order(server: FakeServer, llm: SyncLLMCommunication) -> None:
    count = SYNC_STREAM_BUFFER * 4
    server.enqueue(Script(tokens=count))
    with llm.generate_stream("many") as stream:
        first = next(stream)
        time.sleep(0.2)  # the portal task fills the queue and waits for room
        rest = [chunk.text for chunk in stream if chunk.text]  # the closing chunk has no text
    assert [first.text, *rest] == [f"tok{i} " for i in range(count)]


def test_close_closes_the_upstream(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=50, stall_after=2))
    stream = llm.generate_stream("x")
    assert next(stream).text == "tok0 "
    started = time.monotonic()
    stream.close()
    assert closed_within(server.requests[-1], started)
    assert list(stream) == []
    stream.close()  # idempotent


def test_leaving_the_with_block_closes_the_upstream(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=50, stall_after=2))
    with llm.generate_stream("x") as stream:
        next(stream)
        started = time.monotonic()
    assert closed_within(server.requests[-1], started)


def test_breaking_out_of_a_with_block_closes_the_upstream(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=50, token_delay=0.05))
    with llm.generate_stream("x") as stream:
        for _ in stream:
            break
        started = time.monotonic()
    assert closed_within(server.requests[-1], started)


def test_close_from_another_thread_ends_a_blocked_reader(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=50, stall_after=2))
    stream = llm.generate_stream("x")
    assert [next(stream).text, next(stream).text] == ["tok0 ", "tok1 "]
    closer = threading.Timer(0.1, stream.close)  # as a web framework closes a response body
    started = time.monotonic()
    closer.start()
    assert list(stream) == []  # waits for the stalled upstream until the close, then ends
    closer.join()
    assert closed_within(server.requests[-1], started, limit=0.6)


def test_garbage_collection_closes_the_upstream(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.enqueue(Script(tokens=50, stall_after=2))
    stream = llm.generate_stream("x")
    next(stream)
    collected = weakref.ref(stream)
    started = time.monotonic()
    del stream
    assert collected() is None  # nothing else holds it: dropping the last reference frees it
    assert closed_within(server.requests[-1], started)


def test_closing_the_facade_closes_its_streams(server: FakeServer) -> None:
    server.enqueue(Script(tokens=50, stall_after=2))
    llm = SyncLLMCommunication(config_for(server))
    stream = llm.generate_stream("x")
    next(stream)
    started = time.monotonic()
    llm.close()
    assert closed_within(server.requests[-1], started)
    with pytest.raises(LLMException, match="closed"):
        llm.generate_text("again")
    llm.close()


def test_a_dropped_facade_closes_itself(server: FakeServer) -> None:
    llm = SyncLLMCommunication(config_for(server))
    assert llm.generate_text("hi")
    assert SHARED.leases == 1
    del llm
    gc.collect()
    assert wait_until(lambda: SHARED.leases == 0)


def test_many_threads_share_one_portal(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.default = Script(text="shared")

    def work(i: int) -> str:
        if i % 2:
            return "".join(chunk.text for chunk in llm.generate_stream(f"stream {i}"))
        return llm.generate_text(f"call {i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(40)))
    assert results == ["shared"] * 40
    assert portal_threads() == 1
    assert SHARED.leases == 1


def test_from_a_thread_whose_loop_is_running(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.default = Script(text="inside a loop")

    async def handler() -> str:
        return llm.generate_text("hi")  # sync code called from async code, as in Jupyter

    assert asyncio.run(handler()) == "inside a loop"


def test_from_a_thread_whose_loop_was_closed(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.default = Script(text="after a closed loop")

    def work() -> str:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        try:
            return llm.generate_text("hi")
        finally:
            asyncio.set_event_loop(None)

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda _: work(), range(4))) == ["after a closed loop"] * 4


@pytest.mark.anyio
async def test_from_async_code_on_asyncio_and_trio(server: FakeServer, llm: SyncLLMCommunication) -> None:
    server.default = Script(text="blocking but working")
    assert llm.generate_text("hi") == "blocking but working"
    with llm.generate_stream("hi") as stream:
        assert stream.text() == "blocking but working"


def test_from_the_portal_thread_raises_instead_of_deadlocking(server: FakeServer, llm: SyncLLMCommunication) -> None:
    stream = llm.generate_stream("x")
    lease = SHARED.acquire()
    try:
        with pytest.raises(LLMException, match="portal thread"):
            lease.portal.call(lambda: llm.generate_text("hi"))
        with pytest.raises(LLMException, match="portal thread"):
            lease.portal.call(lambda: next(stream))
    finally:
        SHARED.release(lease)
        stream.close()
    assert llm.generate_text("still fine")


def test_sync_and_async_give_the_same_reply(server: FakeServer) -> None:
    server.default = Script(text="same either way", input_tokens=3)
    with SyncLLMCommunication(config_for(server)) as llm:
        sync_reply = llm.generate_response("hi")

    async def main() -> str:
        async with LLMCommunication(config_for(server)) as allm:
            return (await allm.generate_response("hi")).content

    assert anyio.run(main) == sync_reply.content == "same either way"
    assert sync_reply.usage["prompt_tokens"] == 3


def test_shutdown_stops_the_portal_and_refuses_later_calls(server: FakeServer) -> None:
    llm = SyncLLMCommunication(config_for(server))
    server.enqueue(Script(tokens=50, stall_after=2))
    stream = llm.generate_stream("x")
    next(stream)
    started = time.monotonic()
    assert shutdown_llm_services()
    assert not portal_threads()
    assert closed_within(server.requests[-1], started)
    with pytest.raises(LLMException, match="shut down"):
        llm.generate_text("hi")
    with pytest.raises(LLMException, match="stopped"):
        list(stream)  # what arrived before the shutdown, then the error
    llm.close()


def test_building_a_facade_starts_the_portal_and_opens_it_in_the_background(server: FakeServer) -> None:
    llm = SyncLLMCommunication(config_for(server))
    try:
        assert wait_until(lambda: SHARED.running, 5.0)  # no call made yet
        background = llm._holder.background
        assert background is not None
        background.result(10)
        assert server.request_count == 0  # opening sends nothing
        started = time.monotonic()
        assert llm.generate_text("hi") == "Hello from llmcomm.testing."
        assert time.monotonic() - started < 1.0  # the request alone: nothing left to start or open
    finally:
        llm.close()


def test_a_facade_closed_before_its_background_opening_stops_the_portal(server: FakeServer) -> None:
    for _ in range(5):
        SyncLLMCommunication(config_for(server)).close()
    assert wait_until(lambda: SHARED.leases == 0)
