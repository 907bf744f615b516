"""Retry policy and per-provider cooldown (a small circuit breaker).

Both are plain objects with injectable randomness and clocks, so their
behaviour is tested in microseconds, and `ProviderManager` is their one user.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, final

from ._errors import AuthenticationError, LLMException


@final
class RetryHandler:
    """Exponential backoff with full jitter that honours `Retry-After`.

    Retry `n` (0-based) waits a random time in `[0, min(max_delay, base_delay * 2**n)]`,
    unless the provider asked for a delay: then exactly that. Only errors marked
    `retryable` are retried, and at most `max_retries` times.
    """

    def __init__(
        self,
        max_retries: int = 2,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        *,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._uniform = rng

    def __repr__(self) -> str:
        return f"RetryHandler(max_retries={self.max_retries}, base_delay={self.base_delay}, max_delay={self.max_delay})"

    def should_retry(self, error: LLMException, retries_done: int) -> bool:
        """Whether `error` may be retried after `retries_done` retries."""
        return error.retryable and retries_done < self.max_retries

    def delay(self, retries_done: int, error: LLMException | None = None) -> float:
        """Seconds to wait before the next retry."""
        if error is not None and error.retry_after is not None:
            return float(error.retry_after)
        return self._uniform(0.0, min(self.max_delay, self.base_delay * 2**retries_done))


@dataclass(slots=True)
class _BreakerState:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


@final
class CooldownTracker:
    """Skips a provider for a while after it keeps failing.

    `failures` consecutive retryable failures open the breaker for `cooldown`
    seconds; an authentication failure opens it for `auth_cooldown`. When that time
    is over one call probes the provider (half-open): success closes the breaker,
    failure opens it again at once. Cancellations and invalid requests never count.
    """

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 30.0,
        auth_cooldown: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.auth_cooldown = auth_cooldown
        self.clock = clock
        self._states: dict[str, _BreakerState] = {}

    def acquire(self, name: str) -> Literal["closed", "probe"] | None:
        """Whether `name` may be tried now: "closed" (healthy), "probe" (this call takes
        the half-open probe slot, to be settled by `success`, `failure` or `release`),
        or None (cooling down)."""
        state = self._states.get(name)
        if state is None or state.open_until == 0.0:
            return "closed"
        if state.probing or self.clock() < state.open_until:
            return None
        state.probing = True
        return "probe"

    def release(self, name: str) -> None:
        """Give back a probe slot that `acquire` took for an attempt that never ran."""
        if (state := self._states.get(name)) is not None:
            state.probing = False

    def cooling(self, name: str) -> bool:
        """Whether `name` is skipped right now (without taking a probe slot)."""
        state = self._states.get(name)
        return state is not None and state.open_until != 0.0 and (state.probing or self.clock() < state.open_until)

    def success(self, name: str) -> None:
        """Record that `name` served a request."""
        self._states.pop(name, None)

    def failure(self, name: str, error: LLMException) -> None:
        """Record a failure of `name` (ignored unless it says the provider is unwell)."""
        if isinstance(error, AuthenticationError):
            state = self._states.setdefault(name, _BreakerState())
            state.open_until, state.probing = self.clock() + self.auth_cooldown, False
            return
        if not error.retryable:
            return
        state = self._states.setdefault(name, _BreakerState())
        state.failures += 1
        if state.probing or state.failures >= self.failures:
            state.open_until, state.probing = self.clock() + self.cooldown, False

    def snapshot(self) -> dict[str, float]:
        """Seconds of cooldown left per provider that is cooling down."""
        now = self.clock()
        return {n: round(s.open_until - now, 3) for n, s in self._states.items() if s.open_until > now}
