"""Sans-I/O framing: Server-Sent Events and JSON lines, from bytes as they arrive.

Both are small state machines fed with whatever the transport read, so a
multi-byte character or an event split across TCP packets is reassembled here
and nowhere else. Both bound how much an unterminated event or line may hold.
Framing follows the WHATWG event-stream rules: one leading byte-order mark is
skipped, an event whose data is empty is not dispatched, unknown fields are
ignored (an `error:` field is kept aside, since some servers report a failure
that way and nothing else would say why the stream is empty).
"""

from __future__ import annotations

import re
from typing import final

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 1024 * 1024


# `[^\n]+`: an empty `data: ` line is not an event, so a read holding one takes the general path.
_NAMED_EVENTS = re.compile(rb"(?:event: [^\n]*\ndata: [^\n]+\n\n)+")
_NAMED_EVENT_DATA = re.compile(rb"event: [^\n]*\ndata: ([^\n]+)\n\n")
_BOM = b"\xef\xbb\xbf"
#: how much of an `error:` field is kept for the error message
_MAX_ERROR_FIELD = 4096


class OversizedMessageError(ValueError):
    """An event or line grew past the decoder's bound without ending."""


@final
class SSEDecoder:
    """Split a `text/event-stream` body into the data of its events.

    An event's data is its `data:` lines joined with `\\n`, still bytes, so JSON
    can be parsed straight from it. Comments
    (keep-alives) and events without data, or with empty data, are dropped.
    `error_field` holds the value of the last `error:` field seen (a field the
    standard does not define, which some servers use to report a failure).
    """

    __slots__ = ("_at_start", "_buffer", "_head", "_max_bytes", "_pending_cr", "error_field")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = b""
        self._max_bytes = max_event_bytes
        self._pending_cr = False
        self._at_start = True
        self._head = b""
        self.error_field: bytes | None = None

    def feed_data(self, data: bytes) -> list[bytes]:
        """The data of each event `data` completes, in order; the unfinished rest stays buffered.

        Only the data: both providers dispatch on the JSON payload, so event names
        are not decoded (tests/sse_reference.py is the plain reading of the rules
        these fast paths are held to).
        """
        if self._at_start:
            data = self._skip_bom(data)
        buffer = self._join(data)
        # Fast paths for a read made only of the event shapes both APIs send for every
        # delta; anything else (comments, ids, multi-line data) takes the general path.
        end = buffer.rfind(b"\n\n") + 2
        if end > 2:
            if buffer[:6] == b"data: ":
                # One-line `data:` events (OpenAI), split once straight into payloads. The
                # newline count proves the shape: the separators and the final blank
                # line hold every newline there is.
                payloads = buffer[6 : end - 2].split(b"\n\ndata: ")
                if buffer.count(b"\n", 0, end) == 2 * len(payloads):
                    self._keep(buffer[end:])
                    if not all(payloads):  # `data: ` with nothing after it is no event
                        return [p for p in payloads if p]
                    return payloads
            elif buffer[:7] == b"event: " and _NAMED_EVENTS.fullmatch(buffer, 0, end):
                # `event:` + one `data:` line (Anthropic): checked and cut by the regex engine.
                self._keep(buffer[end:])
                return _NAMED_EVENT_DATA.findall(buffer, 0, end)
        payloads = []
        append = payloads.append
        for block in self._split(buffer):
            if block[:6] == b"data: ":
                if b"\n" not in block:
                    if len(block) > 6:
                        append(block[6:])
                    continue
            elif block[:7] == b"event: ":
                start = block.find(b"\n") + 1
                if block[start : start + 6] == b"data: " and block.find(b"\n", start) < 0:
                    if len(block) > start + 6:
                        append(block[start + 6 :])
                    continue
            if payload := self._parse_block(block):
                append(payload)
        return payloads

    def _skip_bom(self, data: bytes) -> bytes:
        # One byte-order mark may open the stream, and a read may end inside it.
        data = self._head + data if self._head else data
        if len(data) < len(_BOM) and _BOM.startswith(data):
            self._head = data
            return b""
        self._head = b""
        self._at_start = False
        return data[len(_BOM) :] if data.startswith(_BOM) else data

    def _parse_block(self, block: bytes) -> bytes:
        """One event's data, its `data:` lines joined (empty: no event to dispatch)."""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"error":
                self.error_field = value[:_MAX_ERROR_FIELD]
        return b"\n".join(data)

    def _join(self, data: bytes) -> bytes:
        if self._pending_cr or b"\r" in data:
            data = self._normalise_newlines(data)
        return self._buffer + data if self._buffer else data

    def _split(self, buffer: bytes) -> list[bytes]:
        # One split per read rather than one find per event: a read holds hundreds of events.
        blocks = buffer.split(b"\n\n")
        self._keep(blocks.pop())
        return blocks

    def _keep(self, rest: bytes) -> None:
        if len(rest) > self._max_bytes:
            self._buffer = b""
            raise OversizedMessageError(f"an event grew to {len(rest)} bytes, over the bound of {self._max_bytes}")
        self._buffer = rest

    def _normalise_newlines(self, data: bytes) -> bytes:
        # A `\r` ending one read may be the first half of a `\r\n` split across reads:
        # it counts as a newline now, and a `\n` opening the next read is then dropped.
        if not data:
            return data  # an empty read settles nothing about a pending `\r`
        if self._pending_cr and data.startswith(b"\n"):
            data = data[1:]
        self._pending_cr = data.endswith(b"\r")
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


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
