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
    "Counts",
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
_OPENAI_DONE: Final = b"data: [DONE]\n\n"
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
        opening: Events before the first content delta (``head``, ``thinking``
            and ``after_thinking`` in one).
        delta: Builds the event carrying one content chunk.
        ending: Events after the last delta that carry no finish reason.
        terminal: The events that finish the reply: the finish (stop) reason, the
            usage and the terminal marker (left out by ``omit_terminal``).
        head: The opening events before any reasoning.
        thinking: One event per reasoning chunk.
        after_thinking: The events between the last reasoning chunk and the first content delta.
        marker: The terminal marker alone, the end of ``terminal`` (left out by
            ``omit_terminal_marker``): ``message_stop`` or ``[DONE]``.
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
    marker: bytes
    malformed: bytes = _MALFORMED
    head: bytes = b""
    thinking: tuple[bytes, ...] = ()
    after_thinking: bytes = b""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Token counts a reply reports, the same on both wires.

    ``input_tokens`` is the whole prompt, cache reads and writes included (OpenAI's
    ``prompt_tokens``; Anthropic's ``input_tokens`` is sent as the uncached rest).
    ``start_input_tokens``: what Anthropic's ``message_start`` reports, when it is
    not yet the final count (``message_delta`` always restates every count).
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    start_input_tokens: int | None = None


def _anthropic_usage(counts: Counts, output_tokens: int, input_tokens: int | None = None) -> dict[str, Any]:
    cached = counts.cache_read_tokens + counts.cache_write_tokens
    return {
        "input_tokens": max((counts.input_tokens if input_tokens is None else input_tokens) - cached, 0),
        "cache_creation_input_tokens": counts.cache_write_tokens,
        "cache_read_input_tokens": counts.cache_read_tokens,
        "output_tokens": output_tokens,
    }


def anthropic_stream(
    *,
    message_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
    counts: Counts | None = None,
    reasoning: tuple[str, ...] = (),
) -> StreamFrames:
    """Frames of a streamed Anthropic Messages reply.

    ``reasoning`` is streamed first, as a thinking block (``thinking_delta`` events
    and a signature); the text block follows it.
    """
    counts = counts or Counts(input_tokens=input_tokens, output_tokens=output_tokens)
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
            "usage": _anthropic_usage(counts, 1, counts.start_input_tokens),
        },
    }
    head = _event("message_start", start)
    thinking: list[bytes] = []
    after_thinking = b""
    text_index = 0
    if reasoning:
        text_index = 1
        head += _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        )
        for piece in reasoning:
            thinking_delta = {"type": "thinking_delta", "thinking": piece}
            thinking.append(
                _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": thinking_delta})
            )
        signature = {"type": "signature_delta", "signature": "fake-signature"}
        after_thinking = _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": signature})
        after_thinking += _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    block_start = {
        "type": "content_block_start",
        "index": text_index,
        "content_block": {"type": "text", "text": ""},
    }
    # The current API restates every count in message_delta; older servers send only the output count.
    restate = counts.cache_read_tokens or counts.cache_write_tokens or counts.start_input_tokens is not None
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": _anthropic_usage(counts, counts.output_tokens) if restate else {"output_tokens": counts.output_tokens},
    }
    prefix = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        b'"delta":{"type":"text_delta","text":' % text_index
    )

    def delta(chunk: str) -> bytes:
        return prefix + _json(chunk) + b"}}\n\n"

    stop = _event("message_stop", {"type": "message_stop"})
    after_thinking += _event("content_block_start", block_start) + _ANTHROPIC_PING
    return StreamFrames(
        opening=head + b"".join(thinking) + after_thinking,
        head=head,
        thinking=tuple(thinking),
        after_thinking=after_thinking,
        delta=delta,
        ending=_event("content_block_stop", {"type": "content_block_stop", "index": text_index}),
        terminal=_event("message_delta", message_delta) + stop,
        keepalive=_ANTHROPIC_PING,
        sse_error=_ANTHROPIC_SSE_ERROR,
        marker=stop,
    )


def anthropic_message(
    *,
    message_id: str,
    model: str,
    text: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
    counts: Counts | None = None,
    reasoning: str = "",
) -> bytes:
    """JSON body of a non-streamed Anthropic Messages reply (a thinking block first, if any)."""
    counts = counts or Counts(input_tokens=input_tokens, output_tokens=output_tokens)
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if reasoning:
        content.insert(0, {"type": "thinking", "thinking": reasoning, "signature": "fake-signature"})
    return _json(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _anthropic_usage(counts, counts.output_tokens),
        }
    )


def anthropic_error_body(error_type: str, message: str) -> bytes:
    """JSON body of an Anthropic error response."""
    return _json({"type": "error", "error": {"type": error_type, "message": message}})


# -- OpenAI ----------------------------------------------------------------


def _openai_usage(counts: Counts) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": counts.input_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.input_tokens + counts.output_tokens,
    }
    if counts.cache_read_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": counts.cache_read_tokens}
    if counts.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": counts.reasoning_tokens}
    return usage


def openai_stream(
    *,
    completion_id: str,
    model: str,
    created: int,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str,
    include_usage: bool,
    counts: Counts | None = None,
    reasoning: tuple[str, ...] = (),
) -> StreamFrames:
    """Frames of a streamed OpenAI Chat Completions reply (``reasoning`` first, as ``reasoning_content`` deltas)."""
    counts = counts or Counts(input_tokens=input_tokens, output_tokens=output_tokens)
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

    terminal = chunk([choice({}, finish_reason(stop_reason))])
    if include_usage:
        terminal += chunk([], usage=_openai_usage(counts))
    role = chunk([choice({"role": "assistant", "content": ""}, None)])
    thinking = tuple(chunk([choice({"content": None, "reasoning_content": piece}, None)]) for piece in reasoning)
    return StreamFrames(
        opening=role + b"".join(thinking),
        head=role,
        thinking=thinking,
        delta=delta,
        ending=b"",
        terminal=terminal + _OPENAI_DONE,
        keepalive=_OPENAI_KEEPALIVE,
        sse_error=_OPENAI_SSE_ERROR,
        marker=_OPENAI_DONE,
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
    counts: Counts | None = None,
    reasoning: str = "",
) -> bytes:
    """JSON body of a non-streamed OpenAI Chat Completions reply."""
    counts = counts or Counts(input_tokens=input_tokens, output_tokens=output_tokens)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
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
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(stop_reason),
                }
            ],
            "usage": _openai_usage(counts),
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
