"""Per-provider cooldown: a small circuit breaker on the race's clock.

Closed (healthy) -> `failures` consecutive retryable failures (or one
authentication failure) -> open for `cooldown` (or `auth_cooldown`) seconds ->
one call probes it (half-open): success closes it, failure opens it again.

A call never fails merely because every provider is cooling down: the race then
probes the provider whose cooldown ends first (`earliest`, `force_probe`), one
probe per provider at a time, and concurrent calls wait for that probe's outcome
(`wait_settled`) within their own deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, final

import anyio

from .._errors import AuthenticationError, LLMException


@dataclass(slots=True)
class _BreakerState:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    last_error: LLMException | None = None
    settled: anyio.Event | None = None
    #: how the last probe ended: its failure, or None (it healed, or was given back unsettled)
    probe_error: LLMException | None = None

    def settle(self, error: LLMException | None = None) -> None:
        self.probe_error = error
        if self.settled is not None:
            self.settled.set()
            self.settled = None


@final
class CooldownTracker:
    """Skips a provider for a while after it keeps failing.

    `failures` consecutive retryable failures open the breaker for `cooldown`
    seconds; an authentication failure opens it for `auth_cooldown` seconds. When
    that time is over one call probes the provider (half-open): success closes the
    breaker, failure opens it again at once. Cancellations and invalid requests
    never count. Times are read from `clock` (default `anyio.current_time`, the
    clock of the race, so the breaker runs in virtual time under a mock clock); one
    tracker serves the clients of one event loop. Pass one to
    `Configuration(cooldown=...)` to tune a client, or to share it between clients.
    """

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 30.0,
        auth_cooldown: float = 300.0,
        *,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.auth_cooldown = auth_cooldown
        self.clock = clock
        self._states: dict[str, _BreakerState] = {}

    def __repr__(self) -> str:
        return (
            f"CooldownTracker(failures={self.failures}, cooldown={self.cooldown}, auth_cooldown={self.auth_cooldown})"
        )

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

    def earliest(self, names: Iterable[str]) -> str | None:
        """Of `names`, the one whose cooldown ends first (None when `names` is empty)."""
        best: tuple[float, str] | None = None
        for name in names:
            state = self._states.get(name)
            until = state.open_until if state is not None else 0.0
            if best is None or until < best[0]:
                best = (until, name)
        return best[1] if best is not None else None

    def force_probe(self, name: str) -> Literal["closed", "probe"] | None:
        """Take `name`'s probe slot even before its cooldown is over; None while a probe is in flight."""
        state = self._states.get(name)
        if state is None or state.open_until == 0.0:
            return "closed"
        if state.probing:
            return None
        state.probing = True
        return "probe"

    def probing(self, name: str) -> bool:
        """Whether a probe of `name` is in flight."""
        state = self._states.get(name)
        return state is not None and state.probing

    async def wait_settled(self, name: str) -> LLMException | None:
        """Wait until the probe of `name` in flight has an outcome; its error, or None if it healed."""
        state = self._states.get(name)
        if state is None or not state.probing:
            return None
        if state.settled is None:
            state.settled = anyio.Event()
        await state.settled.wait()
        return state.probe_error

    def release(self, name: str) -> None:
        """Give back a probe slot that `acquire` took for an attempt that never ran."""
        if (state := self._states.get(name)) is not None:
            state.probing = False
            state.settle()

    def cooling(self, name: str) -> bool:
        """Whether `name` is skipped right now (without taking a probe slot)."""
        state = self._states.get(name)
        return state is not None and state.open_until != 0.0 and (state.probing or self.clock() < state.open_until)

    def success(self, name: str) -> None:
        """Record that `name` served a request."""
        state = self._states.pop(name, None)
        if state is not None:
            state.settle()

    def failure(self, name: str, error: LLMException) -> None:
        """Record a failure of `name` (ignored unless it says the provider is unwell)."""
        if isinstance(error, AuthenticationError):
            state = self._states.setdefault(name, _BreakerState())
            state.open_until, state.probing, state.last_error = self.clock() + self.auth_cooldown, False, error
            state.settle(error)
            return
        if not error.retryable:
            if (state_ := self._states.get(name)) is not None and state_.probing:
                state_.probing = False  # the probe reached the provider: it answers, if not as wished
                state_.settle()
            return
        state = self._states.setdefault(name, _BreakerState())
        state.failures += 1
        state.last_error = error
        if state.probing or state.failures >= self.failures:
            state.open_until, state.probing = self.clock() + self.cooldown, False
        state.settle(error)

    def snapshot(self) -> dict[str, float]:
        """Seconds of cooldown left per provider that is cooling down."""
        now = self.clock()
        return {n: round(s.open_until - now, 3) for n, s in self._states.items() if s.open_until > now}
