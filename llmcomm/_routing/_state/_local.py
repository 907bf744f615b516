"""In-process routing state: the default backend, and the local mirror of the shared one.

Small synchronous state machines on the caller's clock (`now`, seconds): a circuit
breaker per scope, token buckets per scope and budget, a bounded window of
time-to-first-token samples. Nothing here does I/O or reads a clock itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, final

from ._headers import read_headers
from ._types import BUCKETS, BreakerPolicy, Bucket, Grant, Scope, burst, refill_rate

#: units a bucket may lack and still grant: float rounding after waiting exactly the wait it said
_EPSILON: Final = 1e-9
#: time-to-first-token samples kept per scope
TTFT_WINDOW: Final = 200


@dataclass(slots=True)
class BreakerState:
    """One scope's breaker: failures in a row, open until (0: closed), probe slot held until (0: free)."""

    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0


@dataclass(slots=True)
class BucketState:
    """One budget: its level at `stamp`, and a header ceiling of `ceiling` units until `ceiling_until`."""

    level: float | None = None
    stamp: float = 0.0
    ceiling: float = 0.0
    ceiling_until: float = 0.0


@dataclass(slots=True)
class BudgetState:
    """A scope's budgets, and the end of a `retry-after` closing."""

    buckets: dict[Bucket, BucketState] = field(default_factory=lambda: {b: BucketState() for b in BUCKETS})
    blocked_until: float = 0.0


@final
class LocalState:
    """Routing state of this process alone (implements `StateBackend`).

    `policy` sets when breakers open. Reads and updates are synchronous and cost a dict
    lookup; the async methods never suspend.
    """

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._breakers: dict[Scope, BreakerState] = {}
        self._budgets: dict[Scope, BudgetState] = {}
        self._ttft: dict[Scope, deque[float]] = {}

    # -- breaker ----------------------------------------------------------------------
    def cooling(self, scope: Scope, now: float) -> float | None:
        state = self._breakers.get(scope)
        if state is None or state.open_until == 0.0:
            return None
        if state.probe_until > now:
            return state.probe_until - now
        return max(0.0, state.open_until - now)

    def try_probe(self, scope: Scope, now: float) -> bool:
        """The synchronous half of `acquire_probe`."""
        state = self._breakers.get(scope)
        if state is None or state.open_until == 0.0 or state.open_until > now or state.probe_until > now:
            return False
        state.probe_until = now + self.policy.probe_lease
        return True

    async def acquire_probe(self, scope: Scope, now: float) -> bool:
        return self.try_probe(scope, now)

    def release_probe(self, scope: Scope, now: float) -> None:
        if (state := self._breakers.get(scope)) is not None:
            state.probe_until = 0.0

    def record_success(self, scope: Scope, now: float) -> None:
        self._breakers.pop(scope, None)

    def record_failure(self, scope: Scope, now: float, *, auth: bool = False) -> None:
        state = self._breakers.setdefault(scope, BreakerState())
        if auth:
            state.open_until, state.probe_until = now + self.policy.auth_cooldown, 0.0
            return
        state.failures += 1
        if state.probe_until > 0.0 or state.failures >= self.policy.failures:
            state.open_until, state.probe_until = now + self.policy.cooldown, 0.0

    def set_breaker(self, scope: Scope, now: float, failures: int, open_in: float | None, probe_in: float) -> None:
        """Adopt the fleet's view of `scope`'s breaker: seconds from `now` until it may be probed
        (None: closed) and until the probe slot is free (0: free)."""
        if open_in is None and failures == 0:
            self._breakers.pop(scope, None)
            return
        state = self._breakers.setdefault(scope, BreakerState())
        state.failures = failures
        state.open_until = 0.0 if open_in is None else (now + open_in) or 1e-9  # 0.0 means closed
        state.probe_until = now + probe_in if probe_in > 0.0 else 0.0

    # -- budgets ----------------------------------------------------------------------
    def check(
        self, scope: Scope, now: float, *, requests: int = 1, input_tokens: int = 0, output_tokens: int = 0
    ) -> Grant:
        """The synchronous half of `take`: charge when every budget allows it."""
        budget = self._budgets.get(scope)
        if budget is None:
            if not (scope.rpm or scope.tpm):
                return Grant(True)  # no configured budget and no header seen: nothing to count
            budget = self._budgets[scope] = BudgetState()
        if budget.blocked_until > now:
            return Grant(False, budget.blocked_until - now, "retry-after")
        wants = _wants(requests, input_tokens, output_tokens)
        wait, reason = 0.0, ""
        for bucket, n in wants.items():
            state, limit = budget.buckets[bucket], scope.limit(bucket)
            if limit:
                _refill(state, limit, now)
                need = min(n, burst(limit))  # a call bigger than the burst goes when the bucket is full
                if (
                    state.level is not None
                    and state.level < need - _EPSILON
                    and (w := (need - state.level) / refill_rate(limit)) > wait
                ):
                    wait, reason = w, bucket
            if n and state.ceiling_until > now and state.ceiling < n and state.ceiling_until - now > wait:
                wait, reason = state.ceiling_until - now, bucket
        if wait > 0.0:
            return Grant(False, wait, reason)
        self.charge(scope, now, wants)
        return Grant(True)

    def limited(self, scope: Scope, now: float) -> bool:
        """Whether a header ceiling or a retry-after closing holds `scope` now."""
        budget = self._budgets.get(scope)
        if budget is None:
            return False
        return budget.blocked_until > now or any(b.ceiling_until > now for b in budget.buckets.values())

    async def take(
        self, scope: Scope, now: float, *, requests: int = 1, input_tokens: int = 0, output_tokens: int = 0
    ) -> Grant:
        return self.check(scope, now, requests=requests, input_tokens=input_tokens, output_tokens=output_tokens)

    def charge(self, scope: Scope, now: float, wants: Mapping[Bucket, int]) -> None:
        """Take `wants` from `scope`'s budgets without asking (a negative count gives back)."""
        budget = self._budgets.setdefault(scope, BudgetState())
        for bucket, n in wants.items():
            state, limit = budget.buckets[bucket], scope.limit(bucket)
            if limit:
                _refill(state, limit, now)
                state.level = min(burst(limit), (state.level or 0.0) - n)
            if state.ceiling_until > now and n > 0:
                state.ceiling = max(0.0, state.ceiling - n)

    def settle(self, scope: Scope, now: float, *, estimate: int, actual: int) -> None:
        if actual != estimate and (scope in self._budgets or scope.tpm):
            self.charge(scope, now, {"tokens": actual - estimate})

    def report_headers(self, scope: Scope, now: float, headers: Mapping[str, str], *, wall_now: float) -> None:
        report = read_headers(headers, wall_now)
        if not report.ceilings and report.retry_after is None:
            return
        for bucket, ceiling in report.ceilings.items():
            self.lower(scope, now, bucket, ceiling.remaining, ceiling.reset)
        if report.retry_after is not None:
            self.block(scope, now, report.retry_after)

    def lower(self, scope: Scope, now: float, bucket: Bucket, remaining: float, reset: float) -> None:
        """At most `remaining` of `bucket` for `reset` seconds; an active lower ceiling stays."""
        state = self._budgets.setdefault(scope, BudgetState()).buckets[bucket]
        if state.ceiling_until > now and state.ceiling <= remaining:
            return
        state.ceiling, state.ceiling_until = remaining, now + reset

    def block(self, scope: Scope, now: float, seconds: float) -> None:
        """Close `scope` for `seconds` (a `retry-after`); a later end already set stays."""
        budget = self._budgets.setdefault(scope, BudgetState())
        budget.blocked_until = max(budget.blocked_until, now + seconds)

    # -- hedge statistics -------------------------------------------------------------
    def record_ttft(self, scope: Scope, seconds: float) -> None:
        self._ttft.setdefault(scope, deque(maxlen=TTFT_WINDOW)).appendleft(seconds)

    def set_ttft(self, scope: Scope, samples: tuple[float, ...]) -> None:
        """Adopt the fleet's samples of `scope` (newest first)."""
        self._ttft[scope] = deque(samples[:TTFT_WINDOW], maxlen=TTFT_WINDOW)

    def ttft_samples(self, scope: Scope) -> tuple[float, ...]:
        return tuple(self._ttft.get(scope, ()))

    async def aclose(self) -> None:
        return None


def _wants(requests: int, input_tokens: int, output_tokens: int) -> dict[Bucket, int]:
    return {
        "requests": requests,
        "tokens": input_tokens + output_tokens,
        "input-tokens": input_tokens,
        "output-tokens": output_tokens,
    }


def _refill(state: BucketState, limit: int, now: float) -> None:
    if state.level is None:
        state.level, state.stamp = burst(limit), now
        return
    state.level = min(burst(limit), state.level + max(0.0, now - state.stamp) * refill_rate(limit))
    state.stamp = now
