"""The vocabulary of routing state: what a scope is, what a budget answers, the backend protocol.

A *scope* is one provider endpoint as the fleet sees it: a base URL, a key and a model.
It is named by hashes only, so neither the configured provider name nor the key ever
reaches Redis or a log. Times are seconds on the caller's clock (`anyio.current_time()`,
passed in as `now`), so the rules run in virtual time in tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol, final
from urllib.parse import quote

Bucket = Literal["requests", "tokens", "input-tokens", "output-tokens"]
#: every budget a scope may have, in the order the Lua scripts take them
BUCKETS: Final[tuple[Bucket, ...]] = ("requests", "tokens", "input-tokens", "output-tokens")
#: a configured budget may burst this share of its per-minute limit; the refill rate is
#: set so that burst + one minute of refill is the limit: no 60 s window sees more
BURST_SHARE: Final = 0.05
#: the window a per-minute limit is counted over, in seconds
WINDOW: Final = 60.0
#: how long units leased from a shared bucket may wait before they are spent or given back, in seconds
LEASE_TTL: Final = 1.0


def fingerprint(api_key: str | None) -> str:
    """A short one-way hash of `api_key` (16 hex digits); `"nokey"` when there is none."""
    if not api_key:
        return "nokey"
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@final
@dataclass(frozen=True, slots=True)
class Scope:
    """One endpoint's state: base URL + key fingerprint + model, with its configured limits.

    `rpm` and `tpm` are requests and tokens per minute (None: no configured budget;
    the provider's own headers may still lower one). Build it with `Scope.of`.
    """

    endpoint: str
    model: str
    rpm: int | None = None
    tpm: int | None = None

    @classmethod
    def of(
        cls, base_url: str | None, api_key: str | None, model: str, *, rpm: int | None = None, tpm: int | None = None
    ) -> Scope:
        """The scope of a provider reached at `base_url` with `api_key` for `model`.

        Raises ValueError when `rpm` or `tpm` is not a positive number.
        """
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of per minute, got {value}")
        digest = hashlib.sha256(f"{base_url or ''}\n{fingerprint(api_key)}".encode()).hexdigest()[:16]
        return cls(endpoint=digest, model=model, rpm=rpm, tpm=tpm)

    def key(self, kind: Literal["breaker", "budget", "hedge"], what: str) -> str:
        """The Redis key `llmcomm:v1:<kind>:<endpoint hash>:<model>:<what>` (the model percent-encoded)."""
        return f"llmcomm:v1:{kind}:{self.endpoint}:{quote(self.model, safe='-._~/')}:{what}"

    def limit(self, bucket: Bucket) -> int:
        """The configured per-minute limit of `bucket` (0: none)."""
        if bucket == "requests":
            return self.rpm or 0
        if bucket == "tokens":
            return self.tpm or 0
        return 0


def burst(limit: float) -> float:
    """The capacity of a configured bucket of `limit` per minute (at least one unit)."""
    return max(1.0, limit * BURST_SHARE)


def refill_rate(limit: float) -> float:
    """Units per second a bucket of `limit` per minute regains: `burst + rate * (60 + LEASE_TTL) == limit`.

    A unit is spent at most `LEASE_TTL` seconds after it left the bucket, so the units spent in
    any 60 s window left it within 61 s: never more than `limit`.
    """
    return max(limit - burst(limit), 1.0) / (WINDOW + LEASE_TTL)


@final
@dataclass(frozen=True, slots=True)
class Grant:
    """The answer of `StateBackend.take`: granted, or the seconds to wait before asking again."""

    granted: bool
    wait: float = 0.0
    #: the budget that said no ("requests", "tokens", …, or "retry-after"), for `attempts`
    reason: str = ""


@final
@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a scope's breaker opens, in seconds: after `failures` retryable failures in a row
    (fleet-wide with shared state) for `cooldown`, after an authentication failure for
    `auth_cooldown`. One half-open probe at a time holds its slot for at most `probe_lease`."""

    failures: int = 3
    cooldown: float = 30.0
    auth_cooldown: float = 300.0
    probe_lease: float = 30.0


class StateBackend(Protocol):
    """What routing asks of the breaker, budget and hedge state, local or shared.

    Methods without `async` never wait for I/O: they read or update memory, and a shared
    backend writes Redis behind them. `acquire_probe` and `take` may ask Redis, for at
    most its operation timeout, and answer from local state when it does not reply.
    """

    def cooling(self, scope: Scope, now: float) -> float | None:
        """None when `scope`'s breaker is closed; else seconds until a probe may start (0.0: now)."""
        ...

    async def acquire_probe(self, scope: Scope, now: float) -> bool:
        """Take the one half-open probe slot of `scope` (fleet-wide when shared); False when taken or not due."""
        ...

    def release_probe(self, scope: Scope, now: float) -> None:
        """Give back a probe slot whose attempt never ran."""
        ...

    def record_success(self, scope: Scope, now: float) -> None:
        """`scope` served a request: close its breaker."""
        ...

    def record_failure(self, scope: Scope, now: float, *, auth: bool = False) -> None:
        """`scope` failed retryably (or, with `auth`, rejected its key)."""
        ...

    async def take(
        self, scope: Scope, now: float, *, requests: int = 1, input_tokens: int = 0, output_tokens: int = 0
    ) -> Grant:
        """Charge one call's estimate to `scope`'s budgets, or say how long until they allow it."""
        ...

    def settle(self, scope: Scope, now: float, *, estimate: int, actual: int) -> None:
        """Correct the `tokens` budget from the estimate charged by `take` to the real usage."""
        ...

    def report_headers(self, scope: Scope, now: float, headers: Mapping[str, str], *, wall_now: float) -> None:
        """Lower budgets from a response's rate-limit headers; `retry-after` closes `scope` until then.

        `wall_now` is `time.time()`, to read Anthropic's absolute reset times.
        """
        ...

    def record_ttft(self, scope: Scope, seconds: float) -> None:
        """Add a time-to-first-token sample (seconds) to `scope`'s bounded window."""
        ...

    def ttft_samples(self, scope: Scope) -> tuple[float, ...]:
        """The recent time-to-first-token samples of `scope`, newest first."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (a shared backend stops its connection thread)."""
        ...
