"""One client connection of the fake server: read requests, write planned replies.

While a reply is written, a watcher task keeps reading from the socket: that is
how a client that hangs up on a slow or stalled stream is noticed at once.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Final, Literal

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from . import _wire
from ._http import LAST_CHUNK, BadRequest, ParsedRequest, Reader, encode_chunk, format_head, read_request
from ._record import RecordedRequest
from ._reply import Abort, Reply, Wait

__all__ = ["Connection", "Outcome", "abort", "set_socket_option"]

# How long a server-initiated close waits for the client to close its side, so
# unread request bytes do not turn the close into a reset.
_LINGER: Final = 2.0
# The watcher stops reading once a client has sent this much ahead.
_WATCH_LIMIT: Final = 1024 * 1024

Outcome = Literal["keep", "close", "abort", "gone"]
"""How a connection ended: reusable, closed by us, to be reset, or closed by the client."""


class Connection:
    """Serves the requests of one TCP connection."""

    def __init__(
        self,
        stream: SocketStream,
        connection_id: int,
        *,
        record: Callable[[ParsedRequest, int], RecordedRequest],
        plan: Callable[[ParsedRequest, RecordedRequest], Reply],
        notify: Callable[[], None],
    ) -> None:
        """Wrap ``stream``; ``record`` keeps each request, ``plan`` decides the reply."""
        self._stream = stream
        self._connection_id = connection_id
        self._record = record
        self._plan = plan
        self._notify = notify

    async def converse(self) -> Outcome:
        """Serve requests until either side ends the connection."""
        stream = self._stream
        set_socket_option(stream, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(stream)
        last: RecordedRequest | None = None

        async def send_continue() -> None:
            await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")

        while True:
            try:
                parsed = await read_request(reader, send_continue)
            except BadRequest as error:
                body = _wire.plain_error_body("invalid_request_error", str(error))
                reply = Reply(400, [("content-type", "application/json")], (), (body,), "length")
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await self._execute(reply, None, close=True, head_only=False)
                    await _linger(stream)
                return "close"
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                parsed = None
            if parsed is None:
                if last is not None and last.client_closed_at is None:
                    last.client_closed_at = time.monotonic()
                return "gone"
            last = self._record(parsed, self._connection_id)
            outcome = await self._answer(reader, parsed, last)
            if outcome == "close":
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await _linger(stream)
            if outcome != "keep":
                return outcome

    async def _answer(
        self,
        reader: Reader,
        parsed: ParsedRequest,
        record: RecordedRequest,
    ) -> Outcome:
        reply = self._plan(parsed, record)
        if parsed.version == "HTTP/1.0" and reply.framing == "chunked":
            # HTTP/1.0 has no chunked encoding; end the body by closing instead.
            reply = dataclasses.replace(reply, framing="close")
        close = reply.close or parsed.wants_close
        outcome: Outcome = "gone"
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._watch, reader, record, task_group)
            try:
                outcome = await self._execute(
                    reply,
                    record,
                    close=close,
                    head_only=parsed.method == "HEAD",
                )
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._client_closed(record)
            task_group.cancel_scope.cancel()
        self._notify()
        return "gone" if record.client_closed_at is not None else outcome

    async def _watch(self, reader: Reader, record: RecordedRequest, task_group: TaskGroup) -> None:
        # Reading while the response is written is the only way to notice a
        # client that hangs up on a stalled or slow stream.
        try:
            while len(reader.buffer) < _WATCH_LIMIT:
                await reader.fill()
            return
        except anyio.ClosedResourceError:
            return
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass
        self._client_closed(record)
        task_group.cancel_scope.cancel()

    def _client_closed(self, record: RecordedRequest) -> None:
        if record.client_closed_at is None:
            record.client_closed_at = time.monotonic()
            self._notify()

    async def _execute(
        self,
        reply: Reply,
        record: RecordedRequest | None,
        *,
        close: bool,
        head_only: bool,
    ) -> Outcome:
        stream = self._stream
        for early in reply.before_head:
            if isinstance(early, Abort):
                return "abort"
            await _sleep(early.seconds)

        framing = reply.framing
        headers = [("server", "llmcomm-testing"), *reply.headers]
        body = reply.body
        if framing == "length":
            length = sum(len(step) for step in body if isinstance(step, bytes))
            headers.append(("content-length", str(length)))
        elif framing == "chunked":
            headers.append(("transfer-encoding", "chunked"))
        closing = close or framing == "close"
        headers.append(("connection", "close" if closing else "keep-alive"))
        if head_only:
            body = ()

        def frame(data: bytes) -> bytes:
            return encode_chunk(data) if framing == "chunked" else data

        async def write(data: bytes) -> None:
            if not reply.split_writes:
                await stream.send(frame(data))
                return
            for index in range(len(data)):
                await stream.send(frame(data[index : index + 1]))
                await anyio.lowlevel.checkpoint()

        head = format_head(reply.status, headers)
        if record is not None:
            record.response_started_at = time.monotonic()
        first = body[0] if body else None
        if isinstance(first, bytes) and not reply.split_writes:
            # Head and first body bytes in one write: an undisturbed stream is one syscall.
            body = body[1:]
            finished = not body
            tail = LAST_CHUNK if framing == "chunked" and finished else b""
            await stream.send(head + frame(first) + tail)
        else:
            await stream.send(head)
            finished = False
        for step in body:
            if isinstance(step, bytes):
                await write(step)
            elif isinstance(step, Wait):
                await _wait(step, lambda data: stream.send(frame(data)))
            else:
                return "abort"
        if framing == "chunked" and not finished and not head_only:
            await stream.send(LAST_CHUNK)
        if record is not None:
            record.finished_at = time.monotonic()
        return "close" if closing else "keep"


async def _sleep(seconds: float) -> None:
    if math.isinf(seconds):
        await anyio.sleep_forever()
    else:
        await anyio.sleep(seconds)


async def _wait(wait: Wait, send: Callable[[bytes], Awaitable[None]]) -> None:
    if wait.interval is None or wait.keepalive is None:
        await _sleep(wait.seconds)
        return
    deadline = time.monotonic() + wait.seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if remaining <= wait.interval:
            await anyio.sleep(remaining)
            return
        await anyio.sleep(wait.interval)
        await send(wait.keepalive)


async def _linger(stream: SocketStream) -> None:
    # Half-close and let the client finish reading and hang up; closing a
    # socket with unread input would send a reset instead of a clean EOF.
    await stream.send_eof()
    with anyio.move_on_after(_LINGER):
        while True:
            try:
                await stream.receive()
            except anyio.EndOfStream:
                return


async def abort(stream: SocketStream) -> None:
    """Close ``stream`` so that the peer sees a connection reset."""
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    set_socket_option(stream, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


def set_socket_option(stream: SocketStream, level: int, option: int, value: int | bytes) -> None:
    """Set a socket option on the stream's socket if it has one."""
    # Best effort: a stream without a raw socket, or one already gone, keeps its defaults.
    with suppress(OSError, anyio.TypedAttributeLookupError):
        stream.extra(SocketAttribute.raw_socket).setsockopt(level, option, value)  # noqa: S610 - anyio, not Django
