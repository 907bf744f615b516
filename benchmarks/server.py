"""A minimal loopback server that answers both APIs with pre-built bytes.

Run in its own process (``python -m benchmarks.server --port 0``); it prints
``port=N`` once it listens. The model name sets the reply: ``bench-20000``
streams 20,000 content tokens; any other name gets a few. Every distinct
reply is built once and cached, so serving one is a dictionary lookup and a
single ``transport.write`` — the server does far less per token than any
client it measures (``benchmarks.subject_socket`` shows how much less).

It speaks just enough HTTP/1.1 for the clients measured: keep-alive,
``content-length`` request bodies, and chunked responses (one chunk per body,
as the real APIs' first write often is).
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
from typing import Any, Literal

import orjson

Api = Literal["anthropic", "openai"]

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


def token_text(index: int) -> str:
    """The text of content token `index` (a short word and a space, like a real token)."""
    return f"tok{index} "


def _event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def anthropic_body(model: str, tokens: int, stream: bool) -> bytes:
    """A Messages API reply: the SSE event stream, or the JSON message."""
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if not stream:
        message = {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(token_text(i) for i in range(tokens))}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": tokens},
        }
        return orjson.dumps(message)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        },
    }
    prefix = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
    parts = [
        _event("message_start", start),
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        _event("ping", {"type": "ping"}),
    ]
    parts += [prefix + orjson.dumps(token_text(i)) + b"}}\n\n" for i in range(tokens)]
    parts += [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": tokens},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(parts)


def openai_body(model: str, tokens: int, stream: bool, include_usage: bool) -> bytes:
    """A Chat Completions reply: the SSE chunk stream, or the JSON completion."""
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}
    head: dict[str, Any] = {"id": "chatcmpl-bench", "created": 1700000000, "model": model, "system_fingerprint": None}
    if not stream:
        text = "".join(token_text(i) for i in range(tokens))
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return orjson.dumps({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def data(payload: object) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    prefix, _, suffix = data(chunk({"content": ""}, None)).partition(b'"content":""')
    parts = [data(chunk({"role": "assistant", "content": ""}, None))]
    parts += [prefix + b'"content":' + orjson.dumps(token_text(i)) + suffix for i in range(tokens)]
    parts.append(data(chunk({}, "stop")))
    if include_usage:
        parts.append(data({**head, "choices": [], "usage": usage}))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def response_bytes(api: Api, model: str, stream: bool, include_usage: bool) -> bytes:
    """The whole HTTP response (head and body), built once per distinct request."""
    tokens, _ = parse_model(model)
    if api == "anthropic":
        body = anthropic_body(model, tokens, stream)
    else:
        body = openai_body(model, tokens, stream, include_usage)
    if not stream:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        return head + b"connection: keep-alive\r\n\r\n" + body
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    head += b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@functools.lru_cache(maxsize=64)
def split_after_first_token(response: bytes) -> tuple[bytes, bytes]:
    """A streamed response cut after the event that carries the first token."""
    first = response.find(orjson.dumps(token_text(0)))
    if first < 0:
        return response, b""
    cut = response.index(b"\n\n", first) + 2
    return response[:cut], response[cut:]


def answer(path: bytes, body: bytes) -> tuple[bytes, bytes, int]:
    """The response to one request: what to send now, what to hold back, and the gate that holds it."""
    api = _PATHS.get(path.partition(b"?")[0])
    if api is None:
        return _NOT_FOUND, b"", 0
    fields = orjson.loads(body) if body else {}
    model = str(fields.get("model", "bench"))
    stream = fields.get("stream") is True
    options = fields.get("stream_options") or {}
    response = response_bytes(api, model, stream, bool(options.get("include_usage")))
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

    def __init__(self, gates: Gates) -> None:
        self._buffer = b""
        self._gates = gates
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
            now, rest, gate = answer(path, body)
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


async def serve(port: int, lifetime: float) -> None:
    """Listen on 127.0.0.1:`port`, print the bound port, serve for at most `lifetime` seconds."""
    loop = asyncio.get_running_loop()
    gates = Gates()
    server = await loop.create_server(lambda: _Connection(gates), HOST, port, backlog=BACKLOG, reuse_address=True)
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
    args = parser.parse_args(argv)
    raise_file_limit()
    if args.exit_with_parent:
        threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    try:
        asyncio.run(serve(args.port, args.lifetime))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
