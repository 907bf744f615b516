"""Sans-I/O decoders: Server-Sent Events and JSON lines, from bytes as they arrive.

Both are small state machines fed with whatever the transport read, so a
multi-byte character or an event split across TCP packets is reassembled here
and nowhere else. Both bound how much an unterminated event or line may hold.
"""

from __future__ import annotations

from typing import final

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 1024 * 1024


class OversizedMessageError(ValueError):
    """An event or line grew past the decoder's bound without ending."""


@final
class SSEDecoder:
    """Split a `text/event-stream` body into `(event, data)` pairs.

    `event` is the `event:` field or None; `data` is the `data:` lines joined with
    `\\n`, still bytes, so JSON can be parsed straight from it. Comments
    (keep-alives) and events without data are dropped.
    """

    __slots__ = ("_buffer", "_max_bytes", "_pending_cr")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self._max_bytes = max_event_bytes
        self._pending_cr = False

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """Decode what `data` completes; keep the rest for the next call."""
        if self._pending_cr or b"\r" in data:
            data = self._normalise_newlines(data)
        buffer = self._buffer + data if self._buffer else data
        events: list[tuple[str | None, bytes]] = []
        start = 0
        find = buffer.find
        while (end := find(b"\n\n", start)) >= 0:
            block = buffer[start:end]
            start = end + 2
            # Fast path: the single `data:` line that both APIs send for every delta.
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append((None, block[6:]))
                continue
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        if len(self._buffer) > self._max_bytes:
            size = len(self._buffer)
            self._buffer = b""
            raise OversizedMessageError(f"an event grew to {size} bytes, over the bound of {self._max_bytes}")
        return events

    def _normalise_newlines(self, data: bytes) -> bytes:
        # A `\r` ending one read may be the first half of a `\r\n` split across reads:
        # it counts as a newline now, and a `\n` opening the next read is then dropped.
        if self._pending_cr and data.startswith(b"\n"):
            data = data[1:]
        self._pending_cr = data.endswith(b"\r")
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if not data:
        return None
    return event, b"\n".join(data)


@final
class JSONLinesDecoder:
    """Split a byte stream into complete, non-empty lines (without the newline)."""

    __slots__ = ("_buffer", "_max_bytes")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buffer = b""
        self._max_bytes = max_line_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """Return the lines that `data` completes."""
        buffer = self._buffer + data if self._buffer else data
        *lines, rest = buffer.split(b"\n")
        self._buffer = rest
        if len(rest) > self._max_bytes:
            self._buffer = b""
            raise OversizedMessageError(f"a line grew to over {self._max_bytes} bytes without ending")
        for line in lines:
            if len(line) > self._max_bytes:
                raise OversizedMessageError(f"a line of {len(line)} bytes is over the bound of {self._max_bytes}")
        return [s for line in lines if (s := line.strip())]

    def flush(self) -> list[bytes]:
        """The last line, when the stream ended without a newline."""
        rest, self._buffer = self._buffer.strip(), b""
        return [rest] if rest else []
