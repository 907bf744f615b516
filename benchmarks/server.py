"""A minimal loopback server that answers both APIs with pre-built bytes.

Run in its own process (``python -m benchmarks.server --port 0``); it prints
``port=N`` once it listens. The model name sets the reply: ``bench-20000``
streams 20,000 content tokens; any other name gets a few. Every distinct
reply is built once and cached, so serving one is a dictionary lookup and a
single ``transport.write`` — the server does far less per token than any
client it measures (``benchmarks.subject_socket`` shows how much less).

Two framings of a streamed reply (``--framing``, or a ``-bulk`` / ``-events``
part in the model name for one request):

- ``events`` (the default) looks like the real wire: ``Transfer-Encoding:
  chunked`` with one HTTP chunk per SSE event, and every event the full object
  the real API sends (OpenAI: ``id``, ``object``, ``created``, ``model``,
  ``service_tier``, ``system_fingerprint``, ``choices`` with ``logprobs`` and
  ``finish_reason`` nulls, ``usage: null`` when usage was asked for; Anthropic:
  the whole ``message_start`` message, ``ping``, full ``content_block_delta``
  envelopes, ``message_delta`` with usage, ``message_stop``). An HTTP client
  hands such a body on one chunk, so one event, at a time.
- ``bulk`` is the shape of the first benchmark rounds (benchmarks/README.md):
  the same events with fewer fields, the whole body in ONE HTTP chunk, which a
  client reads in as few pieces as the socket allows.

It speaks just enough HTTP/1.1 for the clients measured: keep-alive,
``content-length`` request bodies, and chunked responses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import resource
import sys
import threading
from collections.abc import Sequence
from typing import Any, Literal, get_args

import orjson

Api = Literal["anthropic", "openai"]
#: how a streamed reply is framed (see the module docstring)
Framing = Literal["events", "bulk"]
FRAMINGS: tuple[Framing, ...] = get_args(Framing)

HOST = "127.0.0.1"
#: tokens in a reply whose model name does not ask for a number
DEFAULT_TOKENS = 3
#: largest reply the server builds (bounds its cache and memory)
MAX_TOKENS = 1_000_000
#: most replies one gate holds back
MAX_GATE = 100_000
#: the longest a gate holds replies back when fewer than its count arrive
GATE_TIMEOUT = 20.0
#: largest request head or body accepted
MAX_REQUEST_BYTES = 1024 * 1024
BACKLOG = 4096

_PATHS: dict[bytes, Api] = {b"/v1/messages": "anthropic", b"/v1/chat/completions": "openai"}


def parse_model(model: str) -> tuple[int, int]:
    """What a model name asks for: ``bench-N`` → N tokens; ``bench-N-gateG`` → N tokens, gate G.

    A gated reply sends its head and first token at once and the rest only when
    G gated replies are waiting (or after `GATE_TIMEOUT`): so G streams are open
    together, each with one token read, however fast the client is.
    """
    tokens, gate = DEFAULT_TOKENS, 0
    for part in model.split("-")[1:]:
        if part.isdigit():
            tokens = min(int(part), MAX_TOKENS)
        elif part.startswith("gate") and part[4:].isdigit():
            gate = min(int(part[4:]), MAX_GATE)
    return tokens, gate


def parse_framing(model: str, default: Framing) -> Framing:
    """The framing a model name asks for (a ``-bulk`` or ``-events`` part), else `default`."""
    for part in model.split("-")[1:]:
        if part in FRAMINGS:
            return part
    return default


def token_text(index: int) -> str:
    """The text of content token `index` (a short word and a space, like a real token)."""
    return f"tok{index} "


def _event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _data(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _templated(event: bytes, placeholder: bytes, tokens: int) -> list[bytes]:
    # One event per token, built by splicing the token into a pre-serialised template.
    prefix, _, suffix = event.partition(placeholder)
    return [prefix + orjson.dumps(token_text(i)) + suffix for i in range(tokens)]


def anthropic_message(model: str, tokens: int) -> bytes:
    """The non-streamed Messages API reply."""
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "".join(token_text(i) for i in range(tokens))}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": tokens,
        },
    }
    return orjson.dumps(message)


def anthropic_events(model: str, tokens: int, framing: Framing) -> list[bytes]:
    """A Messages API event stream, one item per SSE event."""
    usage: dict[str, Any] = {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    final_usage: dict[str, Any] = {"output_tokens": tokens}
    start_usage = {**usage, "output_tokens": 1}
    if framing == "events":  # the fields the real API sends today, in its order
        final_usage = {**usage, "output_tokens": tokens}
        cache = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
        start_usage = {**usage, "cache_creation": cache, "output_tokens": 1, "service_tier": "standard"}
    message: dict[str, Any] = {
        "id": "msg_bench" if framing == "bulk" else "msg_01BenchBenchBenchBenchBenc",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "\x00"}}
    return [
        _event("message_start", {"type": "message_start", "message": message}),
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _event("ping", {"type": "ping"}),
        *_templated(_event("content_block_delta", delta), b'"\\u0000"', tokens),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": final_usage,
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]


def _openai_head(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-bench", "created": 1700000000, "model": model, "system_fingerprint": None}


def _openai_usage(tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}


def openai_completion(model: str, tokens: int) -> bytes:
    """The non-streamed Chat Completions reply."""
    text = "".join(token_text(i) for i in range(tokens))
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    head = {**_openai_head(model), "object": "chat.completion"}
    return orjson.dumps({**head, "choices": [choice], "usage": _openai_usage(tokens)})


def openai_events(model: str, tokens: int, include_usage: bool, framing: Framing) -> list[bytes]:
    """A Chat Completions chunk stream, one item per SSE event (``[DONE]`` last)."""
    usage = _openai_usage(tokens)
    if framing == "bulk":
        head: dict[str, Any] = {**_openai_head(model), "object": "chat.completion.chunk"}
    else:  # the fields, and their order, of the real API today
        head = {
            "id": "chatcmpl-BenchBenchBenchBenchBenchBench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_bench0001",
        }
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    tail = {"usage": None} if include_usage and framing == "events" else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], **tail}

    first: dict[str, Any] = {"role": "assistant", "content": ""}
    if framing == "events":
        first["refusal"] = None
    events = [_data(chunk(first, None))]
    events += _templated(_data(chunk({"content": "\x00"}, None)), b'"\\u0000"', tokens)
    events.append(_data(chunk({}, "stop")))
    if include_usage:
        events.append(_data({**head, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events


@functools.lru_cache(maxsize=64)
def response_bytes(api: Api, model: str, stream: bool, include_usage: bool, framing: Framing = "events") -> bytes:
    """The whole HTTP response (head and body), built once per distinct request."""
    tokens, _ = parse_model(model)
    if not stream:
        body = anthropic_message(model, tokens) if api == "anthropic" else openai_completion(model, tokens)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        return head + b"connection: keep-alive\r\n\r\n" + body
    if api == "anthropic":
        events = anthropic_events(model, tokens, framing)
    else:
        events = openai_events(model, tokens, include_usage, framing)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    head += b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    if framing == "bulk":
        body = b"".join(events)
        return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return head + b"".join(b"%x\r\n%b\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@functools.lru_cache(maxsize=64)
def split_after_first_token(response: bytes) -> tuple[bytes, bytes]:
    """A streamed response cut after the event that carries the first token."""
    first = response.find(orjson.dumps(token_text(0)))
    if first < 0:
        return response, b""
    cut = response.index(b"\n\n", first) + 2
    if response.startswith(b"\r\n", cut):  # one HTTP chunk per event: the chunk ends here too
        cut += 2
    return response[:cut], response[cut:]


def answer(path: bytes, body: bytes, framing: Framing = "events") -> tuple[bytes, bytes, int]:
    """The response to one request: what to send now, what to hold back, and the gate that holds it.

    `framing` is the server's default; a model name may ask for the other one.
    """
    api = _PATHS.get(path.partition(b"?")[0])
    if api is None:
        return _NOT_FOUND, b"", 0
    fields = orjson.loads(body) if body else {}
    model = str(fields.get("model", "bench"))
    stream = fields.get("stream") is True
    options = fields.get("stream_options") or {}
    framing = parse_framing(model, framing)
    response = response_bytes(api, model, stream, bool(options.get("include_usage")), framing)
    _, gate = parse_model(model)
    if not gate or not stream:
        return response, b"", 0
    return (*split_after_first_token(response), gate)


class Gates:
    """Held-back rests of gated replies, released together once a gate's count is reached."""

    def __init__(self) -> None:
        self._waiting: dict[int, list[tuple[asyncio.Transport, bytes]]] = {}

    def hold(self, gate: int, transport: asyncio.Transport, rest: bytes) -> None:
        waiting = self._waiting.setdefault(gate, [])
        if not waiting:
            asyncio.get_running_loop().call_later(GATE_TIMEOUT, self._release, gate, waiting)
        waiting.append((transport, rest))
        if len(waiting) >= gate:
            self._release(gate, waiting)

    def _release(self, gate: int, waiting: list[tuple[asyncio.Transport, bytes]]) -> None:
        if self._waiting.get(gate) is waiting:
            del self._waiting[gate]
        for transport, rest in waiting:
            if not transport.is_closing():
                transport.write(rest)
        waiting.clear()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse requests as they complete, write cached replies."""

    def __init__(self, gates: Gates, framing: Framing) -> None:
        self._buffer = b""
        self._gates = gates
        self._framing = framing
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        transport = self._transport
        assert transport is not None
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if end + 4 + length > len(buffer):
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            path = head.split(b" ", 2)[1]
            now, rest, gate = answer(path, body, self._framing)
            transport.write(now)
            if rest:
                self._gates.hold(gate, transport, rest)
        if len(buffer) > MAX_REQUEST_BYTES:
            transport.close()
            buffer = b""
        self._buffer = buffer


def raise_file_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _exit_with_parent() -> None:
    # The parent holds our stdin open: when it goes, for whatever reason, so do we.
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.buffer.read()
    os._exit(0)


async def serve(port: int, lifetime: float, framing: Framing = "events") -> None:
    """Listen on 127.0.0.1:`port`, print the bound port, serve for at most `lifetime` seconds."""
    loop = asyncio.get_running_loop()
    gates = Gates()
    server = await loop.create_server(
        lambda: _Connection(gates, framing), HOST, port, backlog=BACKLOG, reuse_address=True
    )
    async with server:
        bound = server.sockets[0].getsockname()[1]
        print(f"port={bound}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), lifetime)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds to serve before exiting")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when standard input closes")
    parser.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="events",
        help="events: one HTTP chunk per full SSE event (the real wire); bulk: the first rounds' one-chunk body",
    )
    args = parser.parse_args(argv)
    raise_file_limit()
    if args.exit_with_parent:
        threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    try:
        asyncio.run(serve(args.port, args.lifetime, args.framing))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
