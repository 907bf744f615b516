"""Tests for llmcomm.testing, the loopback fake Anthropic/OpenAI server."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import anyio
import anyio.to_thread
import httpx2
import openai
import orjson
import pytest

import llmcomm.testing
from llmcomm.testing import FakeServer, RecordedRequest, Script
from llmcomm.testing.__main__ import main as cli_main
from tests.helpers import default_sigint

pytestmark = [
    pytest.mark.anyio,
    # The SDKs stop iterating their SSE generators at the terminal event (or
    # when a test leaves a stream early) without closing them; trio reports
    # such generators when they are garbage collected, which says nothing
    # about the server.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object:pytest.PytestUnraisableExceptionWarning"
    ),
]

USER: list[dict[str, str]] = [{"role": "user", "content": "say something nice"}]
ANTHROPIC_USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "say something nice"}]
OPENAI_USER: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "say something nice"}]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on both anyio backends."""
    return str(request.param)


# -- helpers ---------------------------------------------------------------


def anthropic_client(server: FakeServer, http: httpx2.AsyncClient) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0, http_client=http)


def openai_client(server: FakeServer, http: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0, http_client=http)


def anthropic_body(*, stream: bool, model: str = "claude-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": USER, "stream": stream, **extra}


def openai_body(*, stream: bool, model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER, "stream": stream, **extra}


async def read_raw(
    http: httpx2.AsyncClient, url: str, body: dict[str, Any], timeout: float = 5.0
) -> tuple[httpx2.Response, bytes]:
    """POST and read the whole body, bounded by ``timeout``."""
    with anyio.fail_after(timeout):
        async with http.stream("POST", url, json=body) as response:
            data = b"".join([chunk async for chunk in response.aiter_bytes()])
    return response, data


def sse_events(data: bytes) -> list[tuple[str | None, bytes]]:
    """Split an SSE body into (event name, data) pairs; comments are kept as ``(":", line)``."""
    events: list[tuple[str | None, bytes]] = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        name: str | None = None
        payload = b""
        for line in block.split(b"\n"):
            if line.startswith(b":"):
                events.append((":", line))
            elif line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                payload = line[6:]
        if payload:
            events.append((name, payload))
    return events


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` every 10 ms for at most ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01) + 1):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition still false after the timeout")


async def stream_into(http: httpx2.AsyncClient, url: str, body: dict[str, Any], into: bytearray) -> None:
    """Stream a response into ``into``, so a test keeps what arrived before an error."""
    async with http.stream("POST", url, json=body) as response:
        async for chunk in response.aiter_bytes():
            into += chunk


async def receive_to_eof(sock: anyio.abc.ByteStream) -> bytes:
    """Everything the peer sends until it closes (callers bound this with a timeout)."""
    data = b""
    while True:
        try:
            data += await sock.receive()
        except anyio.EndOfStream:
            return data


async def anthropic_text_into(server: FakeServer, http: httpx2.AsyncClient, into: list[str]) -> None:
    """Stream through the Anthropic SDK, appending each text delta to ``into`` as it arrives."""
    async with anthropic_client(server, http).messages.stream(
        model="claude-test", max_tokens=64, messages=ANTHROPIC_USER
    ) as stream:
        async for text in stream.text_stream:
            into.append(text)  # one by one: the deltas before an error are the point


async def openai_stream_text(server: FakeServer, http: httpx2.AsyncClient) -> str:
    """Stream through the OpenAI SDK and return the joined content deltas."""
    stream = await openai_client(server, http).chat.completions.create(
        model="gpt-test", messages=OPENAI_USER, stream=True
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def read_until(response: httpx2.Response, needle: bytes, count: int) -> bytes:
    """Read from a streaming response until ``needle`` was seen ``count`` times."""
    seen = b""
    with anyio.fail_after(3):
        async for chunk in response.aiter_bytes():
            seen += chunk
            if seen.count(needle) >= count:
                return seen
    raise AssertionError(f"stream ended after {seen!r}")


# -- official SDKs ---------------------------------------------------------


async def test_anthropic_sdk_non_streaming() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(Script(text="Bonjour tout le monde", input_tokens=7))
        message = await anthropic_client(server, http).messages.create(
            model="claude-test", max_tokens=64, messages=ANTHROPIC_USER
        )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Bonjour tout le monde"
    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 4)
    [request] = server.requests
    assert (request.method, request.path, request.api, request.stream) == (
        "POST",
        "/v1/messages",
        "anthropic",
        False,
    )
    # Newer SDKs send the key as a bearer token rather than x-api-key.
    credentials = (request.headers.get("x-api-key"), request.headers.get("authorization"))
    assert credentials in {("test", None), (None, "Bearer test")}
    assert "anthropic-version" in request.headers
    assert request.body["messages"] == USER
    assert request.model == "claude-test"
    assert request.script == Script(text="Bonjour tout le monde", input_tokens=7)
    assert request.response_started_at is not None
    assert request.finished_at is not None
    assert request.received_at <= request.response_started_at <= request.finished_at


async def test_anthropic_sdk_streaming() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.default = Script(text="one two three four", output_tokens=9)
        client = anthropic_client(server, http)
        async with client.messages.stream(model="claude-test", max_tokens=64, messages=ANTHROPIC_USER) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert pieces == ["one ", "two ", "three ", "four"]
    assert final.content[0].type == "text"
    assert final.content[0].text == "one two three four"
    assert final.usage.input_tokens == 3  # words in USER
    assert final.usage.output_tokens == 9
    assert server.requests[0].stream is True


async def test_openai_sdk_non_streaming_and_streaming_with_usage() -> None:
    script = Script(text="a b c", stop_reason="max_tokens")
    async with FakeServer(default=script) as server, httpx2.AsyncClient() as http:
        client = openai_client(server, http)
        completion = await client.chat.completions.create(model="gpt-test", messages=OPENAI_USER)
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=OPENAI_USER,
            stream=True,
            stream_options={"include_usage": True},
        )
        deltas: list[str] = []
        finish: list[str | None] = []
        usage = None
        async for chunk in stream:
            if chunk.choices:
                deltas.append(chunk.choices[0].delta.content or "")
                finish.append(chunk.choices[0].finish_reason)
            if chunk.usage is not None:
                usage = chunk.usage
    assert completion.choices[0].message.content == "a b c"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)
    assert "".join(deltas) == "a b c"
    assert finish[-1] == "length"
    assert usage is not None
    assert usage.total_tokens == 6
    assert [r.api for r in server.requests] == ["openai", "openai"]
    assert server.requests[1].path == "/v1/chat/completions"
    assert server.requests[1].headers["authorization"] == "Bearer test"


async def test_sdk_errors_carry_retry_after_headers() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(
            Script(status=429, retry_after=1.0, error_message="slow down"),
            Script(status=429, retry_after_ms=250, error_code="insufficient_quota"),
            Script(status=529, retry_after=0.5),
        )
        with pytest.raises(anthropic.RateLimitError) as anthropic_error:
            await anthropic_client(server, http).messages.create(
                model="claude-test", max_tokens=64, messages=ANTHROPIC_USER
            )
        with pytest.raises(openai.RateLimitError) as openai_error:
            await openai_client(server, http).chat.completions.create(
                model="gpt-test",
                messages=OPENAI_USER,
            )
        response, data = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=False))
    assert anthropic_error.value.response.headers["retry-after"] == "1"
    assert anthropic_error.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert openai_error.value.response.headers["retry-after-ms"] == "250"
    assert openai_error.value.code == "insufficient_quota"
    assert openai_error.value.type == "rate_limit_error"
    assert response.status_code == 529
    assert response.headers["retry-after"] == "0.5"
    assert orjson.loads(data)["error"]["type"] == "overloaded_error"


async def test_sse_error_event_raises_in_both_sdks() -> None:
    async with FakeServer(default=Script(tokens=5, sse_error_after=2)) as server, httpx2.AsyncClient() as http:
        seen: list[str] = []
        with pytest.raises(anthropic.APIError, match="Overloaded"):
            await anthropic_text_into(server, http, seen)
        assert seen == ["tok0 ", "tok1 "]
        with pytest.raises(openai.APIError, match="server had an error"):
            await openai_stream_text(server, http)


async def test_reject_stream_options_then_accept_without() -> None:
    script = Script(text="fine", reject_stream_options=True)
    async with FakeServer(default=script) as server, httpx2.AsyncClient() as http:
        with pytest.raises(openai.BadRequestError) as error:
            await openai_client(server, http).chat.completions.create(
                model="gpt-test",
                messages=OPENAI_USER,
                stream=True,
                stream_options={"include_usage": True},
            )
        text = await openai_stream_text(server, http)
    assert error.value.param == "stream_options"
    assert "stream_options" in error.value.message
    assert text == "fine"


# -- wire format -----------------------------------------------------------


async def test_anthropic_stream_event_sequence() -> None:
    async with FakeServer(default=Script(chunks=("a", "b"))) as server, httpx2.AsyncClient() as http:
        response, data = await read_raw(
            http, server.anthropic_base_url + "/v1/messages?beta=true", anthropic_body(stream=True)
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["request-id"].startswith("req_")
    events = sse_events(data)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for name, payload in events:
        assert orjson.loads(payload)["type"] == name
    assert orjson.loads(events[3][1])["delta"] == {"type": "text_delta", "text": "a"}
    assert orjson.loads(events[6][1])["usage"] == {"output_tokens": 2}
    assert server.requests[0].query == "beta=true"


async def test_openai_stream_chunk_sequence() -> None:
    async with FakeServer(default=Script(chunks=("x", "y"))) as server, httpx2.AsyncClient() as http:
        _, plain = await read_raw(http, server.openai_base_url + "/chat/completions", openai_body(stream=True))
        _, with_usage = await read_raw(
            http,
            server.openai_base_url + "/chat/completions",
            openai_body(stream=True, stream_options={"include_usage": True}),
        )
    payloads = [payload for _, payload in sse_events(plain)]
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["x", "y"]
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    usage_chunk = orjson.loads(sse_events(with_usage)[-2][1])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_system_prompts_in_both_places_are_accepted() -> None:
    body = {
        "model": "claude-test",
        "max_tokens": 8,
        "system": [{"type": "text", "text": "be brief please"}],
        "messages": [
            {"role": "system", "content": "really brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
    }
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        response, data = await read_raw(http, server.anthropic_base_url + "/v1/messages", body)
    assert response.status_code == 200
    assert orjson.loads(data)["usage"]["input_tokens"] == 6


async def test_omit_terminal_and_malformed_line() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(
            Script(chunks=("a", "b"), omit_terminal=True),
            Script(chunks=("a", "b"), omit_terminal=True),
            Script(chunks=("a", "b", "c"), malformed_after=1),
        )
        _, anthropic_data = await read_raw(
            http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True)
        )
        _, openai_data = await read_raw(http, server.openai_base_url + "/chat/completions", openai_body(stream=True))
        _, malformed = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True))
    assert anthropic_data.endswith(
        b"event: content_block_stop\ndata: " + b'{"type":"content_block_stop","index":0}\n\n'
    )
    assert b"message_stop" not in anthropic_data
    assert b"[DONE]" not in openai_data
    assert b'"finish_reason":"stop"' not in openai_data
    broken = b'data: {"type": "content_block_delta", "delta": {\n\n'
    assert malformed.count(broken) == 1
    assert malformed.index(b'"text":"a"') < malformed.index(broken) < malformed.index(b'"text":"b"')
    assert malformed.endswith(b'data: {"type":"message_stop"}\n\n')


async def test_body_override_and_unknown_paths() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(
            Script(body_override=b"<html>gateway</html>", content_type="text/html"),
            Script(body_override=b""),
        )
        html, html_data = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True))
        empty, empty_data = await read_raw(http, server.openai_base_url + "/chat/completions", openai_body(stream=True))
        server.enqueue(Script(headers=(("Content-Type", "text/plain"), ("x-extra", "1"))))
        custom = await http.post(server.anthropic_base_url + "/v1/messages", json=anthropic_body(stream=False))
        head = await http.head(server.anthropic_base_url + "/")
        models = await http.get(server.openai_base_url + "/models")
    assert (html.status_code, html.headers["content-type"], html_data) == (
        200,
        "text/html",
        b"<html>gateway</html>",
    )
    assert (empty.status_code, empty.headers["content-type"], empty_data) == (
        200,
        "text/event-stream",
        b"",
    )
    assert (custom.headers["content-type"], custom.headers["x-extra"]) == ("text/plain", "1")
    assert custom.headers.get_list("content-type") == ["text/plain"]
    assert head.status_code == 404
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert models.status_code == 404
    assert models.json()["error"]["type"] == "not_found_error"
    assert [r.api for r in server.requests] == ["anthropic", "openai", "anthropic", "other", "other"]
    assert server.request_count == 3
    assert server.requests[3].script is None


# -- scripting and recording ----------------------------------------------


async def test_route_then_queue_then_default() -> None:
    async with FakeServer(default=Script(text="default")) as server:
        server.route(model="m-routed", script=Script(text="routed"))
        server.enqueue(Script(text="first"), Script(text="second"))
        async with httpx2.AsyncClient() as http:
            texts = []
            for model in ["m-a", "m-routed", "m-b", "m-routed", "m-c"]:
                _, data = await read_raw(
                    http,
                    server.anthropic_base_url + "/v1/messages",
                    anthropic_body(stream=False, model=model),
                )
                texts.append(orjson.loads(data)["content"][0]["text"])
        assert texts == ["first", "routed", "second", "routed", "default"]
        assert [r.model for r in server.requests] == ["m-a", "m-routed", "m-b", "m-routed", "m-c"]
        await server.wait_for_requests(5, timeout=0.1)
        with pytest.raises(TimeoutError):
            await server.wait_for_requests(6, timeout=0.05)
        server.enqueue(Script(text="dropped"))
        server.reset()
        assert server.requests == []
        assert server.request_count == 0
        async with httpx2.AsyncClient() as http:
            _, data = await read_raw(
                http,
                server.anthropic_base_url + "/v1/messages",
                anthropic_body(stream=False, model="m-routed"),
            )
        assert orjson.loads(data)["content"][0]["text"] == "default"


async def test_keep_alive_reuses_one_connection_and_idle_close_is_seen() -> None:
    async with FakeServer() as server:
        async with httpx2.AsyncClient() as http:
            client = anthropic_client(server, http)
            for _ in range(3):
                await client.messages.create(model="claude-test", max_tokens=8, messages=ANTHROPIC_USER)
            assert {r.connection_id for r in server.requests} == {1}
            assert server.open_connections == 1
        last = server.requests[-1]
        await server.wait_closed(last, timeout=1.0)
        assert last.client_closed_at is not None
        assert server.requests[0].client_closed_at is None
        await eventually(lambda: server.open_connections == 0)


async def test_close_connection_forces_new_connections() -> None:
    async with FakeServer(default=Script(close_connection=True)) as server:
        async with httpx2.AsyncClient() as http:
            for stream in (False, True, True):
                response, data = await read_raw(
                    http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=stream)
                )
                assert response.headers["connection"] == "close"
                assert data.endswith(b"}") or data.endswith(b"\n\n")
            assert "transfer-encoding" not in response.headers
        assert [r.connection_id for r in server.requests] == [1, 2, 3]
        for request in server.requests:
            await server.wait_closed(request, timeout=1.0)


async def test_chunked_request_body_is_decoded() -> None:
    payload = orjson.dumps(anthropic_body(stream=False, model="chunked-model"))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 7):
            yield payload[start : start + 7]

    async with FakeServer() as server, httpx2.AsyncClient() as http:
        response = await http.post(server.anthropic_base_url + "/v1/messages", content=pieces())
    assert response.status_code == 200
    [request] = server.requests
    assert request.headers["transfer-encoding"] == "chunked"
    assert request.model == "chunked-model"


async def test_raw_socket_pipelining_expect_continue_and_garbage() -> None:
    body = orjson.dumps(anthropic_body(stream=False))
    request = (
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body)
    )
    async with FakeServer() as server:
        received = b""
        with anyio.fail_after(3):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as sock:
                await sock.send(request + request)
                while received.count(b"HTTP/1.1 200 OK") < 2 or not received.endswith(b"}"):
                    received += await sock.receive()
                head, _, _ = request.partition(b"\r\n\r\n")
                await sock.send(head + b"\r\nexpect: 100-continue\r\n\r\n")
                interim = await sock.receive()
                assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
                await sock.send(body)
                final = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
                while not final.endswith(b"}"):
                    final += await sock.receive()
                assert final.startswith(b"HTTP/1.1 200 OK")
            async with await anyio.connect_tcp("127.0.0.1", server.port) as sock:
                await sock.send(b"NONSENSE\r\n\r\n")
                reply = await receive_to_eof(sock)
        assert reply.startswith(b"HTTP/1.1 400 Bad Request")
        assert server.request_count == 3
        assert server.errors == []


async def test_http10_stream_is_close_delimited() -> None:
    body = orjson.dumps(anthropic_body(stream=True))
    request = b"POST /v1/messages HTTP/1.0\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    async with FakeServer(default=Script(chunks=("old", " client"))) as server:
        with anyio.fail_after(3):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as sock:
                await sock.send(request)
                reply = await receive_to_eof(sock)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head
    assert b"connection: close" in head
    assert payload.endswith(b'data: {"type":"message_stop"}\n\n')


async def test_port_in_use_is_reported() -> None:
    async with FakeServer() as first:
        with pytest.raises(OSError):
            async with FakeServer(port=first.port):
                pass
        with pytest.raises(RuntimeError, match="failed to start") as error:
            await anyio.to_thread.run_sync(FakeServer(port=first.port).__enter__)
        assert isinstance(error.value.__cause__, OSError)


# -- timing and faults -----------------------------------------------------


async def test_delays_keepalives_and_drip() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(
            Script(chunks=("x",), delay_before_first_token=0.35, keepalive_interval=0.1),
            Script(chunks=("x",), delay_before_first_token=0.25, keepalive_interval=0.1),
            Script(tokens=5, token_delay=0.05),
            Script(delay_before_headers=0.2),
        )
        _, pings = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True))
        _, comments = await read_raw(http, server.openai_base_url + "/chat/completions", openai_body(stream=True))
        started = time.monotonic()
        _, drip = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True))
        drip_elapsed = time.monotonic() - started
        await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=False))
    names = [name for name, _ in sse_events(pings)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names.count("ping") >= 4  # the opening ping plus three keep-alives
    assert names.index("content_block_delta") > 3
    assert comments.count(b": keep-alive\n\n") >= 2
    first, _, _, delayed = server.requests
    assert first.finished_at is not None
    assert first.response_started_at is not None
    assert first.finished_at - first.response_started_at >= 0.3
    assert drip.count(b"content_block_delta") == 10
    assert 0.2 <= drip_elapsed < 2.0
    assert delayed.response_started_at is not None
    assert delayed.response_started_at - delayed.received_at >= 0.19


async def test_non_streaming_stall_ends_when_client_times_out() -> None:
    async with FakeServer(default=Script(stall_after=0)) as server, httpx2.AsyncClient() as http:
        client = anthropic.AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="test", max_retries=0, timeout=0.2, http_client=http
        )
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(model="claude-test", max_tokens=8, messages=ANTHROPIC_USER)
        [request] = server.requests
        await server.wait_closed(request, timeout=0.5)
        assert request.response_started_at is None
        assert request.client_closed_at is not None


async def test_client_close_of_stalled_stream_is_detected() -> None:
    async with FakeServer() as server, httpx2.AsyncClient() as http:
        server.enqueue(Script(tokens=10, stall_after=2), Script(tokens=10, stall_after=1))
        async with http.stream(
            "POST", server.anthropic_base_url + "/v1/messages", json=anthropic_body(stream=True)
        ) as response:
            await read_until(response, b"event: content_block_delta", 2)
            closing = time.monotonic()
        raw_request = server.requests[0]
        await server.wait_closed(raw_request, timeout=0.5)
        assert raw_request.client_closed_at is not None
        assert raw_request.client_closed_at - closing < 0.5
        assert raw_request.finished_at is None

        # The same through the SDK: leaving the stream early must close the connection.
        seen: list[str] = []
        async with anthropic_client(server, http).messages.stream(
            model="claude-test", max_tokens=8, messages=ANTHROPIC_USER
        ) as stream:
            with anyio.fail_after(3):
                async for text in stream.text_stream:
                    seen.append(text)
                    break
            closing = time.monotonic()
        sdk_request = server.requests[1]
        await server.wait_closed(sdk_request, timeout=0.5)
        assert sdk_request.client_closed_at is not None
        assert sdk_request.client_closed_at - closing < 0.5
        assert seen == ["tok0 "]
        await eventually(lambda: server.open_connections == 0)
        assert server.errors == []


async def test_stall_with_keepalives_ends_when_client_closes() -> None:
    async with FakeServer(default=Script(stall_after=0, keepalive_interval=0.02)) as server:
        async with (
            httpx2.AsyncClient() as http,
            http.stream(
                "POST", server.openai_base_url + "/chat/completions", json=openai_body(stream=True)
            ) as response,
        ):
            data = await read_until(response, b": keep-alive", 3)
        assert b'"content":"Hello' not in data
        await server.wait_closed(server.requests[0], timeout=0.5)
        assert server.requests[0].client_closed_at is not None


async def test_reset_after_aborts_connection() -> None:
    async with FakeServer(default=Script(tokens=10, reset_after=3)) as server, httpx2.AsyncClient() as http:
        received = bytearray()
        url = server.anthropic_base_url + "/v1/messages"
        with pytest.raises(httpx2.ReadError), anyio.fail_after(3):
            await stream_into(http, url, anthropic_body(stream=True), received)
        with pytest.raises(anthropic.APIConnectionError):
            await anthropic_client(server, http).messages.create(
                model="claude-test", max_tokens=8, messages=ANTHROPIC_USER
            )
        assert received.count(b"event: content_block_delta") == 3
        assert b"message_stop" not in received
        await server.wait_closed(server.requests[0], timeout=0.5)
        assert server.errors == []


async def test_split_writes_preserve_utf8() -> None:
    text = "héllo wörld 你好 🎉"
    async with FakeServer(default=Script(text=text, split_writes=True)) as server, httpx2.AsyncClient() as http:
        async with anthropic_client(server, http).messages.stream(
            model="claude-test", max_tokens=8, messages=ANTHROPIC_USER
        ) as stream:
            streamed = "".join([piece async for piece in stream.text_stream])
        openai_text = await openai_stream_text(server, http)
        pieces = 0
        async with http.stream(
            "POST", server.anthropic_base_url + "/v1/messages", json=anthropic_body(stream=True)
        ) as response:
            async for _ in response.aiter_raw():
                pieces += 1
        _, plain = await read_raw(http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=False))
    assert streamed == text
    assert openai_text == text
    assert pieces > len(text.encode())
    assert orjson.loads(plain)["content"][0]["text"] == text


async def test_twenty_thousand_tokens_stream_fast() -> None:
    async with FakeServer(default=Script(tokens=20_000)) as server, httpx2.AsyncClient() as http:
        started = time.perf_counter()
        _, anthropic_data = await read_raw(
            http, server.anthropic_base_url + "/v1/messages", anthropic_body(stream=True)
        )
        anthropic_elapsed = time.perf_counter() - started
        started = time.perf_counter()
        _, openai_data = await read_raw(http, server.openai_base_url + "/chat/completions", openai_body(stream=True))
        openai_elapsed = time.perf_counter() - started
    assert anthropic_data.count(b"event: content_block_delta") == 20_000
    assert b'"text":"tok19999 "' in anthropic_data
    assert openai_data.count(b'"content":"tok') == 20_000
    assert anthropic_elapsed < 1.0, anthropic_elapsed
    assert openai_elapsed < 1.0, openai_elapsed


async def test_exit_is_prompt_with_stalled_connections() -> None:
    async def consume(http: httpx2.AsyncClient, url: str) -> None:
        try:
            async with http.stream("POST", url, json=anthropic_body(stream=True)) as response:
                async for _ in response.aiter_bytes():
                    pass
        except httpx2.HTTPError:
            pass

    with anyio.fail_after(5):
        async with httpx2.AsyncClient() as http, anyio.create_task_group() as clients:
            server = FakeServer(default=Script(stall_after=1, keepalive_interval=0.05))
            async with server:
                for _ in range(3):
                    clients.start_soon(consume, http, server.anthropic_base_url + "/v1/messages")
                await server.wait_for_requests(3, timeout=2)
                await eventually(lambda: all(r.response_started_at for r in server.requests))
                assert server.open_connections == 3
                stopping = time.monotonic()
            assert time.monotonic() - stopping < 0.5
    assert server.open_connections == 0
    assert server.errors == []
    with pytest.raises(RuntimeError):
        _ = server.port


# -- sync form, CLI, validation --------------------------------------------


def test_sync_server_from_plain_code() -> None:
    with FakeServer(default=Script(text="sync ok")) as server:
        with httpx2.Client() as http:
            client = anthropic.Anthropic(
                base_url=server.anthropic_base_url, api_key="test", max_retries=0, http_client=http
            )
            message = client.messages.create(model="claude-test", max_tokens=8, messages=ANTHROPIC_USER)
            server.enqueue(Script(status=500))
            failed = http.post(server.openai_base_url + "/chat/completions", json=openai_body(stream=False))
        assert message.content[0].type == "text"
        assert message.content[0].text == "sync ok"
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "api_error"
        assert server.request_count == 2
        assert anyio.run(server.wait_for_requests, 2, 1.0) is None
    assert not [t for t in threading.enumerate() if t.name == "llmcomm-testing-server"]


def test_cli_serves_until_interrupted() -> None:
    root = Path(llmcomm.testing.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "llmcomm.testing", "--port", "0", "--text", "from the cli"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, preexec_fn=default_sigint) as process:
        try:
            serve_and_interrupt(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)


def serve_and_interrupt(process: subprocess.Popen[bytes]) -> None:
    """Read the CLI's address line, make one request, then press Ctrl-C."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 10)
    assert ready, "the CLI printed nothing"
    line = process.stdout.readline().decode()
    fields = dict(part.split("=", 1) for part in line.split())
    assert fields["openai_base_url"] == fields["anthropic_base_url"] + "/v1"
    response = httpx2.post(fields["anthropic_base_url"] + "/v1/messages", json=anthropic_body(stream=False), timeout=5)
    assert response.json()["content"][0]["text"] == "from the cli"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0


def test_cli_help_names_the_variables_that_point_clients_at_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for variable in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        assert variable in out


def test_cli_and_server_refuse_non_loopback_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--host", "0.0.0.0"])
    assert exit_info.value.code == 2
    assert "only loopback is allowed" in capsys.readouterr().err
    for host in ("192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            FakeServer(host=host)


def test_script_defaults_and_validation() -> None:
    assert Script().content_chunks == ("Hello ", "from ", "llmcomm.testing.")
    assert Script(tokens=3, text="ignored").content_chunks == ("tok0 ", "tok1 ", "tok2 ")
    assert Script(chunks=("a",), tokens=3).content_chunks == ("a",)
    assert Script(text="  lead  and trail ").content_chunks == ("  ", "lead  ", "and ", "trail ")
    expected = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
        502: "api_error",
    }
    assert {status: Script(status=status).resolved_error_type for status in expected} == expected
    assert Script(status=429, error_type="custom").resolved_error_type == "custom"
    bad_values: list[dict[str, Any]] = [
        {"tokens": -1},
        {"token_delay": -0.1},
        {"keepalive_interval": 0.0},
        {"status": 42},
        {"headers": (("Content-Length", "3"),)},
    ]
    for bad in bad_values:
        with pytest.raises(ValueError):
            Script(**bad)


def test_recorded_request_is_a_plain_dataclass() -> None:
    record = RecordedRequest(
        method="POST",
        path="/v1/messages",
        query="",
        headers={},
        body=None,
        api="anthropic",
        stream=False,
        model=None,
        connection_id=1,
        received_at=0.0,
    )
    record.client_closed_at = 1.0
    assert record.script is None
    assert record.finished_at is None
    assert llmcomm.testing.__all__ == sorted(llmcomm.testing.__all__)
