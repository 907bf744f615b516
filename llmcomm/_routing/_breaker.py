"""Per-provider cooldown: a small circuit breaker on the race's clock, kept by a state backend.

Closed (healthy) -> `failures` consecutive retryable failures (or one
authentication failure) -> open for `cooldown` (or `auth_cooldown`) seconds ->
one call probes it (half-open): success closes it, failure opens it again.

The breaker itself lives in a `StateBackend` (`_state/`): `LocalState` in this
process by default, `RedisState` while a client with `Configuration.shared_state`
is open, so a fleet of processes learns together that a provider is down. It is
keyed by the provider's scope (kind, a hash of base URL and key, model; never the
configured name). What only this process can know stays here: which call holds a
probe, and the events other calls wait on for its outcome.

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
from ..providers._base import BaseProvider, config_of
from ._state import BreakerPolicy, LocalState, Scope, StateBackend

Admission = Literal["closed", "probe"] | None


def scope_of(provider: BaseProvider) -> Scope:
    """The scope `provider`'s breaker and budgets are kept under: its kind and base URL, its
    key's fingerprint and its model (hashed; the configured name is not part of it)."""
    config = config_of(provider)
    if config is not None:
        where = f"{config.kind} {config.base_url or ''}"
        return Scope.of(where, config.api_key, provider.model, rpm=config.rpm, tpm=config.tpm)
    # a user's own provider object has no URL: its class and name say which one it is
    where = f"{type(provider).__module__}.{type(provider).__qualname__} {provider.name}"
    return Scope.of(where, None, provider.model)


@dataclass(slots=True)
class _Probe:
    """This process's part of one scope's breaker: the probe it holds, and who waits for it."""

    probing: bool = False
    last_error: LLMException | None = None
    settled: anyio.Event | None = None
    #: how the last probe ended: its failure, or None (it healed, or was given back unsettled)
    probe_error: LLMException | None = None

    def settle(self, error: LLMException | None = None) -> None:
        self.probing = False
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
    With `Configuration.shared_state` the counts are the fleet's (`state`).
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
        #: where breakers (and budgets) are kept: this process's own until a client shares them
        self.state: StateBackend = LocalState(self.policy)
        self._own = self.state
        self._probes: dict[Scope, _Probe] = {}
        self._scopes: dict[str, Scope] = {}

    def __repr__(self) -> str:
        return (
            f"CooldownTracker(failures={self.failures}, cooldown={self.cooldown}, auth_cooldown={self.auth_cooldown})"
        )

    @property
    def policy(self) -> BreakerPolicy:
        """The breaker rule as the state backends take it."""
        return BreakerPolicy(self.failures, self.cooldown, self.auth_cooldown)

    def use_state(self, state: StateBackend) -> None:
        """Keep breakers (and budgets) in `state` from now on: a client with shared state calls it when it opens."""
        self.state = state

    def leave_state(self, state: StateBackend) -> None:
        """`state` is closing: back to this tracker's own in-process state, unless another took its place."""
        if self.state is state:
            self.state = self._own

    def bind(self, name: str, scope: Scope) -> None:
        """Keep `name`'s breaker under `scope` (routing binds each provider to its scope)."""
        self._scopes[name] = scope

    def _scope(self, name: str) -> Scope:
        scope = self._scopes.get(name)
        if scope is None:  # not bound: a breaker of this process under the name alone
            scope = self._scopes[name] = Scope(endpoint="unbound", model=name)
        return scope

    def _probe(self, scope: Scope) -> _Probe:
        probe = self._probes.get(scope)
        if probe is None:
            probe = self._probes[scope] = _Probe()
        return probe

    def _left(self, name: str) -> tuple[Scope, float | None]:
        scope = self._scope(name)
        return scope, self.state.cooling(scope, self.clock())

    def acquire(self, name: str) -> Admission:
        """Whether `name` may be tried now: "closed" (healthy), "probe" (this call takes
        the half-open probe slot, to be settled by `success`, `failure` or `release`),
        or None (cooling down). Never waits: a shared backend's probe slot is taken by `admit`."""
        scope, left = self._left(name)
        if left is None:
            return "closed"
        probe = self._probe(scope)
        state = self.state
        if probe.probing or left > 0.0:
            return None
        if isinstance(state, LocalState) and not state.try_probe(scope, self.clock()):
            return None
        probe.probing = True
        return "probe"

    async def admit(self, name: str) -> Admission:
        """`acquire`, taking the probe slot fleet-wide when the state is shared (may ask
        Redis, for at most its operation timeout)."""
        scope, left = self._left(name)
        if left is None:
            return "closed"
        probe = self._probe(scope)
        if probe.probing or left > 0.0:
            return None
        if not await self.state.acquire_probe(scope, self.clock()):
            return None
        if self.probing(name):  # another call of this process took it meanwhile
            self.state.release_probe(scope, self.clock())
            return None
        probe.probing = True
        return "probe"

    def earliest(self, names: Iterable[str]) -> str | None:
        """Of `names`, the one whose cooldown ends first (None when `names` is empty)."""
        best: tuple[float, str] | None = None
        for name in names:
            left = self._left(name)[1] or 0.0
            if best is None or left < best[0]:
                best = (left, name)
        return best[1] if best is not None else None

    def force_probe(self, name: str) -> Admission:
        """Take `name`'s probe slot even before its cooldown is over; None while a probe is in flight."""
        scope, left = self._left(name)
        if left is None:
            return "closed"
        probe = self._probe(scope)
        if probe.probing:
            return None
        probe.probing = True
        return "probe"

    def probing(self, name: str) -> bool:
        """Whether a probe of `name` is in flight (in this process)."""
        probe = self._probes.get(self._scope(name))
        return probe is not None and probe.probing

    async def wait_settled(self, name: str) -> LLMException | None:
        """Wait until the probe of `name` in flight has an outcome; its error, or None if it healed."""
        probe = self._probes.get(self._scope(name))
        if probe is None or not probe.probing:
            return None
        if probe.settled is None:
            probe.settled = anyio.Event()
        await probe.settled.wait()
        return probe.probe_error

    def release(self, name: str) -> None:
        """Give back a probe slot that `acquire` took for an attempt that never ran."""
        scope = self._scope(name)
        if (probe := self._probes.get(scope)) is not None and probe.probing:
            self.state.release_probe(scope, self.clock())
            probe.settle()

    def cooling(self, name: str) -> bool:
        """Whether `name` is skipped right now (without taking a probe slot)."""
        left = self._left(name)[1]
        return left is not None and (self.probing(name) or left > 0.0)

    def success(self, name: str) -> None:
        """Record that `name` served a request."""
        scope = self._scope(name)
        self.state.record_success(scope, self.clock())
        if (probe := self._probes.pop(scope, None)) is not None:
            probe.settle()

    def failure(self, name: str, error: LLMException) -> None:
        """Record a failure of `name` (ignored unless it says the provider is unwell)."""
        scope = self._scope(name)
        now = self.clock()
        probe = self._probes.get(scope)
        if isinstance(error, AuthenticationError):
            self.state.record_failure(scope, now, auth=True)
        elif not error.retryable:
            if probe is not None and probe.probing:
                # the probe reached the provider: it answers, if not as wished
                self.state.release_probe(scope, now)
                probe.settle()
            return
        else:
            self.state.record_failure(scope, now)
        probe = probe or self._probe(scope)
        probe.last_error = error
        probe.settle(error)

    def snapshot(self) -> dict[str, float]:
        """Seconds of cooldown left per provider that is cooling down."""
        now = self.clock()
        left = {name: self.state.cooling(scope, now) for name, scope in self._scopes.items()}
        return {name: round(s, 3) for name, s in left.items() if s is not None and s > 0.0}
