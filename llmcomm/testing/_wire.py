"""Pure builders for the Anthropic Messages and OpenAI Chat Completions wire formats.

Nothing here does I/O: every function returns the exact bytes the server
writes, so the formats can be checked in isolation and prebuilt in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "StreamFrames",
    "anthropic_error_body",
    "anthropic_message",
    "anthropic_stream",
    "estimate_input_tokens",
    "finish_reason",
    "openai_completion",
    "openai_error_body",
    "openai_stream",
    "plain_error_body",
]

_ANTHROPIC_PING: Final = b'event: ping\ndata: {"type": "ping"}\n\n'
_OPENAI_KEEPALIVE: Final = b": keep-alive\n\n"
# The broken line is the start of a real delta, cut off, as a proxy that
# truncates lines would produce.
_MALFORMED: Final = b'data: {"type": "content_block_delta", "delta": {\n\n'
_ANTHROPIC_SSE_ERROR: Final = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
_OPENAI_SSE_ERROR: Final = (
    b'data: {"error":{"message":"The server had an error while processing your request.",'
    b'"type":"server_error","param":null,"code":null}}\n\n'
)

_FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


@dataclass(frozen=True, slots=True)
class StreamFrames:
    """The pieces of one streamed reply, ready to write.

    Attributes:
        opening: Events before the first content delta.
        delta: Builds the event carrying one content chunk.
        ending: Events after the last delta that are not the terminal marker.
        terminal: The terminal marker (left out by ``omit_terminal``).
        keepalive: A keep-alive frame.
        sse_error: An in-stream error event.
        malformed: A data line that is not valid JSON.
    """

    opening: bytes
    delta: Callable[[str], bytes]
    ending: bytes
    terminal: bytes
    keepalive: bytes
    sse_error: bytes
    malformed: bytes = _MALFORMED


def _json(value: object) -> bytes:
    return orjson.dumps(value)


def _event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _json(payload) + b"\n\n"


def finish_reason(stop_reason: str) -> str:
    """Map an Anthropic stop reason to the OpenAI finish reason it corresponds to."""
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def _count_words(content: object) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(_count_words(part) for part in content)
    if isinstance(content, Mapping):
        text = content.get("text")
        if isinstance(text, str):
            return len(text.split())
        return _count_words(content.get("content"))
    return 0


def estimate_input_tokens(body: object) -> int:
    """Deterministic prompt-size estimate: words in ``system`` and every message, at least 1."""
    if not isinstance(body, Mapping):
        return 1
    total = _count_words(body.get("system"))
    messages = body.get("messages")
    if isinstance(messages, list):
        total += sum(_count_words(m.get("content")) for m in messages if isinstance(m, Mapping))
    return max(total, 1)


# -- Anthropic -------------------------------------------------------------


def _anthropic_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def anthropic_stream(
    *,
    message_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
) -> StreamFrames:
    """Frames of a streamed Anthropic Messages reply."""
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _anthropic_usage(input_tokens, 1),
        },
    }
    block_start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }
    prefix = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":'
    )

    def delta(chunk: str) -> bytes:
        return prefix + _json(chunk) + b"}}\n\n"

    return StreamFrames(
        opening=_event("message_start", start) + _event("content_block_start", block_start) + _ANTHROPIC_PING,
        delta=delta,
        ending=_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        terminal=_event("message_delta", message_delta) + _event("message_stop", {"type": "message_stop"}),
        keepalive=_ANTHROPIC_PING,
        sse_error=_ANTHROPIC_SSE_ERROR,
    )


def anthropic_message(
    *,
    message_id: str,
    model: str,
    text: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
) -> bytes:
    """JSON body of a non-streamed Anthropic Messages reply."""
    return _json(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _anthropic_usage(input_tokens, output_tokens),
        }
    )


def anthropic_error_body(error_type: str, message: str) -> bytes:
    """JSON body of an Anthropic error response."""
    return _json({"type": "error", "error": {"type": error_type, "message": message}})


# -- OpenAI ----------------------------------------------------------------


def _openai_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def openai_stream(
    *,
    completion_id: str,
    model: str,
    created: int,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
    include_usage: bool,
) -> StreamFrames:
    """Frames of a streamed OpenAI Chat Completions reply."""
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }

    def chunk(choices: list[dict[str, Any]], **extra: object) -> bytes:
        return b"data: " + _json({**head, "choices": choices, **extra}) + b"\n\n"

    def choice(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}

    # The delta frame is spliced around the content string so that 20,000
    # chunks cost one small JSON encode each rather than a whole dict each.
    prefix, _, suffix = chunk([choice({"content": ""}, None)]).partition(b'"content":""')
    prefix += b'"content":'

    def delta(text: str) -> bytes:
        return prefix + _json(text) + suffix

    ending = chunk([choice({}, finish_reason(stop_reason))])
    if include_usage:
        ending += chunk([], usage=_openai_usage(input_tokens, output_tokens))
    return StreamFrames(
        opening=chunk([choice({"role": "assistant", "content": ""}, None)]),
        delta=delta,
        ending=ending,
        terminal=b"data: [DONE]\n\n",
        keepalive=_OPENAI_KEEPALIVE,
        sse_error=_OPENAI_SSE_ERROR,
    )


def openai_completion(
    *,
    completion_id: str,
    model: str,
    created: int,
    text: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
) -> bytes:
    """JSON body of a non-streamed OpenAI Chat Completions reply."""
    return _json(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason(stop_reason),
                }
            ],
            "usage": _openai_usage(input_tokens, output_tokens),
        }
    )


def openai_error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> bytes:
    """JSON body of an OpenAI error response."""
    return _json(
        {
            "error": {
                "message": message,
                "type": error_type,
                "param": param,
                "code": code,
            }
        }
    )


def plain_error_body(error_type: str, message: str) -> bytes:
    """JSON body for requests outside the two APIs (unknown paths, bad methods)."""
    return anthropic_error_body(error_type, message)
