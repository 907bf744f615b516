"""Messages, parts, tool calls and tools as plain data, and a reply's chunks put back together.

A conversation is a sequence of `Message`s. Text-only messages keep `content` a
`str` (as cheap as ever); richer ones hold a tuple of parts: `TextPart`,
`ImagePart`, `DocumentPart` and, in assistant turns, `ReasoningPart`. An
assistant turn carries its `tool_calls`; each answer is a `Message("tool", ...)`
naming the call it answers in `tool_call_id`. Input from callers is checked in
`llmcomm._conversation`; each wire's request body is built in `llmcomm._wire`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, final

import orjson

if TYPE_CHECKING:
    from ._types import StreamChunk

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))

#: what `finish_reason` may be, on every provider; the provider's own value is `raw_finish_reason`
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal", "other"]


@final
@dataclass(frozen=True, slots=True)
class TextPart:
    """Text in a message; `cache=True` marks a prompt-cache breakpoint after it (Anthropic `cache_control`)."""

    text: str
    cache: bool = False


@final
@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image: `data` (bytes) with its `media_type` (e.g. `"image/png"`), or an http(s) or data `url`."""

    data: bytes | None = None
    url: str | None = None
    media_type: str | None = None
    cache: bool = False


@final
@dataclass(frozen=True, slots=True)
class DocumentPart:
    """A document, a PDF by default: `data` (bytes) or an http(s) or data `url`, with an optional `title`."""

    data: bytes | None = None
    url: str | None = None
    media_type: str = "application/pdf"
    title: str | None = None
    cache: bool = False


@final
@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """Reasoning a provider returned, kept in the assistant turn that follows it.

    It is sent back only to the provider named in `provider` (Anthropic needs the
    opaque `signature`, or the `redacted` data of a redacted block); every other
    provider drops it.
    """

    text: str
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None


Part = TextPart | ImagePart | DocumentPart | ReasoningPart


@final
@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made.

    `arguments` is the parsed JSON object (`{}` for empty input; when the text was
    not a JSON object, `{}` with the text kept in `raw_arguments`).
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""


@final
@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call.

    `index` is the call's ordinal in this reply (0, 1, ... whatever the wire
    numbers its blocks); `id` and `name` come with the first piece, `arguments`
    is the raw JSON fragment of this piece; the one piece with `done=True` has the
    whole parsed `call`.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    done: bool = False
    call: ToolCall | None = None


@final
@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: `parameters` is a JSON Schema object.

    `cache=True` marks a prompt-cache breakpoint after the tool definitions.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    strict: bool = False
    cache: bool = False

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None, strict: bool = False) -> Tool:
        """A `Tool` from a function's signature, type hints and docstring (pydantic, imported here).

        Raises `InvalidRequestError` when a parameter's type has no JSON Schema.
        """
        from ._tools import tool_from_function

        return tool_from_function(cls, fn, name=name, strict=strict)


@final
@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation.

    `role` is `system`, `user`, `assistant` or `tool`; `content` is a `str` or a
    tuple of parts. An assistant turn may carry `tool_calls`; a `tool` turn answers
    the call named by `tool_call_id` (`is_error=True` when the tool failed).
    Wherever llmcomm takes a list of messages it also accepts dicts (the OpenAI
    Chat Completions format included) and any object with `.role` and `.content`.
    """

    role: Role
    content: str | tuple[Part, ...]
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The message's text: `content` itself, or its text parts joined."""
        content = self.content
        if content.__class__ is str:
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))


def message_text(message: Message) -> str:
    """`message.text`, for callers that hold a message-like object."""
    return message.text


_FINISH: Mapping[str, FinishReason] = {
    # Anthropic
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    # OpenAI and compatible servers
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def normalise_finish_reason(raw: str | None) -> FinishReason | None:
    """The normalised finish reason for a provider's own value (None stays None)."""
    if raw is None:
        return None
    return _FINISH.get(raw, "other")


def parse_arguments(raw: str) -> tuple[dict[str, Any], str]:
    """A tool call's arguments from its JSON text: `(object, "")`, or `({}, raw)` when not an object."""
    if not raw.strip():
        return {}, ""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}, raw
    if isinstance(value, dict):
        return value, ""
    return {}, raw


@final
@dataclass(frozen=True, slots=True)
class Assembled:
    """What a reply's chunks add up to besides its text."""

    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    reasoning_parts: tuple[ReasoningPart, ...] = ()
    refusal: str | None = None
    raw_finish_reason: str | None = None
    provider_request_id: str | None = None

    def response_fields(self) -> dict[str, Any]:
        """These facts as `LLMResponse` keyword arguments."""
        return {
            "tool_calls": self.tool_calls,
            "reasoning": self.reasoning,
            "reasoning_parts": self.reasoning_parts,
            "refusal": self.refusal,
            "raw_finish_reason": self.raw_finish_reason,
            "provider_request_id": self.provider_request_id,
        }


def assemble(chunks: Iterable[StreamChunk]) -> Assembled:
    """The tool calls, reasoning and closing facts of one reply, from its chunks in order.

    A tool call is taken from its `done` delta; one whose stream broke before it is
    put together from its fragments.
    """
    calls: dict[int, ToolCall] = {}
    open_calls: dict[int, list[str]] = {}
    heads: dict[int, tuple[str, str]] = {}
    thoughts: list[str] = []
    parts: list[ReasoningPart] = []
    raw_finish: str | None = None
    request_id: str | None = None
    refusal: str | None = None
    for chunk in chunks:
        if chunk.reasoning:
            thoughts.append(chunk.reasoning)
        extras = chunk.extras
        if extras is None:  # a text chunk: nothing more to read
            continue
        delta = extras.tool_call
        if delta is not None:
            if delta.call is not None:
                calls[delta.index] = delta.call
                open_calls.pop(delta.index, None)
            else:
                if delta.id is not None or delta.name is not None:
                    old = heads.get(delta.index, ("", ""))
                    heads[delta.index] = (delta.id or old[0], delta.name or old[1])
                open_calls.setdefault(delta.index, []).append(delta.arguments)
        if extras.reasoning_part is not None:
            parts.append(extras.reasoning_part)
        if extras.raw_finish_reason is not None:
            raw_finish = extras.raw_finish_reason
        if extras.provider_request_id is not None:
            request_id = extras.provider_request_id
        if extras.refusal:
            refusal = (refusal or "") + extras.refusal
    for index, pieces in open_calls.items():
        call_id, name = heads.get(index, ("", ""))
        arguments, raw = parse_arguments("".join(pieces))
        calls[index] = ToolCall(call_id, name, arguments, raw)
    return Assembled(
        tool_calls=tuple(calls[i] for i in sorted(calls)),
        reasoning="".join(thoughts),
        reasoning_parts=tuple(parts),
        refusal=refusal,
        raw_finish_reason=raw_finish,
        provider_request_id=request_id,
    )


def assistant_message(
    content: str, tool_calls: tuple[ToolCall, ...], reasoning: tuple[ReasoningPart, ...], reasoning_text: str
) -> Message:
    """The assistant turn for a reply: reasoning first (in the order received), then text, with its tool calls."""
    if not reasoning and reasoning_text:
        reasoning = (ReasoningPart(reasoning_text),)
    if not reasoning:
        return Message("assistant", content, tool_calls=tool_calls)
    parts: tuple[Part, ...] = (*reasoning, TextPart(content)) if content else tuple(reasoning)
    return Message("assistant", parts, tool_calls=tool_calls)


class _MessageDraft:
    """A `Message` under construction: the same slots, without the frozen `__setattr__`."""

    __slots__ = Message.__slots__
    role: str
    content: str
    name: str | None
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str | None
    is_error: bool


def text_message(role: str, content: str, name: str | None = None) -> Message:
    """`Message(role, content, name)` for a checked text turn, built at the cost of a plain object.

    A frozen dataclass sets each of its six fields through `object.__setattr__`;
    the draft takes plain stores and then becomes a `Message` (equal to the
    constructor's, and frozen like any other).
    """
    message = _MessageDraft()
    message.role = role
    message.content = content
    message.name = name
    message.tool_calls = ()
    message.tool_call_id = None
    message.is_error = False
    message.__class__ = Message  # type: ignore[assignment]
    return message  # type: ignore[return-value]
