"""One provider serving a call, over the real SDK clients and real TCP, for both HTTP kinds."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Literal

import anyio
import pytest

from llmcomm import (
    AuthenticationError,
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    Message,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from llmcomm.testing import FakeServer, Script

from .helpers import KEY, config, provider, refused_url

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]
KINDS = [pytest.param("anthropic", id="anthropic"), pytest.param("openai", id="openai")]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


async def test_text_chunks_and_usage(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("Hel", "lo", ", ", "world"), input_tokens=11, output_tokens=7)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        async with llm.generate_stream("Say hello") as stream:
            chunks = [chunk async for chunk in stream]
        response = stream.response
    assert [c.text for c in chunks] == ["Hel", "lo", ", ", "world", ""]
    assert [c.index for c in chunks[:-1]] == [0, 1, 2, 3]
    assert all(c.provider == kind for c in chunks)
    closing = chunks[-1]
    assert closing.finish_reason == "stop"
    assert closing.raw_finish_reason == ("end_turn" if kind == "anthropic" else "stop")
    assert closing.usage is not None
    assert (closing.usage.prompt_tokens, closing.usage.completion_tokens, closing.usage.total_tokens) == (11, 7, 18)
    assert response is not None
    assert response.content == "Hello, world"
    assert response.usage["total_tokens"] == 18
    assert dict(response.usage) == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert response.provider == kind
    assert response.request_id is not None and response.request_id.startswith("LLM-")
    assert response.time_to_first_token is not None and 0 < response.time_to_first_token <= response.response_time
    assert [(a.provider, a.outcome) for a in response.attempts] == [(kind, "won")]


async def test_generate_text_and_response(server: FakeServer, kind: Kind) -> None:
    server.default = Script(text="four words of text")
    async with LLMCommunication(config(provider(server, kind))) as llm:
        assert await llm.generate_text("hi") == "four words of text"
        assert await llm.llm_call("hi") == "four words of text"
        response = await llm.generate_response([Message("user", "hi")], request_id="req-1", max_tokens=9)
    assert (response.content, response.request_id) == ("four words of text", "req-1")
    body = server.requests[-1].body
    assert body["max_tokens"] == 9
    assert body["stream"] is True


async def test_system_message_mapping(server: FakeServer, kind: Kind) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.generate_response(messages, temperature=0.2)
    body = server.requests[-1].body
    if kind == "anthropic":
        assert body["system"] == "You are terse."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        # The default model is a current Claude, which takes no sampling options: a hint, left out.
        assert "temperature" not in body
        assert response.attempts[-1].dropped == ("temperature",)
    else:
        assert body["messages"][0] == {"role": "system", "content": "You are terse."}
        assert body["stream_options"] == {"include_usage": True}
        assert body["temperature"] == 0.2


@pytest.mark.parametrize(
    ("script", "error_type"),
    [
        (Script(status=401), AuthenticationError),
        (Script(status=403), AuthenticationError),
        (Script(status=400), InvalidRequestError),
        (Script(status=404), InvalidRequestError),
        (Script(status=413), InvalidRequestError),
        (Script(status=500), ProviderUnavailableError),
        (Script(status=503), ProviderUnavailableError),
        (Script(status=529), ProviderUnavailableError),
    ],
    ids=lambda v: str(v.status) if isinstance(v, Script) else "",
)
async def test_status_errors_are_typed(
    server: FakeServer, kind: Kind, script: Script, error_type: type[LLMException]
) -> None:
    server.default = script
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(error_type) as info:
            await llm.generate_text("hi")
    error = info.value
    assert error.status_code == script.status
    assert error.provider == kind
    assert error.request_id is not None
    assert isinstance(error.__cause__, Exception)
    assert "; " in str(error)  # every message says what to do next
    assert server.request_count == 1


async def test_rate_limit_carries_retry_after(server: FakeServer, kind: Kind) -> None:
    server.default = Script(status=429, retry_after=7)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(RateLimitError) as info:
            await llm.generate_text("hi")
    assert info.value.retry_after == 7.0
    assert info.value.retryable


async def test_retry_after_ms_wins_over_seconds(server: FakeServer, kind: Kind) -> None:
    server.default = Script(status=429, retry_after=7, retry_after_ms=1500)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(RateLimitError) as info:
            await llm.generate_text("hi")
    assert info.value.retry_after == 1.5


async def test_connection_refused(kind: Kind) -> None:
    cfg = config(ProviderConfig(name="down", kind=kind, api_key=KEY, base_url=refused_url(kind)))
    async with LLMCommunication(cfg) as llm:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError, match="cannot connect") as info:
            await llm.generate_text("hi")
    assert time.monotonic() - started < 1.0
    assert info.value.retryable


async def test_truncated_stream_is_a_failure(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("a", "b"), omit_terminal=True)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_text("hi")
    assert info.value.partial_text == "ab"
    assert isinstance(info.value.__cause__, ProviderUnavailableError)


async def test_empty_truncated_stream_fails_before_content(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=(), omit_terminal=True)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(ProviderUnavailableError, match="ended before"):
            await llm.generate_text("hi")


async def test_sse_error_event_mid_stream(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("one ", "two ", "three"), sse_error_after=2)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        received: list[str] = []
        with pytest.raises(StreamInterruptedError) as info:
            async with llm.generate_stream("hi") as stream:
                async for chunk in stream:
                    received.append(chunk.text)
    assert received == ["one ", "two "]
    assert info.value.partial_text == "one two "
    assert isinstance(info.value.__cause__, LLMException)


async def test_sse_error_event_before_content(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("x",), sse_error_after=0)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(ProviderUnavailableError, match="error event"):
            await llm.generate_text("hi")


async def test_malformed_json_is_typed(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("a", "b"), malformed_after=0)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(ProviderUnavailableError, match="malformed"):
            await llm.generate_text("hi")


async def test_multibyte_text_split_across_packets(server: FakeServer, kind: Kind) -> None:
    text = "héllo wörld 你好 🎉 ünïcödé"
    server.default = Script(text=text, split_writes=True)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        assert await llm.generate_text("hi") == text


async def test_early_break_closes_upstream(server: FakeServer, kind: Kind) -> None:
    server.default = Script(tokens=1000, token_delay=0.01)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        async with llm.generate_stream("hi") as stream:
            async for chunk in stream:
                if chunk.index == 2:
                    break
        left = time.monotonic()
        request = server.requests[-1]
        await server.wait_closed(request, timeout=0.5)
        assert request.client_closed_at is not None
        assert request.client_closed_at - left < 0.5


async def test_cancellation_closes_upstream(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("a", "b"), stall_after=1)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with anyio.move_on_after(0.3) as scope:
            await llm.generate_text("hi")
        assert scope.cancelled_caught
        request = server.requests[-1]
        await server.wait_closed(request, timeout=0.5)
        assert request.client_closed_at is not None


async def test_stream_closed_from_another_task(server: FakeServer, kind: Kind) -> None:
    """The FastAPI shape: a user's async generator over the stream, closed by another task."""
    server.default = Script(tokens=1000, token_delay=0.01)
    async with LLMCommunication(config(provider(server, kind))) as llm:

        async def body() -> AsyncGenerator[str]:
            async with llm.generate_stream("hi") as stream:
                async for chunk in stream:
                    yield chunk.text

        generator = body()
        assert (await generator.__anext__()).startswith("tok")
        async with anyio.create_task_group() as tg:
            tg.start_soon(generator.aclose)  # closed from a different task than the one that iterated
        await server.wait_closed(server.requests[-1], timeout=0.5)


async def test_openai_server_rejecting_stream_options(server: FakeServer) -> None:
    server.default = Script(text="still fine", reject_stream_options=True)
    async with LLMCommunication(config(provider(server, "openai"))) as llm:
        response = await llm.generate_response("hi")
        assert response.content == "still fine"
        await llm.generate_text("again")
    bodies = [r.body for r in server.requests]
    assert "stream_options" in bodies[0]
    assert all("stream_options" not in b for b in bodies[1:])


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "   ",
        [],
        [{"role": "user"}],
        [{"role": "robot", "content": "x"}],
        [{"role": "user", "content": 3}],
        42,
    ],
)
async def test_bad_input_is_refused_before_io(server: FakeServer, bad: object) -> None:
    async with LLMCommunication(config(provider(server))) as llm:
        with pytest.raises(InvalidRequestError):
            await llm.generate_text(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError):
            llm.generate_stream(bad)  # type: ignore[arg-type]
    assert server.request_count == 0


@pytest.mark.parametrize(
    "options",
    [{"max_tokens": 0}, {"max_tokens": -5}, {"max_tokens": 1.5}, {"temperature": 9}, {"timeout": 0}, {"colour": "red"}],
)
async def test_bad_options_are_refused_before_io(server: FakeServer, options: dict[str, object]) -> None:
    async with LLMCommunication(config(provider(server))) as llm:
        with pytest.raises(InvalidRequestError):
            await llm.generate_text("hi", **options)  # type: ignore[arg-type]  # bad on purpose
        with pytest.raises(InvalidRequestError, match="unknown provider"):
            await llm.generate_text("hi", provider="nope")
    assert server.request_count == 0


async def test_canary_key_never_leaks(server: FakeServer, kind: Kind, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.enqueue(Script(text="ok"), Script(status=401), Script(chunks=("a",), sse_error_after=1))
    cfg = config(provider(server, kind))
    seen: list[str] = [repr(cfg), str(cfg), repr(cfg.providers[0])]
    async with LLMCommunication(cfg) as llm:
        seen.append(repr(llm))
        seen.append(repr(llm.manager.providers[0]))
        await llm.generate_text("hi")
        for _ in range(2):
            with pytest.raises(LLMException) as info:
                await llm.generate_text("hi")
            error: BaseException | None = info.value
            while error is not None:
                seen += [str(error), repr(error)]
                error = error.__cause__
    seen += [r.getMessage() for r in caplog.records]
    seen += [repr(r.args) for r in caplog.records]
    assert all(KEY not in text for text in seen)
    assert (
        server.requests[0].headers.get("x-api-key", server.requests[0].headers.get("authorization", "")).endswith(KEY)
    )
