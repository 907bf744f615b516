"""Turn a request and a :class:`Script` into a plan of writes, waits and faults.

Planning is pure so the server loop only executes steps; consecutive byte
steps are merged, which is what lets an undisturbed 20,000-token stream go
out in a single write.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from . import _rich, _wire
from ._script import Script

__all__ = ["ABORT", "Abort", "Api", "Framing", "Reply", "Step", "Wait", "plan_reply"]

Api = Literal["anthropic", "openai", "other"]
Framing = Literal["length", "chunked", "close"]


@dataclass(frozen=True, slots=True)
class Wait:
    """Pause for ``seconds`` (``math.inf``: until the client goes away).

    While waiting, ``keepalive`` is written every ``interval`` seconds if both are set.
    """

    seconds: float
    interval: float | None = None
    keepalive: bytes | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """Reset the TCP connection."""


ABORT = Abort()
Step = bytes | Wait | Abort


@dataclass(frozen=True, slots=True)
class Reply:
    """What to do to answer one request.

    ``before_head`` runs before the status line is written and holds only
    waits and aborts; ``body`` is written after the head with ``framing``.
    """

    status: int
    headers: list[tuple[str, str]]
    before_head: tuple[Wait | Abort, ...]
    body: tuple[Step, ...]
    framing: Framing
    split_writes: bool = False
    close: bool = False


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _merge(steps: list[Step]) -> tuple[Step, ...]:
    merged: list[Step] = []
    pending: list[bytes] = []
    for step in steps:
        if isinstance(step, bytes):
            pending.append(step)
            continue
        if pending:
            merged.append(b"".join(pending))
            pending = []
        merged.append(step)
    if pending:
        merged.append(b"".join(pending))
    return tuple(merged)


def _common_headers(api: Api, script: Script, serial: int) -> list[tuple[str, str]]:
    request_id = f"req_fake{serial:016d}"
    headers = [("request-id", request_id)] if api == "anthropic" else []
    if api == "openai":
        headers.append(("x-request-id", request_id))
    if script.retry_after is not None:
        headers.append(("retry-after", _format_seconds(script.retry_after)))
    if script.retry_after_ms is not None:
        headers.append(("retry-after-ms", str(script.retry_after_ms)))
    return headers


def _error_body(api: Api, script: Script) -> bytes:
    if api == "openai":
        return _wire.openai_error_body(script.error_message, script.resolved_error_type, script.error_code)
    return _wire.anthropic_error_body(script.resolved_error_type, script.error_message)


def _stream_body(frames: _wire.StreamFrames, script: Script) -> list[Step]:
    chunks = script.content_chunks
    terminal = frames.terminal
    if script.omit_terminal:
        terminal = b""
    elif script.omit_terminal_marker:
        terminal = terminal[: -len(frames.marker)]
    if not script.has_per_chunk_behaviour:
        # The common and benchmark case: one bytes object, no per-chunk checks.
        return [b"".join([frames.opening, *map(frames.delta, chunks), frames.ending, terminal])]
    count = len(chunks)
    keepalive = script.keepalive_interval, frames.keepalive

    def at(position: int | None) -> int:
        # A fault scheduled past the last chunk fires after the last chunk.
        return -1 if position is None else min(position, count)

    malformed, sse_error, reset, stall = (
        at(script.malformed_after),
        at(script.sse_error_after),
        at(script.reset_after),
        at(script.stall_after),
    )
    steps: list[Step] = [frames.opening]
    if frames.thinking and script.token_delay > 0:  # reasoning streamed at the pace of the text
        steps = [frames.head]
        for position, event in enumerate(frames.thinking):
            if position:  # a model thinking between deltas keeps the stream alive as the APIs do
                steps.append(Wait(script.token_delay, *keepalive))
            steps.append(event)
        steps.append(frames.after_thinking)
    if script.delay_before_first_token > 0:
        steps.append(Wait(script.delay_before_first_token, *keepalive))
    for index in range(count + 1):
        if index == malformed:
            steps.append(frames.malformed)
        if index == sse_error:
            steps.append(frames.sse_error)
            return steps
        if index == reset:
            steps.append(ABORT)
            return steps
        if index == stall:
            steps.append(Wait(math.inf, *keepalive))
            return steps
        if index == count:
            break
        if index and script.token_delay > 0:
            steps.append(Wait(script.token_delay))
        steps.append(frames.delta(chunks[index]))
    steps += [frames.ending, terminal]
    return steps


def _model(body: object) -> str:
    model = body.get("model") if isinstance(body, Mapping) else None
    return model if isinstance(model, str) else "llmcomm-fake"


def plan_reply(api: Api, body: object, stream: bool, script: Script, serial: int) -> Reply:
    """Plan the answer to an API request (``api`` is ``"anthropic"`` or ``"openai"``)."""
    reply = _plan(api, body, stream, script, serial)
    if not script.headers:
        return reply
    # Scripted headers replace generated ones of the same name, so a test can
    # send e.g. a wrong content-type.
    replaced = {name.lower() for name, _ in script.headers}
    kept = [(name, value) for name, value in reply.headers if name.lower() not in replaced]
    return dataclasses.replace(reply, headers=[*kept, *script.headers])


def _plan(api: Api, body: object, stream: bool, script: Script, serial: int) -> Reply:
    headers = _common_headers(api, script, serial)
    wait_head = (Wait(script.delay_before_headers),) if script.delay_before_headers > 0 else ()
    close = script.close_connection

    rejects = api == "openai" and script.reject_stream_options
    if rejects and isinstance(body, Mapping) and "stream_options" in body:
        rejection = _wire.openai_error_body(
            "Unrecognized request argument supplied: stream_options",
            "invalid_request_error",
            None,
            param="stream_options",
        )
        headers.append(("content-type", "application/json"))
        return Reply(400, headers, (), (rejection,), "length", close=close)

    if script.body_override is not None:
        default_type = "text/event-stream" if stream else "application/json"
        headers.append(("content-type", script.content_type or default_type))
        return Reply(
            script.status,
            headers,
            wait_head,
            (script.body_override,),
            "length",
            split_writes=script.split_writes,
            close=close,
        )

    if script.is_error:
        headers.append(("content-type", "application/json"))
        body_bytes = _error_body(api, script)
        return Reply(script.status, headers, wait_head, (body_bytes,), "length", close=close)

    if script.blocks is not None:
        return _plan_blocks(api, body, stream, script, serial, headers, wait_head)

    chunks = script.content_chunks
    model = _model(body)
    input_tokens = script.input_tokens if script.input_tokens is not None else _wire.estimate_input_tokens(body)
    output_tokens = script.output_tokens if script.output_tokens is not None else len(chunks)
    created = int(time.time())
    counts = _wire.Counts(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=script.cache_read_tokens,
        cache_write_tokens=script.cache_write_tokens,
        reasoning_tokens=script.reasoning_tokens,
        start_input_tokens=script.start_input_tokens,
    )

    if not stream or script.stream_as_json:
        return _plan_plain(api, script, headers, wait_head, model, counts, created, serial)

    if api == "openai":
        options = body.get("stream_options") if isinstance(body, Mapping) else None
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        frames = _wire.openai_stream(
            completion_id=f"chatcmpl-fake{serial:016d}",
            model=model,
            created=created,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            stop_reason=script.stop_reason,
            include_usage=include_usage,
            counts=counts,
            reasoning=script.reasoning,
        )
    else:
        frames = _wire.anthropic_stream(
            message_id=f"msg_fake{serial:016d}",
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            stop_reason=script.stop_reason,
            counts=counts,
            reasoning=script.reasoning,
        )
    headers += [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
    ]
    return Reply(
        script.status,
        headers,
        wait_head,
        _merge(_stream_body(frames, script)),
        "close" if close else "chunked",
        split_writes=script.split_writes,
        close=close,
    )


def _plan_plain(
    api: Api,
    script: Script,
    headers: list[tuple[str, str]],
    wait_head: tuple[Wait, ...],
    model: str,
    counts: _wire.Counts,
    created: int,
    serial: int,
) -> Reply:
    # A non-streamed reply is "generated" before anything is sent, so every
    # scripted delay is spent before the status line.
    chunks = script.content_chunks
    generation = script.delay_before_first_token + script.token_delay * max(len(chunks) - 1, 0)
    before: list[Wait | Abort] = list(wait_head)
    if generation > 0:
        before.append(Wait(generation))
    if script.reset_after is not None:
        before.append(ABORT)
    elif script.stall_after is not None:
        before.append(Wait(math.inf))
    text = "".join(chunks)
    if api == "openai":
        body = _wire.openai_completion(
            completion_id=f"chatcmpl-fake{serial:016d}",
            model=model,
            created=created,
            text=text,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            stop_reason=script.stop_reason,
            counts=counts,
            reasoning="".join(script.reasoning),
        )
    else:
        body = _wire.anthropic_message(
            message_id=f"msg_fake{serial:016d}",
            model=model,
            text=text,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            stop_reason=script.stop_reason,
            counts=counts,
            reasoning="".join(script.reasoning),
        )
    headers.append(("content-type", "application/json"))
    return Reply(
        script.status,
        headers,
        tuple(before),
        (body,),
        "length",
        split_writes=script.split_writes,
        close=script.close_connection,
    )


def _plan_blocks(
    api: Api,
    body: object,
    stream: bool,
    script: Script,
    serial: int,
    headers: list[tuple[str, str]],
    wait_head: tuple[Wait, ...],
) -> Reply:
    """A reply made of ``script.blocks`` (thinking, text, tool calls); see ``_rich``."""
    model = _model(body)
    created = int(time.time())
    stop_reason = _rich.stop_reason_for(script)
    if api == "openai":
        head = {"id": f"chatcmpl-fake{serial:016d}", "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": None}  # fmt: skip

        def chunk(delta: dict[str, object]) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

        blocks = _rich.openai_blocks(script, serial, chunk)
    else:
        blocks = _rich.anthropic_blocks(script, serial)
    deltas = sum(len(events) for events in blocks)
    input_tokens = script.input_tokens if script.input_tokens is not None else _wire.estimate_input_tokens(body)
    counts = _wire.Counts(
        input_tokens=input_tokens,
        output_tokens=script.output_tokens if script.output_tokens is not None else deltas,
        cache_read_tokens=script.cache_read_tokens,
        cache_write_tokens=script.cache_write_tokens,
        reasoning_tokens=script.reasoning_tokens,
    )
    if not stream or script.stream_as_json:
        content, _ = _rich.blocks_message(api, script, serial)
        if api == "openai":
            whole = orjson.loads(_wire.openai_completion(
                completion_id=f"chatcmpl-fake{serial:016d}", model=model, created=created, text="",
                input_tokens=input_tokens, output_tokens=counts.output_tokens, stop_reason=stop_reason, counts=counts))  # fmt: skip
            whole["choices"][0]["message"] = content
        else:
            whole = orjson.loads(_wire.anthropic_message(
                message_id=f"msg_fake{serial:016d}", model=model, text="", input_tokens=input_tokens,
                output_tokens=counts.output_tokens, stop_reason=stop_reason, counts=counts))  # fmt: skip
            whole["content"] = content
        headers.append(("content-type", "application/json"))
        before = (*wait_head, Wait(script.delay_before_first_token)) if script.delay_before_first_token else wait_head
        return Reply(script.status, headers, before, (orjson.dumps(whole),), "length", close=script.close_connection)
    if api == "openai":
        options = body.get("stream_options") if isinstance(body, Mapping) else None
        frames = _wire.openai_stream(
            completion_id=f"chatcmpl-fake{serial:016d}", model=model, created=created, input_tokens=input_tokens,
            output_tokens=counts.output_tokens, stop_reason=stop_reason, counts=counts,
            include_usage=isinstance(options, Mapping) and bool(options.get("include_usage")))  # fmt: skip
    else:
        frames = _wire.anthropic_stream(
            message_id=f"msg_fake{serial:016d}", model=model, input_tokens=input_tokens,
            output_tokens=counts.output_tokens, stop_reason=stop_reason, counts=counts)  # fmt: skip
    steps: list[Step] = [frames.head]
    if script.delay_before_first_token > 0:
        steps.append(Wait(script.delay_before_first_token, script.keepalive_interval, frames.keepalive))
    for position, event in enumerate(event for events in blocks for event in events):
        if position and script.token_delay > 0:
            steps.append(Wait(script.token_delay))
        steps.append(event)
    if not script.omit_terminal:
        steps.append(frames.terminal)
    headers += [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
    close = script.close_connection
    return Reply(script.status, headers, wait_head, _merge(steps), "close" if close else "chunked", close=close)
