"""What real servers send, over real HTTP to the fake server: both wires, asyncio and trio.

The bodies are the decoder tests' builders (tests/wire_events.py), written as
raw bytes by `FakeServer`; what is asserted is what a caller relies on: the text,
the usage, the error class and message, and how long it took.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable
from typing import Any, Literal

import orjson
import pytest

from llmcomm import (
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    ProviderUnavailableError,
    RateLimitError,
    StreamChunk,
    StreamInterruptedError,
    UsageInfo,
)
from llmcomm._secrets import mask_secret
from llmcomm._types import is_progress
from llmcomm.testing import FakeServer, Script

from .helpers import KEY, config, provider
from .wire_events import ANTHROPIC, OPENAI, Wire

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]
WIRE: dict[str, Wire] = {"anthropic": ANTHROPIC, "openai": OPENAI}
BOM = b"\xef\xbb\xbf"


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


def raw(body: bytes, content_type: str = "text/event-stream") -> Script:
    return Script(body_override=body, content_type=content_type)


async def call(server: FakeServer, kind: Kind, **options: Any) -> tuple[Any, list[StreamChunk]]:
    """One streamed call; returns (response, chunks)."""
    settings = options.pop("settings", {})
    chunks: list[StreamChunk] = []
    async with LLMCommunication(config(provider(server, kind), **settings)) as llm:
        async with llm.generate_stream("hi", **options) as stream:
            chunks += [chunk async for chunk in stream]
        return stream.response, chunks


# (id, body builder, text the caller gets)
SUCCESSES: list[tuple[str, Callable[[Wire], bytes], str]] = [
    ("leading-bom", lambda w: BOM + w.start + w.text("Hello") + w.text(" world") + w.finish + w.marker, "Hello world"),
    ("empty-data-frames", lambda w: w.start + w.text("Hello") + b"data:\n\ndata: \n\nretry: 5\n\nid: 1\n\n"
        + w.text(" world") + w.finish + w.marker, "Hello world"),
    ("events-after-the-terminal-one", lambda w: w.start + w.text("Hello") + w.finish + w.marker
        + b"data: [DONE]\n\ndata: {broken\n\n", "Hello"),
    ("finish-without-terminal-marker", lambda w: w.start + w.text("Hello") + w.finish, "Hello"),
    ("surrogate-pair-split-across-events", lambda w: w.start + w.text_literal(b"Hi \\ud83d")
        + w.text_literal(b"\\ude00!") + w.finish + w.marker, "Hi \U0001f600!"),
    ("lone-surrogate", lambda w: w.start + w.text_literal(b"A\\udcafB") + w.finish + w.marker, "A\ufffdB"),
    ("invalid-utf8", lambda w: w.start + w.text_literal(b"a\xffb") + w.finish + w.marker, "a\ufffdb"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "text"), [pytest.param(b, t, id=i) for i, b, t in SUCCESSES])
async def test_what_real_servers_send_is_read_as_the_reply(
    server: FakeServer, kind: Kind, build: Callable[[Wire], bytes], text: str
) -> None:
    server.default = raw(build(WIRE[kind]))
    response, chunks = await call(server, kind)
    assert response.content == "".join(c.text for c in chunks) == text
    assert response.finish_reason in ("end_turn", "stop")
    assert response.usage.completion_tokens == 3


async def test_a_stray_error_line_is_a_typed_error_without_retry(server: FakeServer, kind: Kind) -> None:
    server.default = raw(
        b'error: {"code":400,"message":"the request exceeds the available context size, key ' + KEY.encode() + b'"}'
        b"\n\n" + WIRE[kind].marker
    )
    async with LLMCommunication(config(provider(server, kind), max_retries=2)) as llm:
        started = time.monotonic()
        with pytest.raises(InvalidRequestError) as caught:
            await llm.generate_text("hi")
        elapsed = time.monotonic() - started
    assert elapsed < 1.0  # the error reaches the caller at once: no retry, no backoff
    assert server.request_count == 1
    error = caught.value
    assert (error.status_code, error.provider, error.retryable) == (400, kind, False)
    assert "exceeds the available context size" in str(error)
    assert KEY not in str(error) and mask_secret(KEY) in str(error)


async def test_a_stream_with_no_reply_in_it_is_a_failure(server: FakeServer, kind: Kind) -> None:
    wire = WIRE[kind]
    server.default = raw(wire.start + b": keep-alive\n\n" + wire.marker)
    with pytest.raises(ProviderUnavailableError, match="neither content nor a finish reason") as caught:
        await call(server, kind)
    assert caught.value.retryable


@pytest.mark.parametrize(
    "value", [b"5", b'{"text": "x"}', b'[{"type": "text", "text": 3}]'], ids=["number", "object", "bad-parts"]
)
async def test_a_field_of_the_wrong_type_is_a_typed_error(server: FakeServer, kind: Kind, value: bytes) -> None:
    wire = WIRE[kind]
    server.default = raw(wire.start + wire.text("a") + wire.text_value(value) + wire.finish + wire.marker)
    with pytest.raises(StreamInterruptedError) as caught:
        await call(server, kind)
    assert caught.value.partial_text == "a"
    assert isinstance(caught.value.__cause__, ProviderUnavailableError)
    assert "malformed event stream" in str(caught.value.__cause__)
    assert "ExceptionGroup" not in str(caught.value)


async def test_openai_content_parts_and_choices(server: FakeServer) -> None:
    def chunk(index: int, content: object, finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": {"content": content}, "finish_reason": finish}
        return b"data: " + orjson.dumps({"object": "chat.completion.chunk", "choices": [choice]}) + b"\n\n"

    words = {0: ["Paris", " is", " big"], 1: ["Lyon", " is", " old"]}
    body = b"".join(chunk(i, words[i][step], "stop" if step == 2 else None) for step in range(3) for i in range(2))
    body += chunk(0, [{"type": "text", "text": "!"}, {"type": "text", "text": "!"}])
    server.default = raw(body + b"data: [DONE]\n\n")
    response, _ = await call(server, "openai", extra={"n": 2})
    assert response.content == "Paris is big!!"
    assert server.requests[-1].body["n"] == 2


async def test_a_json_reply_to_a_stream_request_is_the_reply(server: FakeServer, kind: Kind) -> None:
    server.default = Script(
        text="Hello from JSON", stream_as_json=True, input_tokens=9, output_tokens=4, reasoning=("brief",)
    )
    response, chunks = await call(server, kind)
    assert response.content == "Hello from JSON"
    assert "".join(c.reasoning for c in chunks) == "brief"
    assert response.usage == UsageInfo(9, 4, 13)
    assert response.finish_reason in ("end_turn", "stop")


async def test_an_error_in_a_json_reply_is_a_typed_error(server: FakeServer, kind: Kind) -> None:
    body = b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}'
    server.default = raw(body, "application/json")
    with pytest.raises(ProviderUnavailableError, match="busy") as caught:
        await call(server, kind)
    assert caught.value.status_code == 529


async def test_a_reply_without_its_terminal_marker_keeps_its_usage(server: FakeServer, kind: Kind) -> None:
    server.default = Script(text="Hello there", omit_terminal_marker=True, input_tokens=7, output_tokens=2)
    response, _ = await call(server, kind)
    assert (response.content, response.usage) == ("Hello there", UsageInfo(7, 2, 9))


async def test_a_reply_without_its_finish_reason_is_still_a_failure(server: FakeServer, kind: Kind) -> None:
    server.default = Script(text="Hello there", omit_terminal=True)
    with pytest.raises(StreamInterruptedError, match="ended before") as caught:
        await call(server, kind)
    assert caught.value.partial_text == "Hello there"


async def test_cache_and_reasoning_counts_reach_usage(server: FakeServer, kind: Kind) -> None:
    # Anthropic reports cache writes, OpenAI reasoning tokens; each wire fills what it reports.
    server.default = Script(
        text="ok",
        input_tokens=130,
        output_tokens=50,
        cache_read_tokens=100,
        cache_write_tokens=20 if kind == "anthropic" else 0,
        reasoning_tokens=30 if kind == "openai" else 0,
        start_input_tokens=0 if kind == "anthropic" else None,  # the final count comes in message_delta
    )
    response, _ = await call(server, kind)
    usage = response.usage
    assert usage == UsageInfo(130, 50, 180)
    assert usage.cache_read_tokens == 100
    assert (usage.cache_write_tokens, usage.reasoning_tokens) == ((20, 0) if kind == "anthropic" else (0, 30))


async def test_reasoning_is_streamed_as_reasoning_chunks(server: FakeServer, kind: Kind) -> None:
    server.default = Script(reasoning=("Let me think. ", "Done."), text="forty two")
    response, chunks = await call(server, kind)
    progress = [(c.text, c.reasoning) for c in chunks if is_progress(c)]
    assert progress == [("", "Let me think. "), ("", "Done."), ("forty ", ""), ("two", "")]
    assert response.content == "forty two"
    assert chunks[-1].finish_reason is not None


async def test_reasoning_wins_the_race(server: FakeServer, kind: Kind) -> None:
    # The primary thinks for 1.8 s before its text; the backup would answer at once.
    server.route(model="thinker", script=Script(reasoning=("a", "b", "c", "d"), token_delay=0.6, text="mine"))
    server.route(model="quick", script=Script(text="backup"))
    primary = provider(server, kind, name="primary", model="thinker")
    backup = provider(server, kind, name="backup", model="quick")
    async with LLMCommunication(config(primary, backup, fallback_timeout=0.5)) as llm:
        started = time.monotonic()
        response = await llm.generate_response("hi")
    assert (response.provider, response.content) == ("primary", "mine")
    assert server.request_count == 1  # progress by reasoning: no hedge was started
    assert 1.7 < time.monotonic() - started < 5.0


async def test_reasoning_keeps_a_started_stream_alive(server: FakeServer, kind: Kind) -> None:
    # Reasoning for 2.4 s in steps of 0.4 s, with an idle timeout of 1 s.
    server.default = Script(reasoning=tuple(f"step {i}. " for i in range(7)), token_delay=0.4, text="done")
    async with LLMCommunication(config(provider(server, kind), stream_idle_timeout=1.0)) as llm:
        started = time.monotonic()
        async with llm.generate_stream("hi") as stream:
            chunks = [chunk async for chunk in stream]
        elapsed = time.monotonic() - started
    assert stream.response is not None and stream.response.content == "done"
    assert sum(1 for c in chunks if c.reasoning) == 7
    assert 2.3 < elapsed < 5.0


async def test_no_exception_group_reaches_the_caller(server: FakeServer, kind: Kind) -> None:
    wire = WIRE[kind]
    server.default = raw(wire.start + wire.text_value(b'[{"type": "text", "text": 3}]') + wire.marker)
    with pytest.raises(LLMException) as caught:
        await call(server, kind)
    chain: list[BaseException] = []
    current: BaseException | None = caught.value
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__
    assert not any(isinstance(e, BaseExceptionGroup) for e in chain)


async def test_events_under_a_json_label_are_read_as_events(server: FakeServer, kind: Kind) -> None:
    wire = WIRE[kind]
    server.default = raw(wire.start + wire.text("Hello") + wire.finish + wire.marker, "application/json")
    response, _ = await call(server, kind)
    assert response.content == "Hello"


async def test_an_error_event_is_mapped_like_the_same_http_status(server: FakeServer, kind: Kind) -> None:
    wire = WIRE[kind]
    quota = (
        b'data: {"error": {"message": "out of credit", "type": "insufficient_quota", "code": "insufficient_quota"}}\n\n'
    )
    server.default = raw(wire.start + quota)
    with pytest.raises(RateLimitError, match="out of credit") as caught:
        await call(server, kind)
    assert not caught.value.retryable  # a quota is not waited out


async def test_a_body_read_past_its_terminal_event_leaves_the_connection_reusable(
    server: FakeServer, kind: Kind
) -> None:
    wire = WIRE[kind]
    server.default = raw(wire.start + wire.text("Hi") + wire.finish + wire.marker + b"data: [DONE]\n\n" * 50)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        assert [await llm.generate_text("hi") for _ in range(3)] == ["Hi"] * 3
    assert [r.connection_id for r in server.requests] == [1, 1, 1]


async def test_pings_inside_a_thinking_block_are_not_idleness(server: FakeServer) -> None:
    # Two thinking deltas 2.5 s apart, pings every 0.3 s between them, and an idle timeout of 1 s:
    # the model is thinking, not silent (DESIGN Part 2).
    server.default = Script(reasoning=("let me see. ", "so: "), token_delay=2.5, keepalive_interval=0.3, text="42")
    llm = LLMCommunication(config(provider(server, "anthropic"), stream_idle_timeout=1.0))
    async with llm, llm.generate_stream("hi") as stream:
        chunks = [chunk async for chunk in stream]
    assert stream.response is not None and stream.response.content == "42"
    assert "".join(c.reasoning for c in chunks) == "let me see. so: "


async def test_pings_outside_a_thinking_block_are_still_idleness(server: FakeServer) -> None:
    server.default = Script(tokens=3, stall_after=1, keepalive_interval=0.2)
    async with LLMCommunication(config(provider(server, "anthropic"), stream_idle_timeout=1.0)) as llm:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError, match="no content"):
            await llm.generate_text("hi")
    assert 0.9 < time.monotonic() - started < 3.0


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity"])
async def test_a_content_coded_stream_is_decoded(server: FakeServer, kind: Kind, coding: str) -> None:
    # An uncoded body is read from httpx2's stream directly; a coded one through its decoders.
    wire = WIRE[kind]
    body = wire.start + wire.text("Hi") + wire.text(" there") + wire.finish + wire.marker
    codings: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress}
    coded = codings.get(coding, bytes)(body)
    server.default = Script(
        body_override=coded, content_type="text/event-stream", headers=(("content-encoding", coding),)
    )
    response, chunks = await call(server, kind)
    assert response.content == "Hi there"
    assert [c.text for c in chunks if c.text] == ["Hi", " there"]
