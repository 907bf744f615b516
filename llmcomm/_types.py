"""Plain, closed data: chunks, attempts, responses and the normalised request.

`Message` (from `_messages`) and `UsageInfo` (from `_usage`) are re-exported here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, final

from ._messages import ROLES as ROLES
from ._messages import Message as Message
from ._messages import ReasoningPart, Tool, ToolCall, ToolCallDelta, assistant_message
from ._messages import Role as Role
from ._structured import OutputFormat
from ._usage import UsageInfo as UsageInfo

AttemptOutcome = Literal[
    "won", "failed", "cancelled", "continued", "skipped-cooldown", "skipped-unsupported", "skipped-rate-limit"
]


@final
@dataclass(frozen=True, slots=True)
class ChunkExtras:
    """What a few chunks carry besides text and reasoning (see the `StreamChunk` properties)."""

    tool_call: ToolCallDelta | None = None
    reasoning_part: ReasoningPart | None = None
    refusal: str = ""
    raw_finish_reason: str | None = None
    provider_request_id: str | None = None


@final
@dataclass(frozen=True, slots=True, init=False, repr=False)
class StreamChunk:
    """One piece of a streamed reply.

    `text` is answer text only; `reasoning` carries reasoning (thinking) deltas;
    `tool_call` a piece of a tool call (`ToolCallDelta`); `refusal` a piece of an
    OpenAI refusal; `reasoning_part` a whole reasoning block once it ends (with
    Anthropic's signature). The closing chunk carries `finish_reason` (normalised:
    stop, length, tool_calls, content_filter, refusal, other), the provider's own
    `raw_finish_reason`, its `provider_request_id` and, when the provider reports
    it, `usage`. The rarely set fields live in one `extras` object, so a text
    chunk costs what it always did.
    """

    text: str
    provider: str
    model: str
    index: int
    finish_reason: str | None
    usage: UsageInfo | None
    reasoning: str
    extras: ChunkExtras | None

    def __init__(
        self,
        text: str,
        provider: str,
        model: str,
        index: int = 0,
        finish_reason: str | None = None,
        usage: UsageInfo | None = None,
        reasoning: str = "",
        *,
        tool_call: ToolCallDelta | None = None,
        reasoning_part: ReasoningPart | None = None,
        refusal: str = "",
        raw_finish_reason: str | None = None,
        provider_request_id: str | None = None,
        extras: ChunkExtras | None = None,
    ) -> None:
        if extras is None and (
            tool_call is not None
            or reasoning_part is not None
            or refusal
            or raw_finish_reason is not None
            or provider_request_id is not None
        ):
            extras = ChunkExtras(tool_call, reasoning_part, refusal, raw_finish_reason, provider_request_id)
        store = object.__setattr__
        store(self, "text", text)
        store(self, "provider", provider)
        store(self, "model", model)
        store(self, "index", index)
        store(self, "finish_reason", finish_reason)
        store(self, "usage", usage)
        store(self, "reasoning", reasoning)
        store(self, "extras", extras)

    @property
    def tool_call(self) -> ToolCallDelta | None:
        """A piece of a tool call, or None."""
        return self.extras.tool_call if self.extras is not None else None

    @property
    def reasoning_part(self) -> ReasoningPart | None:
        """A whole reasoning block, sent once it ended, or None."""
        return self.extras.reasoning_part if self.extras is not None else None

    @property
    def refusal(self) -> str:
        """A piece of a refusal ("" when none)."""
        return self.extras.refusal if self.extras is not None else ""

    @property
    def raw_finish_reason(self) -> str | None:
        """The provider's own finish reason (on the closing chunk)."""
        return self.extras.raw_finish_reason if self.extras is not None else None

    @property
    def provider_request_id(self) -> str | None:
        """The provider's id for the request (on the closing chunk, when it sent one)."""
        return self.extras.provider_request_id if self.extras is not None else None

    def __repr__(self) -> str:
        shown = [f"text={self.text!r}", f"provider={self.provider!r}", f"model={self.model!r}", f"index={self.index}"]
        shown += [
            f"{name}={value!r}" for name in ("finish_reason", "usage") if (value := getattr(self, name)) is not None
        ]
        if self.reasoning:
            shown.append(f"reasoning={self.reasoning!r}")
        if self.extras is not None:
            shown += [f"{name}={value!r}" for name in ChunkExtras.__slots__ if (value := getattr(self.extras, name))]
        return f"StreamChunk({', '.join(shown)})"


def is_progress(chunk: StreamChunk) -> bool:
    """Whether a chunk shows the provider is producing a reply: text, reasoning, a tool-call delta or a refusal.

    Progress wins the fallback race and resets the idle watchdog (DESIGN Part 2).
    """
    if chunk.text or chunk.reasoning:
        return True
    extras = chunk.extras
    return extras is not None and (extras.tool_call is not None or bool(extras.refusal))


#: A run of chunks decoded from one network read. Built-in providers hand chunks to
#: the race in batches, so the per-token path has no task hand-off of its own.
ChunkBatch = list[StreamChunk]


class _ChunkDraft:
    """A `StreamChunk` under construction: the same slots, without the frozen `__setattr__`."""

    __slots__ = StreamChunk.__slots__
    text: str
    provider: str
    model: str
    index: int
    finish_reason: str | None
    usage: UsageInfo | None
    reasoning: str
    extras: ChunkExtras | None


def content_chunk(text: str, provider: str, model: str, index: int) -> StreamChunk:
    """`StreamChunk(text, provider, model, index)`, built for the per-token path.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`,
    which costs about as much as decoding the token did. A draft with the same slot
    layout takes plain attribute stores and then becomes a `StreamChunk`; the result
    is the constructor's (a test compares them), and it is frozen like any other.
    """
    chunk = _ChunkDraft()
    chunk.text = text
    chunk.provider = provider
    chunk.model = model
    chunk.index = index
    chunk.finish_reason = None
    chunk.usage = None
    chunk.reasoning = ""
    chunk.extras = None
    chunk.__class__ = StreamChunk  # type: ignore[assignment]
    return chunk  # type: ignore[return-value]


@final
@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one provider while serving one call.

    `outcome` "continued" marks the attempt that went on with a reply another
    provider's broken stream had started (`Configuration(continue_on_interrupt=True)`).
    `reason` says why the attempt started: "first", "fallback" (the one before
    failed), "retry", "continue", or, for a hedge, its rule and delay
    ("hedge-fixed 2 s", "hedge-p95 0.41 s", "hedge-warmup 2 s", "hedge-floor 0.25 s",
    "hedge-cap 2 s"); empty for a skipped provider.
    """

    provider: str
    outcome: AttemptOutcome
    error: str | None = None
    seconds: float = 0.0
    time_to_first_token: float | None = None
    #: hint options (`temperature`, `top_p`, `seed`, `user`) the provider's model does not take, left out
    dropped: tuple[str, ...] = ()
    #: why the attempt started: "first", "fallback", "retry", "continue" or "hedge-<rule> <delay>"
    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class LLMResponse:
    """A whole reply.

    The first five fields are the legacy `LLMResponse`, in its positional order.
    `cost` is what the reply cost at the serving provider's configured prices
    (`ProviderConfig(input_price=..., output_price=...)`, per million tokens), or
    None when no prices are configured: never an estimate.
    """

    content: str
    model: str
    usage: UsageInfo = field(default_factory=UsageInfo)
    response_time: float = 0.0
    provider: str = "anthropic"
    request_id: str | None = None
    finish_reason: str | None = None
    time_to_first_token: float | None = None
    attempts: tuple[Attempt, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    refusal: str | None = None
    raw_finish_reason: str | None = None
    provider_request_id: str | None = None
    reasoning_parts: tuple[ReasoningPart, ...] = ()
    cost: float | None = None
    #: True when the reply was continued on another provider after its stream broke
    #: (`Configuration(continue_on_interrupt=True)`; the seam is in `attempts`)
    continued: bool = False
    #: the validated value of a call with `response_format` (None without one, or on a refusal)
    parsed: Any = None
    #: the whole exchange of `run_tools` (the caller's turns, each reply and each tool result)
    messages: tuple[Message, ...] = ()

    def to_message(self) -> Message:
        """The assistant `Message` to append to the conversation: reasoning (with the
        provider's signature, sent back only to that provider), text and tool calls."""
        return assistant_message(self.content, self.tool_calls, self.reasoning_parts, self.reasoning)


@final
@dataclass(frozen=True, slots=True)
class Request:
    """A validated, provider-neutral request, as providers receive it.

    `system` holds the system text gathered from system messages and the `system=`
    option; `messages` holds only user, assistant and tool turns. `tools`,
    `tool_choice`, `parallel_tool_calls`, `reasoning_effort` and `cache` (a
    prompt-cache breakpoint after the system text) are the conversation options.
    `temperature`, `top_p`, `seed` and `user` are hints, left out of a body whose model
    does not take them; `stop` is a requirement. `model` and `max_tokens` are None when
    the provider's configured values apply.
    """

    messages: tuple[Message, ...]
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    cache: bool = False
    system_cache: bool = False
    stop: tuple[str, ...] = ()
    top_p: float | None = None
    seed: int | None = None
    user: str | None = None
    #: `extra` fields for one provider (by name) or one kind only, deep-merged into its body
    extra_for: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: HTTP headers for this call's requests only (they win over the provider's own)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    #: the checked `response_format` (sent natively by each wire), or None
    response_format: OutputFormat | None = None
