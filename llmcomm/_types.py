"""Plain, closed data: messages, chunks, usage, responses and the normalised request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, final

Role = Literal["system", "user", "assistant"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant"))

AttemptOutcome = Literal["won", "failed", "cancelled", "skipped-cooldown"]


@final
@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation.

    Wherever llmcomm takes a list of messages it also accepts dicts
    (`{"role": ..., "content": ...}`) and any object with `.role` and `.content`.
    """

    role: Role
    content: str
    name: str | None = None


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@final
@dataclass(frozen=True, slots=True, eq=False)
class UsageInfo(Mapping[str, int]):
    """Token counts reported by the provider.

    Reads like the legacy usage dict as well: `usage["prompt_tokens"]`,
    `usage.get("total_tokens")` and `dict(usage)` all work.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> UsageInfo:
        """Usage whose total is the sum of the two counts."""
        return cls(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)

    def __getitem__(self, key: str) -> int:
        if key in _USAGE_KEYS:
            value: int = getattr(self, key)
            return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_USAGE_KEYS)

    def __len__(self) -> int:
        return len(_USAGE_KEYS)

    def __eq__(self, other: object) -> bool:
        # Equal to any mapping with the same counts, as the legacy usage dict was.
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.prompt_tokens, self.completion_tokens, self.total_tokens))


@final
@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed reply.

    `text` is empty only on the closing chunk, which carries `finish_reason` and,
    when the provider reports it, `usage`.
    """

    text: str
    provider: str
    model: str
    index: int = 0
    finish_reason: str | None = None
    usage: UsageInfo | None = None


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
    chunk.__class__ = StreamChunk  # type: ignore[assignment]
    return chunk  # type: ignore[return-value]


@final
@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one provider while serving one call."""

    provider: str
    outcome: AttemptOutcome
    error: str | None = None
    seconds: float = 0.0
    time_to_first_token: float | None = None


@final
@dataclass(frozen=True, slots=True)
class LLMResponse:
    """A whole reply.

    The first five fields are the legacy `LLMResponse`, in its positional order.
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


@final
@dataclass(frozen=True, slots=True)
class Request:
    """A validated, provider-neutral request, as providers receive it.

    `system` holds the system text gathered from system messages and the `system=`
    option; `messages` holds only user and assistant turns. `model` and
    `max_tokens` are None when the provider's configured values apply.
    """

    messages: tuple[Message, ...]
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
