"""What the per-wire event decoders share: the decoder's state, errors and lenient JSON.

A wire decoder is a sans-I/O state machine: it is fed each network read of a
response body and returns the `StreamChunk`s that read completes, then `end()`
gives the closing chunk or says why the reply is not complete. The rules that
must be the same on every wire live here:

- The body ends when the terminal event arrives; nothing after it is decoded,
  even when it shares a read with it.
- A reply is complete when the terminal event arrived or a finish reason was
  seen; a stream with neither content nor a finish reason is a failure, with the
  server's own error when it sent one outside the event data.
- JSON is read with orjson. orjson refuses what the stdlib's json (and so the
  official SDKs) accepts in real streams: lone surrogate escapes such as
  `"\\ud83d"`, the two halves of one emoji sent in two events. Only an event
  orjson rejects is read again by the stdlib; its text is then repaired (a split
  pair rejoined, a lone half replaced by U+FFFD). The per-token path never pays.
- Every field is type-checked before it becomes chunk text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from .._messages import ReasoningPart, ToolCallDelta, normalise_finish_reason
from .._types import ChunkBatch, StreamChunk, UsageInfo, content_chunk
from ._sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder

#: the OpenAI terminal marker, which some proxies append to other wires too
DONE = b"[DONE]"

Append = Callable[[StreamChunk], None]


class WireError(Exception):
    """An error the server reported inside a 200 response.

    `status` is the HTTP status the server named (None if it named none), `kind`
    its error type (`overloaded_error`, `server_error`, ...) and `code` its error
    code when that is not a status (`insufficient_quota`, ...).
    """

    def __init__(
        self, detail: str, *, status: int | None = None, kind: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.kind = kind
        self.code = code


class MalformedEventError(ValueError):
    """An event whose fields do not have the types the wire defines."""


class IncompleteStreamError(Exception):
    """The body ended before the reply was complete (the message says what was missing)."""


def wire_error(error: object, where: str = "error event in the stream") -> WireError:
    """The `WireError` for an error object in either wire's shape.

    Anthropic: `{"type": "error", "error": {"type": ..., "message": ...}}`;
    OpenAI and compatible servers: `{"error": {...}}` or the inner object itself,
    with a numeric `code` when they give a status.
    """
    inner = error.get("error") if isinstance(error, dict) else None
    if isinstance(inner, dict | str):
        error = inner
    if isinstance(error, dict):
        kind = error.get("type")
        code = error.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
        detail = str(error.get("message") or kind or "no detail")
        return WireError(
            f"{where}: {detail}",
            status=status,
            kind=str(kind) if kind else None,
            code=str(code) if isinstance(code, str) and code else None,
        )
    return WireError(f"{where}: {error}")


def lenient_loads(payload: bytes, error: orjson.JSONDecodeError) -> Any:
    """The stdlib's reading of an event orjson rejected, or `error` if it is not JSON at all.

    Returns None for a payload of whitespace only. Invalid UTF-8 becomes U+FFFD, as
    the official SDKs' line decoding does.
    """
    text = payload.decode("utf-8", "replace")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise error from None


def as_text(value: object, field: str) -> str:
    """A text field's value; None is no text, anything but a str is a malformed event."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise MalformedEventError(f"`{field}` is a {type(value).__name__}, not text")


def _fix_surrogates(text: str) -> str:
    # Pairs written as two escapes become one character; a lone half becomes U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _is_high_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


class StreamDecoder:
    """The state both wire decoders keep while one reply is decoded.

    `feed(data)` returns the chunks one network read completes. When an event in
    the read is bad, the chunks decoded before it are returned and the error is
    kept in `failure` (the caller raises it after handing the chunks on); with no
    chunk before it, `feed` raises at once. `finished` turns true at the terminal
    event, after which nothing more is decoded. `message(body)` decodes a whole
    JSON reply (a server that answered a stream request without streaming);
    `end()` gives the closing chunks or raises `IncompleteStreamError` /
    `WireError`.

    What `feed` and `message` raise (or keep in `failure`): `WireError` for an
    error the server reported, `MalformedEventError` for a field of the wrong
    type, `orjson.JSONDecodeError` for an event that is not JSON even to the
    stdlib, `OversizedMessageError` for an event over the bound (bytes).
    """

    __slots__ = (
        "_held",
        "_sse",
        "failure",
        "finish_reason",
        "finished",
        "index",
        "model",
        "provider",
        "provider_request_id",
        "raw_finish_reason",
        "thinking_alive",
    )

    #: what the terminal event is called, for messages
    terminal = "the terminal event"

    def __init__(self, provider: str, model: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.provider = provider
        self.model = model
        self.index = 0
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.provider_request_id: str | None = None  # set by the reader from the response headers
        self.finished = False
        self.failure: Exception | None = None
        #: a keep-alive came while a thinking block was open: the model is thinking, not silent
        #: (DESIGN Part 2: such pings are not idleness); the reader resets it once it has told
        self.thinking_alive = False
        self._held = ""  # a high surrogate that ended the last text, waiting for its other half
        self._sse = SSEDecoder(max_event_bytes)

    def feed(self, data: bytes) -> ChunkBatch:
        """The chunks `data` completes."""
        raise NotImplementedError

    def message(self, body: bytes) -> ChunkBatch:
        """The chunks of a whole JSON reply."""
        raise NotImplementedError

    def usage(self) -> UsageInfo | None:
        """The counts the server reported so far (None if it reported none)."""
        raise NotImplementedError

    def end(self) -> ChunkBatch:
        """The chunks that close the reply, the last one carrying `finish_reason` and `usage`.

        Raises `WireError` when the server reported an error outside the event
        data and the reply has no finish reason, and `IncompleteStreamError` when
        the body ended before the terminal event and without a finish reason, or
        carried neither content nor a finish reason.
        """
        if self.finish_reason is None:
            stray = self._sse.error_field
            if stray is not None:
                raise _stray_error(stray)
            if not self.finished:
                raise IncompleteStreamError(
                    f"the stream ended before {self.terminal}; the reply is incomplete, try again"
                )
            if not self.index:
                raise IncompleteStreamError(
                    "the stream ended with neither content nor a finish reason; "
                    "the server sent no reply, try again or check the server's logs"
                )
        closing: ChunkBatch = []
        if self._held:  # a high surrogate whose other half never came
            self._held = ""
            closing.append(content_chunk("\ufffd", self.provider, self.model, self.index))
            self.index += 1
        closing += self._open_parts()
        closing.append(
            StreamChunk(
                "",
                self.provider,
                self.model,
                self.index,
                self.finish_reason,
                self.usage(),
                raw_finish_reason=self.raw_finish_reason,
                provider_request_id=self.provider_request_id,
            )
        )
        return closing

    def _open_parts(self) -> ChunkBatch:
        """Chunks for what the wire left open at the end (tool calls without their closing piece)."""
        return []

    def _finish(self, reason: object) -> None:
        """Note the provider's finish reason, normalised, and as it was."""
        raw = str(reason)
        self.raw_finish_reason = raw
        self.finish_reason = normalise_finish_reason(raw)

    def _piece(self, append: Append, delta: ToolCallDelta | None = None, part: ReasoningPart | None = None) -> None:
        """Append a chunk for a tool-call delta or a whole reasoning block."""
        if delta is None and part is None:
            return
        append(StreamChunk("", self.provider, self.model, self.index, tool_call=delta, reasoning_part=part))
        self.index += 1

    def _loads_body(self, body: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            obj = lenient_loads(body, exc)
        if not isinstance(obj, dict):
            raise MalformedEventError(f"the JSON body is a {type(obj).__name__}, not an object")
        self.finished = True
        return obj

    def _emit(self, append: Append, text: str, reasoning: str, repair: bool) -> None:
        """Append a chunk for `text` and `reasoning`, if there is any; `repair` after a lenient read."""
        if repair:
            if self._held:
                text, self._held = self._held + text, ""
            if text and _is_high_surrogate(text[-1]):
                text, self._held = text[:-1], text[-1]
            text = _fix_surrogates(text)
            reasoning = _fix_surrogates(reasoning)
        if reasoning:
            append(StreamChunk(text, self.provider, self.model, self.index, reasoning=reasoning))
        elif text:
            append(content_chunk(text, self.provider, self.model, self.index))
        else:
            return
        self.index += 1


def _stray_error(value: bytes) -> WireError:
    where = "the server reported an error outside the event data"
    try:
        return wire_error(orjson.loads(value), where)
    except orjson.JSONDecodeError:
        return WireError(f"{where}: {value.decode('utf-8', 'replace')}")


def count(value: object) -> int | None:
    """A token count as reported: an int (0 included), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
