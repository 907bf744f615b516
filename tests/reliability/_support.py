"""Helpers of the reliability suite: canary keys, leak scans, raw wire bodies, bounded waits."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import anyio
import orjson

Kind = Literal["anthropic", "openai"]

#: one canary key per provider kind: none may ever show up anywhere but on the wire
CANARIES: dict[str, str] = {
    "anthropic": "sk-ant-api03-CANARY-anthropic-7f3a9c2e5b1d4f60",
    "openai": "sk-proj-CANARY-openai-0e9d8c7b6a5f4e3d2c1b",
    "claude_cli": "sk-ant-api03-CANARY-cli-5a4b3c2d1e0f9a8b7c6d",
}

#: loggers lowered to DEBUG while a canary is watched: llmcomm's, the HTTP stack's and the SDKs'
DEBUG_LOGGERS = ("llmcomm", "httpx2", "httpcore2", "httpx", "httpcore", "anthropic", "openai", "asyncio", "trio")


def error_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """(where, text) for `error`, its `__cause__`/`__context__` chain and any errors it groups."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        yield f"str({name})", str(current)
        yield f"repr({name})", repr(current)
        yield f"{name}.args", repr(current.args)
        yield f"{name} traceback", "".join(traceback.format_exception(current, chain=False))
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        grouped = getattr(current, "errors", None)
        if isinstance(grouped, tuple):
            stack += [e for e in grouped if isinstance(e, BaseException)]
        if isinstance(current, BaseExceptionGroup):
            stack += list(current.exceptions)


def record_texts(record: logging.LogRecord) -> Iterator[tuple[str, str]]:
    """(where, text) for everything a handler could write out of `record`."""
    where = f"log record {record.name}:{record.levelname}"
    yield where, record.getMessage()
    yield f"{where} args", repr(record.args)
    yield f"{where} fields", repr({k: v for k, v in vars(record).items() if k not in ("exc_info", "args")})
    yield f"{where} formatted", logging.Formatter("%(message)s").format(record)
    if record.exc_info and record.exc_info[1] is not None:
        for place, text in error_texts(record.exc_info[1]):
            yield f"{where} exc_info {place}", text


def find_canaries(texts: Iterable[tuple[str, str]], canaries: Sequence[str] | None = None) -> list[str]:
    """Where any canary appears in `texts`; empty when none does."""
    watched = list(CANARIES.values()) if canaries is None else list(canaries)
    return [f"{where}: {text[:300]!r}" for where, text in texts for canary in watched if canary in text]


class LogCapture(logging.Handler):
    """Keeps every record that reaches the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[tuple[str, str]]:
        for record in list(self.records):
            yield from record_texts(record)

    def names(self) -> set[str]:
        return {record.name.split(".")[0] for record in self.records}


async def wait_until(condition: Callable[[], bool], bound: float = 1.0) -> bool:
    """Poll `condition` for up to `bound` seconds; its last value."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        await anyio.sleep(0.01)
    return True


# -- raw event-stream bodies, for what `Script`'s fault switches cannot describe -----------


def _event(name: str | None, payload: Any) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return head + b"data: " + data + b"\n\n"


def anthropic_opening() -> bytes:
    message: dict[str, Any] = {
        "id": "msg_raw",
        "type": "message",
        "role": "assistant",
        "model": "raw-model",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    return _event("message_start", {"type": "message_start", "message": message}) + _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )


def anthropic_delta(text: str) -> bytes:
    return _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


def anthropic_terminal() -> bytes:
    return (
        _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _event(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        )
        + _event("message_stop", {"type": "message_stop"})
    )


ANTHROPIC_UNKNOWN = (
    _event("mystery_event", {"type": "mystery_event", "payload": [1, {"nested": None}]})
    + b": a comment line, as proxies send to keep a connection open\n\n"
    + b"id: 7\nretry: 1000\n\n"
    + _event("ping", {"type": "ping"})
    + _event(
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": ""}},
    )
    + _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "hm"}},
    )
    + _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}},
    )
    + _event(None, {"type": "a_future_event_type", "index": 0})
)


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _event(None, {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "model": "raw", "choices": [choice]})


def openai_opening() -> bytes:
    return openai_chunk({"role": "assistant", "content": ""})


def openai_delta(text: str) -> bytes:
    return openai_chunk({"content": text})


def openai_terminal() -> bytes:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return (
        openai_chunk({}, "stop")
        + _event(None, {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        + b"data: [DONE]\n\n"
    )


OPENAI_UNKNOWN = (
    _event(None, {"id": "x", "object": "a.future.object", "payload": [1, 2]})
    + b": keep-alive\n\n"
    + b"id: 7\nretry: 1000\n\n"
    + _event("mystery", {"id": "x", "object": "chat.completion.chunk", "choices": []})
    + openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    + openai_chunk({"refusal": None})
    + openai_chunk({"content": None})
)


def sse_body(
    kind: Kind, texts: Sequence[str], *, unknown: bool = False, terminal: bool = True, tail: bytes = b""
) -> bytes:
    """A whole event-stream body of `kind` carrying `texts`, optionally with unknown events between them."""
    if kind == "anthropic":
        opening, delta, end, noise = anthropic_opening(), anthropic_delta, anthropic_terminal(), ANTHROPIC_UNKNOWN
    else:
        opening, delta, end, noise = openai_opening(), openai_delta, openai_terminal(), OPENAI_UNKNOWN
    parts = [opening, noise if unknown else b""]
    for text in texts:
        parts += [delta(text), noise if unknown else b""]
    parts.append(tail)
    if terminal:
        parts.append(end)
    return b"".join(parts)


def truncated_delta(kind: Kind) -> bytes:
    """The first half of a content event, cut inside its JSON."""
    return (anthropic_delta if kind == "anthropic" else openai_delta)("never finished")[:-20]
