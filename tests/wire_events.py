"""Raw events of both wires, and the providers' read loop without sockets, for the wire tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
import pytest

from llmcomm._types import StreamChunk
from llmcomm._wire._anthropic import AnthropicDecoder
from llmcomm._wire._decoder import StreamDecoder
from llmcomm._wire._openai import OpenAIDecoder


def sse(obj: object, name: str | None = None) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass(frozen=True)
class Wire:
    """Builders for one wire's events."""

    name: str
    decoder: Callable[[], StreamDecoder]
    start: bytes
    #: a text delta whose JSON value is given raw (a string literal's inside, or any JSON value)
    text_literal: Callable[[bytes], bytes]
    text_value: Callable[[bytes], bytes]
    reasoning: Callable[[str], bytes]
    finish: bytes
    marker: bytes
    error: bytes

    def text(self, value: str) -> bytes:
        return self.text_value(orjson.dumps(value))


def anthropic_event(obj: Mapping[str, object]) -> bytes:
    return sse(obj, str(obj["type"]))


ANTHROPIC = Wire(
    name="anthropic",
    decoder=lambda: AnthropicDecoder("anthropic", "claude-test"),
    start=anthropic_event(
        {
            "type": "message_start",
            "message": {"model": "claude-test", "usage": {"input_tokens": 5, "output_tokens": 1}},
        }
    )
    + anthropic_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    text_literal=lambda raw: (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + raw + b'"}}\n\n'
    ),
    text_value=lambda raw: (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":' + raw + b"}}\n\n"
    ),
    reasoning=lambda text: anthropic_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": text}}
    ),
    finish=anthropic_event(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
    ),
    marker=anthropic_event({"type": "message_stop"}),
    error=anthropic_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
)


def openai_choice(delta: dict[str, object], finish: str | None = None, index: int = 0) -> bytes:
    return sse(
        {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    )


OPENAI = Wire(
    name="openai",
    decoder=lambda: OpenAIDecoder("openai", "gpt-test"),
    start=openai_choice({"role": "assistant", "content": ""}),
    text_literal=lambda raw: (
        b'data: {"choices":[{"index":0,"delta":{"content":"' + raw + b'"},"finish_reason":null}]}\n\n'
    ),
    text_value=lambda raw: b'data: {"choices":[{"index":0,"delta":{"content":' + raw + b'},"finish_reason":null}]}\n\n',
    reasoning=lambda text: openai_choice({"content": None, "reasoning_content": text}),
    finish=openai_choice({}, "stop")
    + sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
    marker=b"data: [DONE]\n\n",
    error=sse({"error": {"message": "Overloaded", "type": "server_error", "code": None}}),
)

WIRES = [pytest.param(ANTHROPIC, id="anthropic"), pytest.param(OPENAI, id="openai")]
SPLITS = [pytest.param(None, id="whole"), pytest.param(1, id="bytewise"), pytest.param(7, id="7-byte-reads")]


def decode(decoder: StreamDecoder, body: bytes, size: int | None = None) -> list[StreamChunk]:
    """What the providers' read loop does with `body`: every chunk, then the closing ones."""
    chunks: list[StreamChunk] = []
    step = size or max(len(body), 1)
    for start in range(0, len(body), step):
        chunks += decoder.feed(body[start : start + step])
        if decoder.failure is not None:
            raise decoder.failure
        if decoder.finished:
            break
    return chunks + decoder.end()


def text_of(chunks: list[StreamChunk]) -> str:
    return "".join(c.text for c in chunks)
