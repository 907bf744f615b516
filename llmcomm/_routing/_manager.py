"""The provider manager: the providers of a client, its race policy, and its open calls.

It holds what every call of one `LLMCommunication` shares (the ordered providers,
`fallback_timeout`, `stream_idle_timeout`, the `RetryHandler`, the
`CooldownTracker`, the observer) and the calls still running, so that closing the
client ends each of them. The race itself is per call (`_race.py`, `_call.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import anyio

from .._errors import InvalidRequestError
from .._events import NullObserver, Observer, PerCallObserver
from .._types import Request
from ..providers._base import BaseProvider
from ._background import Background
from ._breaker import CooldownTracker, scope_of
from ._call import Call
from ._hedge import AdaptiveHedge
from ._retry import RetryHandler
from ._state import Scope


@final
class ProviderManager:
    """Serves calls from an ordered set of providers, racing them as DESIGN.md describes.

    `fallback_timeout` and `stream_idle_timeout` are seconds; `retry` and
    `cooldown` are the policies (defaults: `RetryHandler()`, `CooldownTracker()`).
    `hedge` is the adaptive hedge policy (None: the fixed rule, a hedge after
    `fallback_timeout`); `continue_on_interrupt` lets a broken stream go on from a
    provider with the `prefill` capability.
    """

    def __init__(
        self,
        providers: Sequence[BaseProvider],
        *,
        fallback_timeout: float = 2.0,
        stream_idle_timeout: float = 60.0,
        retry: RetryHandler | None = None,
        cooldown: CooldownTracker | None = None,
        observer: Observer | PerCallObserver | None = None,
        hedge: AdaptiveHedge | None = None,
        continue_on_interrupt: bool = False,
        reasoning_fallback_timeout: float = 30.0,
    ) -> None:
        self.providers = tuple(providers)
        self.fallback_timeout = fallback_timeout
        #: how long a call that asks for reasoning may show no progress before the next provider
        #: is raced: reasoning models may stream nothing while they think (DESIGN Part 2)
        self.reasoning_fallback_timeout = reasoning_fallback_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.retry = retry or RetryHandler()
        self.cooldown = cooldown or CooldownTracker()
        self.observer: Observer | PerCallObserver = observer or NullObserver()
        self.hedge = hedge
        self.continue_on_interrupt = continue_on_interrupt
        #: set once the owning client closes: new calls are refused
        self.closed = False
        #: where calls dropped without being closed are closed (set by the owning client)
        self.background: Background | None = None
        self._by_name = {p.name: p for p in self.providers}
        #: each provider's scope in the breaker and budget state (hashes, never its name)
        self._scopes = {p.name: scope_of(p) for p in self.providers}
        for name, scope in self._scopes.items():
            self.cooldown.bind(name, scope)
        self._calls: set[Call] = set()

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.providers)
        return f"ProviderManager([{names}], fallback_timeout={self.fallback_timeout})"

    def scope(self, provider: BaseProvider) -> Scope:
        """`provider`'s scope in the breaker and budget state."""
        scope = self._scopes.get(provider.name)
        return scope if scope is not None else scope_of(provider)

    def select(self, provider: str | None) -> tuple[BaseProvider, ...]:
        """The providers a call may use: all, or the one it names (`InvalidRequestError` if unknown)."""
        if provider is None:
            return self.providers
        if not isinstance(provider, str):
            raise InvalidRequestError(f"provider must be a provider's name (a str), got {type(provider).__name__}")
        try:
            return (self._by_name[provider],)
        except KeyError:
            raise InvalidRequestError(
                f"unknown provider {provider!r}; configured providers are {sorted(self._by_name)}"
            ) from None

    def call(self, request: Request, provider: str | None, timeout: float) -> Call:
        """A new call of `request` (it starts on its first `next_batch()`)."""
        providers = self.select(provider)
        return Call(self, request, providers, timeout, forced=provider is not None and len(self.providers) > 1)

    def register(self, call: Call) -> None:
        """Count `call` as running (it starts), so that `aclose()` ends it."""
        self._calls.add(call)

    def unregister(self, call: Call) -> None:
        """`call` is over."""
        self._calls.discard(call)

    def reap(self, call: Call) -> None:
        """Close `call`, dropped unclosed, in a background task; safe from any thread."""
        if self.background is not None and call.running:
            self.background.start_soon(call.aclose, name="llmcomm close a dropped stream")

    async def aclose(self) -> None:
        """Refuse new calls and end every running one, each with its upstream closed."""
        self.closed = True
        while self._calls:
            calls = list(self._calls)
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    for call in calls:
                        tg.start_soon(call.aclose)
            for call in calls:
                self._calls.discard(call)
