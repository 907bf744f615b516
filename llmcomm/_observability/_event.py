"""What a sink is told about a call: one `Event` at a time, and the call's `CallState`.

An event is plain data, one class per `Observer` method, holding what the routing
layer reported with the provider and model it concerns already worked out (the
request's own model, else the provider's configured one). `CallState` is what is
kept about one call between its events; the call holds it (through its observer),
so it is freed with the call and never shared with another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, final

from .._errors import LLMException
from .._types import LLMResponse, Request

if TYPE_CHECKING:
    from ._otel import CallSpan

#: the provider or model of a call that has none yet
NONE: Final = "none"


@final
@dataclass(frozen=True, slots=True)
class RequestStart:
    """A call began; `providers` is the order it will try."""

    name: ClassVar[str] = "request_start"
    providers: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True)
class AttemptStart:
    """An attempt began: `reason` is "first", "fallback", "hedge" or "retry"."""

    name: ClassVar[str] = "attempt_start"
    provider: str
    model: str
    reason: str


@final
@dataclass(frozen=True, slots=True)
class FirstToken:
    """The winning attempt produced its first content, `seconds` after the call began."""

    name: ClassVar[str] = "first_token"
    provider: str
    model: str
    seconds: float


@final
@dataclass(frozen=True, slots=True)
class Retry:
    """`provider` failed with a retryable `error` and is tried again after `delay` s."""

    name: ClassVar[str] = "retry"
    provider: str
    model: str
    error: LLMException
    delay: float


@final
@dataclass(frozen=True, slots=True)
class Fallback:
    """The call moves on from `provider` to `to_provider` for `reason`."""

    name: ClassVar[str] = "fallback"
    provider: str
    model: str
    to_provider: str
    reason: str


@final
@dataclass(frozen=True, slots=True)
class RequestEnd:
    """The call finished with `response`, served by `provider`."""

    name: ClassVar[str] = "request_end"
    provider: str
    model: str
    response: LLMResponse


@final
@dataclass(frozen=True, slots=True)
class RequestError:
    """The call failed with `error` after `seconds`; `provider` is the last one tried."""

    name: ClassVar[str] = "request_error"
    provider: str
    model: str
    error: LLMException
    seconds: float


@final
@dataclass(frozen=True, slots=True)
class RequestCancelled:
    """The call was closed or cancelled after `seconds`, before it finished or failed."""

    name: ClassVar[str] = "request_cancelled"
    provider: str
    model: str
    seconds: float


Event = RequestStart | AttemptStart | FirstToken | Retry | Fallback | RequestEnd | RequestError | RequestCancelled


@final
class Catalog:
    """What observability knows of each configured provider, by name: its kind and its model."""

    __slots__ = ("kinds", "models")

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.models: dict[str, str] = {}

    def learn(self, providers: Iterable[Any]) -> None:
        """Note each provider's kind and configured model."""
        for provider in providers:
            self.kinds[provider.name] = str(getattr(provider, "kind", provider.name))
            self.models[provider.name] = str(getattr(provider, "model", "") or NONE)


@final
class CallState:
    """What is kept about one call: its request, its attempts so far, the provider
    last tried (the first to try, before any attempt), and its span when spans are on."""

    __slots__ = ("_catalog", "attempts", "provider", "request", "span")

    def __init__(self, request: Request, catalog: Catalog) -> None:
        self.request = request
        self._catalog = catalog
        self.provider = NONE
        self.attempts = 0
        self.span: CallSpan | None = None

    def model_of(self, provider: str) -> str:
        """The model this call asks of `provider`: the request's own, else the configured one."""
        return self.request.model or self._catalog.models.get(provider, NONE)

    def kind_of(self, provider: str) -> str:
        """`provider`'s kind ("anthropic", "openai", …), or its name when unknown."""
        return self._catalog.kinds.get(provider, provider)


class Sink(Protocol):
    """Where events go: metrics, logging, OpenTelemetry, hooks, the user's observer.

    Each sink translates an event in its own module. It may raise: the fan-out logs
    the error, and the other sinks and the call go on.
    """

    def handle(self, call: CallState, event: Event) -> None:
        """Take `event`, which happened to `call`."""
