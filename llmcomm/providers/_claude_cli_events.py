"""Decoding the Claude Code CLI's `stream-json` stdout, one line at a time (sans I/O)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, final

import orjson

from .._errors import InvalidRequestError, LLMException, ProviderUnavailableError
from .._messages import normalise_finish_reason
from .._secrets import scrub
from .._types import StreamChunk, UsageInfo
from .._wire._status import error_for_status

#: a UTF-16 surrogate: only a line decoded by the lenient fallback can hold one
_SURROGATE = re.compile("[\ud800-\udfff]")
#: what the CLI writes on stderr when it refuses its input or argv before starting a session
_USAGE_ERROR = re.compile(r"^error(?::| parsing)", re.IGNORECASE)
_UNKNOWN_OPTION = re.compile(r"unknown option|unknown command|too many arguments", re.IGNORECASE)

#: the tool through which the CLI has the model answer when --json-schema is given
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"


def loads_lenient(line: bytes) -> object:
    """Parse one JSON line as the CLI wrote it; `ValueError` when it is not JSON at all.

    orjson refuses what JavaScript's `JSON.stringify` emits for a lone UTF-16
    surrogate (`"\\ud83d"`, e.g. an emoji whose pair the API split over two deltas);
    the standard library accepts it, so a line orjson rejects gets a second chance
    rather than being dropped with its text.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line.decode("utf-8", "replace"))


def repair_surrogates(text: str) -> str:
    """Join surrogate pairs into their characters; a lone surrogate becomes U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@final
class CLIStream:
    """Position, model and result while one CLI stdout is decoded (sans I/O)."""

    __slots__ = (
        "assistant_text",
        "images",
        "index",
        "input_usage",
        "model",
        "output_tokens",
        "parts",
        "pending",
        "provider",
        "refused_image",
        "result",
        "started",
        "stop_reason",
        "structured",
        "truncated",
        "undecodable",
    )

    def __init__(self, provider: str, model: str, images: int = 0) -> None:
        self.images = images  # image blocks sent on stdin
        self.refused_image: str | None = None  # the CLI's note for an image it could not read
        self.assistant_text: str | None = None  # the text of the CLI's last `assistant` line
        self.provider = provider
        self.model = model
        self.index = 0
        self.parts: list[str] = []
        self.pending = ""  # a high surrogate whose low half comes in the next delta
        self.stop_reason: str | None = None
        self.result: dict[str, Any] | None = None
        self.started = False  # the CLI announced its session: it accepted argv and input
        self.truncated = False  # the reply was cut at max_tokens
        self.undecodable = 0  # lines that looked like JSON objects and could not be decoded
        self.input_usage: dict[str, Any] = {}
        self.output_tokens = 0
        self.structured: str | None = None  # with --json-schema: the value the model gave, as JSON text

    def handle(self, line: bytes) -> StreamChunk | None:
        """Take one stdout line; return a chunk when it carries text or reasoning (a `thinking_delta`)."""
        try:
            event = loads_lenient(line)
        except ValueError:
            if line.lstrip().startswith(b"{"):
                self.undecodable += 1
            return None  # the CLI may print a stray warning on stdout
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "result":
            self.result = event
        elif kind == "user" and isinstance(message := event.get("message"), dict):
            self._replayed(message.get("content"))
        elif kind == "system" and event.get("subtype") == "init":
            self.started = True
        elif kind == "assistant" and isinstance(message := event.get("message"), dict):
            content = message.get("content")
            if isinstance(content, list):
                parts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
                self.assistant_text = "".join(p for p in parts if isinstance(p, str))
                # With --json-schema the model answers by calling the CLI's own StructuredOutput tool.
                for block in content:
                    if (
                        isinstance(block, dict)
                        and block.get("type") == "tool_use"
                        and block.get("name") == STRUCTURED_OUTPUT_TOOL
                        and isinstance(block.get("input"), dict)
                    ):
                        self.structured = orjson.dumps(block["input"]).decode()
        elif kind == "stream_event" and isinstance(inner := event.get("event"), dict):
            return self._stream_event(inner)
        return None

    def _replayed(self, content: object) -> None:
        """Check the user message as the CLI will send it (`--replay-user-messages`): an image it
        could not read is a text note there, fewer image blocks than were sent."""
        if not self.images or not isinstance(content, list):
            return
        blocks = [b for b in content if isinstance(b, dict)]
        if sum(b.get("type") == "image" for b in blocks) < self.images:
            notes = [b["text"] for b in blocks if isinstance(b.get("text"), str) and b["text"].startswith("[Image")]
            self.refused_image = notes[0] if notes else "an image was left out"

    def _stream_event(self, inner: Mapping[str, Any]) -> StreamChunk | None:
        inner_kind = inner.get("type")
        if inner_kind == "content_block_delta":
            delta = inner.get("delta")
            if isinstance(delta, dict):
                if delta.get("type") == "text_delta":
                    return self._text(delta.get("text"))
                if delta.get("type") == "thinking_delta":
                    return self._thinking(delta.get("thinking"))
        elif inner_kind == "message_start":
            message = inner.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("model"), str) and message["model"]:
                    self.model = message["model"]
                if isinstance(message.get("usage"), dict):
                    self.input_usage = message["usage"]
        elif inner_kind == "message_delta":
            delta = inner.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
                self.truncated = self.stop_reason == "max_tokens"
            usage = inner.get("usage")
            if isinstance(usage, dict):
                # The final counts: message_delta may repeat the input and cache counts, larger.
                self.output_tokens = _count(usage, "output_tokens") or self.output_tokens
                for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                    if _count(usage, key):
                        self.input_usage = {**self.input_usage, key: usage[key]}
        return None

    def _text(self, text: object) -> StreamChunk | None:
        if not isinstance(text, str):
            return None
        if self.pending or _SURROGATE.search(text):
            text = self.pending + text
            self.pending = ""
            if text and "\ud800" <= text[-1] <= "\udbff":
                text, self.pending = text[:-1], text[-1]
            text = repair_surrogates(text)
        if not text:
            return None
        self.parts.append(text)
        chunk = StreamChunk(text, self.provider, self.model, self.index)
        self.index += 1
        return chunk

    def _thinking(self, text: object) -> StreamChunk | None:
        """A reasoning chunk for a `thinking_delta` (never part of the answer text)."""
        if not isinstance(text, str) or not text:
            return None
        chunk = StreamChunk("", self.provider, self.model, self.index, reasoning=repair_surrogates(text))
        self.index += 1
        return chunk

    def flush(self) -> Iterator[StreamChunk]:
        """What is still held back (a high surrogate whose pair never came), repaired."""
        if self.pending:
            pending, self.pending = self.pending, ""
            if chunk := self._text(repair_surrogates(pending)):
                yield chunk

    def _stream_usage(self) -> UsageInfo | None:
        output = self.output_tokens or _count(self.input_usage, "output_tokens")
        return usage_of({**self.input_usage, "output_tokens": output})

    def truncated_end(self) -> StreamChunk:
        """The closing chunk of a reply cut at max_tokens (the CLI is stopped before its result)."""
        return StreamChunk(
            "",
            self.provider,
            self.model,
            self.index,
            "length",
            self._stream_usage(),
            raw_finish_reason="max_tokens",
        )

    def finish(self, secrets: Sequence[str | None]) -> Iterator[StreamChunk]:
        """The chunks that close a stream whose result line arrived, or its error."""
        result = self.result
        assert result is not None
        # The spending cap that stops the CLI after one API response (see ONE_RESPONSE_BUDGET_USD)
        # ends a complete reply with this subtype, the text in the `assistant` line; without
        # a response (a CLI that refused the cap up front) it is an error, never an empty reply.
        answered = self.stop_reason is not None or self.assistant_text is not None
        one_response = (
            result.get("subtype") == "error_max_budget_usd" and not result.get("api_error_status") and answered
        )
        if result.get("is_error") is not False and not one_response:
            raise self._error(result, secrets)
        final = self.assistant_text if one_response else result.get("result")
        streamed = "".join(self.parts)
        if result.get("structured_output") is not None:  # with --json-schema the value comes here, not as text
            self.structured = orjson.dumps(result["structured_output"]).decode()
        if self.structured is not None and not streamed and not self.pending:
            final = self.structured
        if isinstance(final, str):
            final = repair_surrogates(final)
            if self.pending and final.startswith(streamed):
                self.pending = ""  # the final text says what the held-back half belonged to
        yield from self.flush()
        streamed = "".join(self.parts)
        # After an SSE error mid-stream the CLI asks again without streaming, so the
        # deltas may fall short of the final text. When they are its beginning, the
        # rest is sent; when they say something else, what was sent cannot be taken
        # back and nothing more is sent (the final text stays in `last_result`),
        # unless a line was lost on the way: then the caller is told.
        if isinstance(final, str) and final.startswith(streamed):
            if rest := self._text(final[len(streamed) :]):
                yield rest
        elif self.undecodable:
            raise ProviderUnavailableError(
                f"the claude CLI wrote {self.undecodable} output line(s) that could not be decoded, and the "
                "streamed text differs from its final result; try again or update the CLI",
                provider=self.provider,
            )
        reason = _first_str(result.get("stop_reason"), self.stop_reason, result.get("terminal_reason")) or "end_turn"
        if self.structured is not None and not self.truncated:  # the StructuredOutput call is the whole answer
            reason = "end_turn"
        usage = self._stream_usage() if one_response else usage_of(result.get("usage"))
        yield StreamChunk(
            "", self.provider, self.model, self.index, normalise_finish_reason(reason), usage, raw_finish_reason=reason
        )

    def _error(self, result: Mapping[str, Any], secrets: Sequence[str | None]) -> LLMException:
        text = _first_str(result.get("result")) or "; ".join(map(str, result.get("errors") or ())) or "no detail"
        detail = scrub_all(text[:1000], secrets)
        status = result.get("api_error_status")
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            return error_for_status(
                status,
                f"the claude CLI reported: {detail}",
                provider=self.provider,
                key_hint="ANTHROPIC_API_KEY",
                model=self.model,
                code=_first_str(result.get("api_error_type")),
            )
        what = ", ".join(s for s in (_first_str(result.get("subtype")), _first_str(result.get("terminal_reason"))) if s)
        return ProviderUnavailableError(
            f"the claude CLI reported an error ({what or 'unknown'}): {detail}; try again or check the CLI",
            provider=self.provider,
        )

    def exit_error(self, exit_note: str, stderr: str, secrets: Sequence[str | None], cli_path: str) -> LLMException:
        """The error for a child that ended without a result line."""
        line = scrub_all(stderr, secrets)
        if not self.started and _USAGE_ERROR.match(line):
            if _UNKNOWN_OPTION.search(line):
                return ProviderUnavailableError(
                    f"the claude CLI at {cli_path!r} does not take the options llmcomm passes ({line}); "
                    "install a current @anthropic-ai/claude-code",
                    provider=self.provider,
                    retryable=False,
                )
            # The CLI refused the input before it started a session: the same input fails
            # the same way every time, so this is the caller's error, not an outage.
            return InvalidRequestError(
                f"the claude CLI refused the request: {line}; change the prompt or options", provider=self.provider
            )
        note = f" (stderr: {line})" if line else " (stderr was empty)"
        return ProviderUnavailableError(
            f"the claude CLI {exit_note} before its result line{note}; check that it runs: `{cli_path} -p`",
            provider=self.provider,
        )


def scrub_all(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        text = scrub(text, secret)
    return text


def _first_str(*values: object) -> str | None:
    return next((v for v in values if isinstance(v, str) and v), None)


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(raw: object) -> UsageInfo | None:
    if not isinstance(raw, dict):
        return None
    read, write = _count(raw, "cache_read_input_tokens"), _count(raw, "cache_creation_input_tokens")
    prompt = _count(raw, "input_tokens") + read + write
    return UsageInfo.of(prompt, _count(raw, "output_tokens"), cache_read_tokens=read, cache_write_tokens=write)
