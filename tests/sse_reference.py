"""The event-stream rules read plainly, over a whole stream: what `SSEDecoder` is held to.

WHATWG HTML, "Server-sent events", interpreting an event stream: one leading
byte-order mark is skipped; CRLF, CR and LF all end a line; a blank line
dispatches the event; lines starting with ":" are comments; a field's value
loses one leading space; `data` lines are joined with LF; an event whose data is
empty is not dispatched; an unterminated last event is not dispatched.
"""

from __future__ import annotations

BOM = b"\xef\xbb\xbf"


def events(stream: bytes) -> list[tuple[str | None, bytes]]:
    """`(event name or None, data)` of each event `stream` dispatches."""
    stream = stream.removeprefix(BOM)
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    dispatched: list[tuple[str | None, bytes]] = []
    for block in text.split(b"\n\n")[:-1]:
        name: str | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"data":
                data.append(value)
            elif field == b"event":
                name = value.decode("utf-8", "replace")
        if joined := b"\n".join(data):
            dispatched.append((name, joined))
    return dispatched


def payloads(stream: bytes) -> list[bytes]:
    """The data of each event `stream` dispatches."""
    return [data for _, data in events(stream)]
