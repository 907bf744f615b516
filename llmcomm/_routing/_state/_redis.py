"""Routing state shared by a fleet of processes through Redis.

Reads come from a local mirror (`LocalState`) and never wait; updates go to the mirror
at once and to Redis behind it, through the link's private thread (handing an update over
costs microseconds; nothing waits for Redis). A background round every `refresh` seconds
brings the fleet's breakers, retry-after closings, header ceilings and hedge samples into
the mirror. Budgets are leased: `take` spends units this process already took from the
fleet's bucket and tops the lease up behind the call, so it asks Redis and waits only
when the lease is empty, or on every call while a header ceiling or a retry-after holds
the scope. `acquire_probe` (one probe slot fleet-wide) always asks. Every wait is bounded
by the operation timeout; when Redis fails they answer from the mirror (fail open).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final, final

import anyio

from ._headers import read_headers
from ._lease import Lease, lease_sizes
from ._link import Op, RedisLink, Reply, run_script
from ._local import TTFT_WINDOW, LocalState
from ._lua import (
    BREAKER_FAILURE,
    BREAKER_PROBE,
    BREAKER_RELEASE,
    BREAKER_SEED,
    BREAKER_STATE,
    BREAKER_SUCCESS,
    BUDGET_REPORT,
    BUDGET_STATE,
    BUDGET_TAKE,
    HEDGE_PUSH,
    Script,
)
from ._types import BUCKETS, BreakerPolicy, Bucket, Grant, Scope, burst, refill_rate

#: how long a budget key outlives its last use, in seconds (a minute's window and a margin)
BUDGET_TTL: Final = 120.0
#: how long hedge samples outlive the last one, in seconds
HEDGE_TTL: Final = 3600.0
_SHORT: Final[dict[str, Bucket]] = {"r": "requests", "t": "tokens", "i": "input-tokens", "o": "output-tokens"}


@final
class RedisState:
    """`StateBackend` on Redis at `url`, with the local mirror as the answer when Redis fails.

    `timeout` bounds every Redis operation (seconds); after a failure Redis is bypassed
    for `bypass` seconds. Call `aclose()` (or `close()`) to stop the connection thread.
    """

    def __init__(
        self,
        url: str,
        policy: BreakerPolicy | None = None,
        *,
        timeout: float = 0.05,
        bypass: float = 3.0,
        refresh: float = 0.2,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self.local = LocalState(self.policy)
        self.link = RedisLink(
            url, timeout=timeout, bypass=bypass, refresh_interval=refresh, refresher=self._refresh_ops
        )
        self._inbox: deque[tuple[float, Callable[[float], None]]] = deque()
        self._scopes: dict[Scope, None] = {}
        self._scope_list: tuple[Scope, ...] = ()
        self._leases: dict[Scope, Lease] = {}

    def __repr__(self) -> str:
        return f"RedisState({self.link!r})"

    # -- breaker ----------------------------------------------------------------------
    def cooling(self, scope: Scope, now: float) -> float | None:
        self._see(scope, now)
        return self.local.cooling(scope, now)

    async def acquire_probe(self, scope: Scope, now: float) -> bool:
        self._see(scope, now)
        if self.local.cooling(scope, now) is None:
            return False
        ms = self.policy.probe_lease * 1000, self.policy.cooldown * 1000
        key = scope.key("breaker", "state")
        reply = await self.link.call(partial(run_script, script=BREAKER_PROBE, keys=[key], args=ms), key)
        if reply is None:
            return self.local.try_probe(scope, now)
        self._set_breaker(scope, reply, now)
        return int(reply[0]) == 1

    def release_probe(self, scope: Scope, now: float) -> None:
        self.local.release_probe(scope, now)
        self._post(scope, BREAKER_RELEASE, "breaker", [], self._set_breaker)

    def record_success(self, scope: Scope, now: float) -> None:
        self._drain(now)
        if scope not in self.local._breakers:
            return  # no failure known here or (as of the last refresh) in the fleet: nothing to close
        self.local.record_success(scope, now)
        self._post(scope, BREAKER_SUCCESS, "breaker", [self.policy.cooldown * 1000], self._set_breaker)

    def record_failure(self, scope: Scope, now: float, *, auth: bool = False) -> None:
        self._see(scope, now)
        self.local.record_failure(scope, now, auth=auth)
        p = self.policy
        args = [p.failures, p.cooldown * 1000, "1" if auth else "0", p.auth_cooldown * 1000]
        self._post(scope, BREAKER_FAILURE, "breaker", args, self._set_breaker)

    # -- budgets ----------------------------------------------------------------------
    async def take(
        self, scope: Scope, now: float, *, requests: int = 1, input_tokens: int = 0, output_tokens: int = 0
    ) -> Grant:
        self._see(scope, now)
        wants: dict[Bucket, int] = {"requests": requests, "tokens": input_tokens + output_tokens}
        wants |= {"input-tokens": input_tokens, "output-tokens": output_tokens}
        limited = self.local.limited(scope, now)
        if not (scope.rpm or scope.tpm or limited):
            return Grant(True)  # nothing counted for this scope anywhere: no round trip
        sizes: dict[Bucket, int] = {}
        if not limited:  # a header ceiling or a retry-after: every call asks Redis
            lease = self._leases.setdefault(scope, Lease())
            if lease.until <= now and lease.units:
                self._give_back(scope, lease)
            sizes = lease_sizes(scope, wants)
            if lease.covers(scope, wants, now):
                lease.spend(scope, wants)
                self.local.charge(scope, now, wants)
                self._top_up(scope, lease, sizes)
                return Grant(True)
        key = scope.key("budget", "buckets")
        args = _take_args(scope, wants, force=False, extra=sizes)
        reply = await self.link.call(partial(run_script, script=BUDGET_TAKE, keys=[key], args=args), key)
        if reply is None:
            return self.local.check(
                scope, now, requests=requests, input_tokens=input_tokens, output_tokens=output_tokens
            )
        if int(reply[0]) == 1:
            self.local.charge(scope, now, wants)  # the mirror counts too, for when Redis fails
            if sizes:
                self._leases[scope].add(_leased(reply), now)
            return Grant(True)
        reason = _text(reply[2])
        return Grant(False, float(reply[1]) / 1000, _SHORT.get(reason, reason))

    def _top_up(self, scope: Scope, lease: Lease, sizes: dict[Bucket, int]) -> None:
        """Lease more behind the caller when the lease runs low (one request at a time)."""
        if lease.topping or not lease.low(sizes):
            return
        key = scope.key("budget", "buckets")
        args = _take_args(scope, {}, force=False, extra=sizes)
        future = self.link.submit(partial(run_script, script=BUDGET_TAKE, keys=[key], args=args), key)
        if future is None:
            return
        lease.topping = True

        def landed(reply: Reply | None, now: float) -> None:
            lease.topping = False
            if reply is not None and int(reply[0]) == 1:
                lease.add(_leased(reply), now)

        future.add_done_callback(
            lambda f: self._inbox.append(
                (time.monotonic(), partial(landed, None if f.cancelled() or f.exception() else f.result()))
            )
        )

    def _give_back(self, scope: Scope, lease: Lease) -> None:
        """Return what an expired lease still holds to the fleet's bucket."""
        left = lease.take_back()
        if any(left.values()):
            args = _take_args(scope, {b: -round(n) for b, n in left.items()}, force=True)
            self._post(scope, BUDGET_TAKE, "budget", args, None)

    def settle(self, scope: Scope, now: float, *, estimate: int, actual: int) -> None:
        self.local.settle(scope, now, estimate=estimate, actual=actual)
        if actual != estimate and (scope.tpm or self.local.limited(scope, now)):
            args = _take_args(scope, {"tokens": actual - estimate}, force=True)
            self._post(scope, BUDGET_TAKE, "budget", args, None)

    def report_headers(self, scope: Scope, now: float, headers: Mapping[str, str], *, wall_now: float) -> None:
        report = read_headers(headers, wall_now)
        if not report.ceilings and report.retry_after is None:
            return
        self._see(scope, now)
        self.local.report_headers(scope, now, headers, wall_now=wall_now)
        args: list[str | int | float] = [
            BUDGET_TTL * 1000,
            -1 if report.retry_after is None else report.retry_after * 1000,
        ]
        for bucket in BUCKETS:
            ceiling = report.ceilings.get(bucket)
            args += [-1, 0] if ceiling is None else [ceiling.remaining, ceiling.reset * 1000]
        self._post(scope, BUDGET_REPORT, "budget", args, None)

    # -- hedge statistics -------------------------------------------------------------
    def record_ttft(self, scope: Scope, seconds: float) -> None:
        self._know(scope)
        self.local.record_ttft(scope, seconds)
        self._post(scope, HEDGE_PUSH, "hedge", [round(seconds * 1000, 3), TTFT_WINDOW, HEDGE_TTL * 1000], None)

    def ttft_samples(self, scope: Scope) -> tuple[float, ...]:
        self._know(scope)
        self._drain()
        return self.local.ttft_samples(scope)

    def start(self) -> None:
        """Start connecting to Redis behind the caller's back (a client's open would call this)."""
        self.link.submit(_noop)

    async def connect(self, timeout: float = 2.0) -> bool:
        """Wait up to `timeout` seconds until Redis answers; whether it did. Until then every
        operation answers from this process's own state."""
        return await self.link.connect(timeout)

    async def flush(self) -> None:
        """Wait until every update sent so far has reached Redis (or failed), and adopt the answers."""
        await self.link.wait_pending()
        self._drain(anyio.current_time())

    async def refresh(self, *scopes: Scope) -> None:
        """Bring the fleet's state of `scopes` and every scope seen so far into the mirror now
        (the background does it every `refresh` seconds)."""
        for scope in scopes:
            self._know(scope)
        for key, op in self._refresh_ops():
            await self.link.call(op, key)
            if not self.link.available:
                break
        self._drain(anyio.current_time())

    async def aclose(self) -> None:
        await self.link.wait_pending()  # updates already made still reach the fleet
        await anyio.to_thread.run_sync(self.link.close)

    def close(self) -> None:
        """Stop the connection thread (blocking; `aclose` from async code)."""
        self.link.close()

    # -- plumbing ---------------------------------------------------------------------
    def _see(self, scope: Scope, now: float) -> None:
        self._know(scope)
        self._drain(now)

    def _know(self, scope: Scope) -> None:
        if scope not in self._scopes:
            self._scopes[scope] = None
            self._scope_list = tuple(self._scopes)  # the Redis thread reads this, never the dict
            for key, op in self._scope_ops(scope):  # learn what the fleet knows, behind this call
                self.link.submit(op, key)

    def _drain(self, now: float | None = None) -> None:
        """Apply what Redis answered since the last call, on the caller's clock."""
        if now is None:
            now = anyio.current_time()
        while self._inbox:
            stamp, apply = self._inbox.popleft()
            apply(now - (time.monotonic() - stamp))

    def _post(
        self,
        scope: Scope,
        script: Script,
        kind: str,
        args: Sequence[str | int | float],
        apply: Callable[[Scope, Reply, float], None] | None,
    ) -> None:
        key = {"breaker": scope.key("breaker", "state"), "budget": scope.key("budget", "buckets")}.get(kind)
        key = key or scope.key("hedge", "ttft")
        future = self.link.submit(partial(run_script, script=script, keys=[key], args=args), key)
        if future is not None and apply is not None:
            future.add_done_callback(lambda f: self._deliver(f, partial(apply, scope)))

    def _deliver(self, future: Any, apply: Callable[[Reply, float], None]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._inbox.append((time.monotonic(), partial(_later, apply, future.result())))

    def _set_breaker(self, scope: Scope, reply: Reply, now: float) -> None:
        open_in = float(reply[2])
        lost = len(reply) > 4 and int(reply[4]) == 0
        if lost and (left := self.local.cooling(scope, now)) is not None and left > 0:
            # Redis lost an open breaker this process knows (restarted, flushed): put it back
            known = self.local._breakers[scope]
            args = [known.failures, (known.open_until - now) * 1000, self.policy.cooldown * 1000]
            self._post(scope, BREAKER_SEED, "breaker", args, None)
            return
        self.local.set_breaker(
            scope, now, int(reply[1]), None if open_in < 0 else open_in / 1000, float(reply[3]) / 1000
        )

    def _set_budget(self, scope: Scope, reply: Reply, now: float) -> None:
        if (blocked := float(reply[0]) / 1000) > 0:
            self.local.block(scope, now, blocked)
        for index, bucket in enumerate(BUCKETS):
            remaining, left = float(reply[1 + 2 * index]), float(reply[2 + 2 * index]) / 1000
            if left > 0:
                self.local.lower(scope, now, bucket, remaining, left)

    def _set_ttft(self, scope: Scope, reply: Reply, now: float) -> None:
        self.local.set_ttft(scope, tuple(float(sample) / 1000 for sample in reply))

    def _refresh_ops(self) -> list[tuple[str, Op[None]]]:
        return [op for scope in self._scope_list for op in self._scope_ops(scope)]

    def _scope_ops(self, scope: Scope) -> list[tuple[str, Op[None]]]:
        breaker, budget, hedge = (
            scope.key("breaker", "state"),
            scope.key("budget", "buckets"),
            scope.key("hedge", "ttft"),
        )
        return [
            (breaker, self._reading(scope, BREAKER_STATE, breaker, [], self._set_breaker)),
            (budget, self._reading(scope, BUDGET_STATE, budget, [BUDGET_TTL * 1000], self._set_budget)),
            (hedge, self._lrange(scope)),
        ]

    def _reading(
        self,
        scope: Scope,
        script: Script,
        key: str,
        args: list[str | int | float],
        apply: Callable[[Scope, Reply, float], None],
    ) -> Op[None]:
        async def read(client: Any) -> None:
            reply = await run_script(client, script, [key], args)
            self._inbox.append((time.monotonic(), partial(_later, partial(apply, scope), reply)))

        return read

    def _lrange(self, scope: Scope) -> Op[None]:
        async def read(client: Any) -> None:
            reply = await client.lrange(scope.key("hedge", "ttft"), 0, -1)
            if reply:
                self._inbox.append((time.monotonic(), partial(_later, partial(self._set_ttft, scope), reply)))

        return read


async def _noop(client: Any) -> None:
    return None


def _later(apply: Callable[[Reply, float], None], reply: Reply, now: float) -> None:
    apply(reply, now)


def _leased(reply: Reply) -> dict[Bucket, float]:
    return {bucket: float(reply[3 + index]) for index, bucket in enumerate(BUCKETS)}


def _take_args(
    scope: Scope, wants: Mapping[Bucket, int], *, force: bool, extra: Mapping[Bucket, int] | None = None
) -> list[str | int | float]:
    args: list[str | int | float] = [BUDGET_TTL * 1000, "1" if force else "0"]
    for bucket in BUCKETS:
        limit = scope.limit(bucket)
        args += [burst(limit) if limit else 0, refill_rate(limit) / 1000 if limit else 0, wants.get(bucket, 0)]
        args.append((extra or {}).get(bucket, 0))
    return args


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
