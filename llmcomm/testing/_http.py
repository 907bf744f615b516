"""Minimal HTTP/1.1 request parsing and response framing for the fake server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import anyio
from anyio.abc import ByteReceiveStream

__all__ = [
    "LAST_CHUNK",
    "BadRequest",
    "ParsedRequest",
    "Reader",
    "encode_chunk",
    "format_head",
    "read_request",
]

LAST_CHUNK: Final = b"0\r\n\r\n"
_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 64 * 1024 * 1024
_MAX_LINE: Final = 8 * 1024
# Statuses the API uses that http.HTTPStatus does not know.
_EXTRA_REASONS: Final = {529: "Overloaded"}


class BadRequest(Exception):
    """The client sent something that is not a valid HTTP/1.1 request."""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """One request as read off the wire."""

    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def wants_close(self) -> bool:
        """Whether the client asked not to reuse the connection."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" not in connection
        return "close" in connection


class Reader:
    """Buffered reader over a byte stream.

    The buffer is shared with the disconnect watcher: whatever the watcher
    receives while a response is being written stays here for the next request.
    """

    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream
        self.buffer = bytearray()

    async def fill(self) -> None:
        """Receive once into the buffer; raises ``anyio.EndOfStream`` on EOF."""
        self.buffer += await self._stream.receive()

    async def read_until(self, delimiter: bytes, limit: int) -> bytes:
        """Return the bytes up to (excluding) ``delimiter`` and consume both."""
        start = 0
        while (index := self.buffer.find(delimiter, start)) < 0:
            if len(self.buffer) > limit:
                raise BadRequest("header section or line too long")
            start = max(0, len(self.buffer) - len(delimiter) + 1)
            await self.fill()
        data = bytes(self.buffer[:index])
        del self.buffer[: index + len(delimiter)]
        return data

    async def read_exactly(self, count: int) -> bytes:
        """Return exactly ``count`` bytes."""
        while len(self.buffer) < count:
            await self.fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
        request_line, *header_lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, target, version, headers


async def _read_chunked(reader: Reader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.read_until(b"\r\n", _MAX_LINE)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("malformed chunk size") from None
        if size == 0:
            # Trailers end with an empty line; their contents are of no interest.
            while await reader.read_until(b"\r\n", _MAX_LINE):
                pass
            return bytes(body)
        if len(body) + size > _MAX_BODY:
            raise BadRequest("request body too large")
        body += await reader.read_exactly(size)
        if await reader.read_exactly(2) != b"\r\n":
            raise BadRequest("malformed chunk terminator")


async def read_request(reader: Reader, send_continue: Callable[[], Awaitable[None]]) -> ParsedRequest | None:
    """Read one request, or return ``None`` if the client closed between requests.

    Raises ``anyio.EndOfStream`` if the client closed in the middle of a request
    and :class:`BadRequest` if the request is not valid HTTP/1.1.
    """
    # Tolerate stray CRLFs between requests (RFC 9112 section 2.2).
    while reader.buffer[:2] == b"\r\n":
        del reader.buffer[:2]
    if not reader.buffer:
        try:
            await reader.fill()
        except anyio.EndOfStream:
            return None
    head = await reader.read_until(b"\r\n\r\n", _MAX_HEAD)
    method, target, version, headers = _parse_head(head)
    path, _, query = target.partition("?")
    if headers.get("expect", "").lower() == "100-continue":
        await send_continue()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest("malformed content-length") from None
        if not 0 <= length <= _MAX_BODY:
            raise BadRequest("bad content-length")
        body = await reader.read_exactly(length)
    return ParsedRequest(method, path, query, version, headers, body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _EXTRA_REASONS.get(status, "Unknown")


def format_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """Status line and header section of a response."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    """One ``Transfer-Encoding: chunked`` chunk (empty input gives nothing)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)
