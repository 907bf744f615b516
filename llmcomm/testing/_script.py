"""The :class:`Script` that tells the fake server how to answer one request."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Script", "default_error_type"]

_DEFAULT_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

# The server owns these: a scripted value would contradict how the body is sent.
_FRAMING_HEADERS: frozenset[str] = frozenset({"content-length", "transfer-encoding", "connection"})

# A "token" is a word together with the whitespace after it, so that joining
# the chunks gives back the text exactly.
_TOKEN_RE = re.compile(r"\S+\s*|\s+")


def default_error_type(status: int) -> str:
    """Return the Anthropic-style error type the real APIs use for ``status``."""
    return _DEFAULT_ERROR_TYPES.get(status, "api_error")


@functools.lru_cache(maxsize=16)
def _numbered_tokens(count: int) -> tuple[str, ...]:
    # Cached because benchmarks ask for the same large reply over and over.
    return tuple(f"tok{i} " for i in range(count))


@functools.lru_cache(maxsize=64)
def _split_text(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(text))


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """How the fake server answers one API request.

    Every default produces a normal, successful reply, so a test only names the
    behaviour it cares about, e.g. ``Script(status=429, retry_after=1.0)`` or
    ``Script(stall_after=3)``.  The ``*_after`` faults count content chunks:
    ``reset_after=2`` sends two text deltas and then resets the connection.

    Attributes:
        text: Reply text, streamed one word (with its trailing whitespace) per chunk.
        tokens: If set, the reply is ``"tok0 ", "tok1 ", ...`` with this many chunks.
        chunks: Exact content chunks to send; overrides ``tokens`` and ``text``.
        status: HTTP status.  Statuses of 400 and above send an error body in the
            wire format of the API being called.
        error_type: Error ``type`` field; derived from ``status`` when ``None``.
        error_message: Error ``message`` field.
        error_code: OpenAI error ``code`` field (e.g. ``"insufficient_quota"``).
        retry_after: Seconds sent in a ``retry-after`` header.
        retry_after_ms: Milliseconds sent in a ``retry-after-ms`` header.
        headers: Extra response headers; each replaces a generated header of the
            same name (the framing headers ``content-length``,
            ``transfer-encoding`` and ``connection`` cannot be scripted).
        delay_before_headers: Seconds to wait before writing the status line.
        delay_before_first_token: Seconds to wait after the opening stream events
            and before the first content delta.
        keepalive_interval: While waiting for the first token or stalled, send a
            keep-alive (Anthropic ``ping`` event, OpenAI SSE comment) this often.
        token_delay: Seconds to wait between content chunks.
        sse_error_after: After this many chunks, send an SSE error event and end
            the body without the terminal events.
        reset_after: After this many chunks, reset the TCP connection.
        stall_after: After this many chunks, send nothing more (except
            keep-alives) until the client closes the connection.
        omit_terminal: End the stream without its terminal events: no finish
            (stop) reason, no usage, no terminal marker.
        omit_terminal_marker: End the stream after its finish reason and usage,
            without the terminal marker (Anthropic ``message_stop``, OpenAI
            ``[DONE]``), as some servers do.
        malformed_after: After this many chunks, send one data line that is not
            valid JSON, then carry on normally.
        split_writes: Send the streamed body one byte per TCP write, so that
            multi-byte UTF-8 characters arrive split across packets.
        close_connection: Send ``connection: close`` and close after the response.
        input_tokens: Reported prompt tokens, cache reads and writes included;
            estimated from the request if ``None``.
        output_tokens: Reported completion tokens; the chunk count if ``None``.
        cache_read_tokens: Prompt tokens reported as read from the prompt cache.
        cache_write_tokens: Prompt tokens reported as written to the prompt cache
            (Anthropic only; OpenAI has no such count).
        reasoning_tokens: Completion tokens reported as reasoning (OpenAI only).
        start_input_tokens: Anthropic only: the input count ``message_start``
            reports, when it differs from the final one ``message_delta`` restates.
        reasoning: Reasoning chunks streamed before the text (an Anthropic
            thinking block, OpenAI-compatible ``reasoning_content`` deltas), with
            ``token_delay`` between them too; in a non-streamed reply, joined.
        stream_as_json: Answer a stream request with the whole non-streamed JSON
            reply, as some gateways do.
        reject_stream_options: OpenAI only: answer 400 when the request carries
            ``stream_options``, as some compatible servers do.
        stop_reason: Anthropic stop reason (mapped to an OpenAI finish reason).
        body_override: Send exactly these bytes as the body, with ``status``.
        content_type: Content type for ``body_override``.
        blocks: A reply made of content blocks, in order, each a tuple:
            ``("text", text)``, ``("thinking", text)``,
            ``("redacted_thinking", data)`` (Anthropic only) or
            ``("tool_use", name, arguments_json)``; streamed in each API's exact
            shape (tool-call JSON split over many deltas, parallel calls as
            consecutive ones). Overrides ``text``, ``tokens``, ``chunks`` and
            ``reasoning``; of the faults, only ``delay_before_first_token``,
            ``keepalive_interval``, ``token_delay`` and ``omit_terminal`` apply.
            The stop reason becomes ``tool_use`` (``tool_calls``) when the reply
            calls a tool and ``stop_reason`` was left at its default.

    For non-streaming requests the delays add up before the status line (the
    reply is "generated" first); ``reset_after`` and ``stall_after`` then apply
    before anything is written, and the other stream-only faults are ignored.
    """

    text: str = "Hello from llmcomm.testing."
    tokens: int | None = None
    chunks: tuple[str, ...] | None = None
    status: int = 200
    error_type: str | None = None
    error_message: str = "scripted error"
    error_code: str | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_before_headers: float = 0.0
    delay_before_first_token: float = 0.0
    keepalive_interval: float | None = None
    token_delay: float = 0.0
    sse_error_after: int | None = None
    reset_after: int | None = None
    stall_after: int | None = None
    omit_terminal: bool = False
    omit_terminal_marker: bool = False
    malformed_after: int | None = None
    split_writes: bool = False
    close_connection: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    start_input_tokens: int | None = None
    reasoning: tuple[str, ...] = ()
    stream_as_json: bool = False
    reject_stream_options: bool = False
    stop_reason: str = "end_turn"
    body_override: bytes | None = None
    content_type: str | None = None
    blocks: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        for name in (
            "tokens",
            "sse_error_after",
            "reset_after",
            "stall_after",
            "malformed_after",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("delay_before_headers", "delay_before_first_token", "token_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.keepalive_interval is not None and self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be > 0")
        framing = {name.lower() for name, _ in self.headers} & _FRAMING_HEADERS
        if framing:
            raise ValueError(f"framing headers cannot be scripted: {sorted(framing)}")
        for block in self.blocks or ():
            arity = {"text": 2, "thinking": 2, "redacted_thinking": 2, "tool_use": 3}.get(block[0] if block else "")
            if arity is None or len(block) != arity:
                raise ValueError(
                    f"bad block {block!r}: use ('text', s), ('thinking', s), ('redacted_thinking', data) "
                    "or ('tool_use', name, arguments_json)"
                )
        if not 100 <= self.status <= 999:
            raise ValueError(f"status must be a 3-digit HTTP status, got {self.status}")

    @property
    def content_chunks(self) -> tuple[str, ...]:
        """The content chunks this script sends, in order."""
        if self.chunks is not None:
            return self.chunks
        if self.tokens is not None:
            return _numbered_tokens(self.tokens)
        return _split_text(self.text)

    @property
    def resolved_error_type(self) -> str:
        """``error_type``, or the type the real APIs use for ``status``."""
        return self.error_type if self.error_type is not None else default_error_type(self.status)

    @property
    def is_error(self) -> bool:
        """Whether this script answers with an error body."""
        return self.status >= 400 and self.body_override is None

    @property
    def has_per_chunk_behaviour(self) -> bool:
        """Whether the stream needs anything beyond one bulk write."""
        return (
            self.delay_before_first_token > 0
            or self.token_delay > 0
            or self.split_writes
            or self.sse_error_after is not None
            or self.reset_after is not None
            or self.stall_after is not None
            or self.malformed_after is not None
        )
