"""The race of one call, from its start to its first progress (DESIGN Part 1, steps 1-6).

    t=0      P1 starts
    P1 fails before its first progress           -> the next untried provider starts at once
    no progress from anyone for the hedge delay  -> the next provider starts too (a hedge): fallback_timeout,
                                                    or the running provider's p95 under `AdaptiveHedge`
    first progress                               -> that attempt wins; every other is cancelled
                                                    and its connection or process closed
    every provider failed, some retryably        -> back off (Retry-After honoured) and go again

Everything runs in the caller's task, inside the call's deadline: the attempts in a
task group entered and exited here, or, when the plan has one provider and so
nothing to hedge, straight in the caller's task with no task group at all. Every
time is an `anyio.current_time()` reading, so the rules run in virtual time.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from .._capabilities import skip_unsupported
from .._errors import (
    AllProvidersFailedError,
    InvalidRequestError,
    LLMException,
    ProviderUnavailableError,
    RateLimitError,
)
from .._events import REJECTED
from .._types import Attempt
from .._wire._options import request_dropped
from ..providers._base import BaseProvider, attempt_timeout
from ._attempt import AttemptState, run_attempt
from ._guard import aclose_quietly, notify
from ._hedge import AdaptiveHedge

if TYPE_CHECKING:
    from ._call import Call
    from ._manager import ProviderManager


async def race(manager: ProviderManager, call: Call) -> AttemptState:
    """The winning attempt, its iterator still open; raises the call's `LLMException`."""
    pending = await _plan(manager, call)
    if len(pending) == 1:
        return await _alone(manager, call, pending[0])
    winner: AttemptState | None = None
    failure: LLMException | None = None
    served = False
    try:
        async with anyio.create_task_group() as tg:
            # Nothing may be raised out of a task group body (it would come out wrapped in
            # an ExceptionGroup): the failure is kept and raised once the group is closed.
            try:
                winner = await _race_in(manager, call, pending, tg)
            except LLMException as exc:
                failure = exc
            finally:
                now = call.clock()
                for attempt in call.attempts:
                    if attempt is not winner and attempt.outcome is None:
                        attempt.stop(now)
        for attempt in call.attempts:
            if attempt.fatal is not None:
                raise attempt.fatal
        if failure is not None:
            raise failure
        assert winner is not None
        served = True
        return winner
    finally:
        for attempt in call.attempts:  # ready a moment too late, or the race itself was cancelled
            if (attempt is not winner or not served) and attempt.first_at is not None and not attempt.exhausted:
                await aclose_quietly(attempt.batches)


def release_probes(call: Call) -> None:
    """Give back the probe slots the plan took whose attempt never settled them (cancelled, or never run)."""
    for name in call.probes:
        if not any(a.provider.name == name and a.outcome in ("won", "failed") for a in call.attempts):
            call.manager.cooldown.release(name)
    call.probes.clear()


async def _plan(manager: ProviderManager, call: Call) -> deque[BaseProvider]:
    """The providers to try, in order: those that can serve the call (capabilities),
    skipping those cooling down (never all of them)."""
    providers = skip_unsupported(call.request, call.providers, call.skipped)
    if call.forced:
        return deque(providers)  # forced with provider=: the caller's choice beats cooldown
    cooldown = manager.cooldown
    while True:
        order: deque[BaseProvider] = deque()
        for provider in providers:
            taken = await cooldown.admit(provider.name)
            if taken == "probe":
                call.probes.append(provider.name)
            if taken is not None:
                order.append(provider)
        if not order:
            # Every provider is cooling down: probe the one whose cooldown ends first
            # rather than fail without sending anything.
            name = cooldown.earliest(p.name for p in providers)
            assert name is not None
            taken = cooldown.force_probe(name)
            if taken == "probe":
                call.probes.append(name)
            if taken is not None:
                order.append(next(p for p in providers if p.name == name))
            else:  # another call is probing it: its outcome decides, within this call's deadline
                error = await cooldown.wait_settled(name)
                if error is not None:
                    raise ProviderUnavailableError(
                        f"every provider is cooling down and a probe of {name!r} just failed ({error.message}); "
                        "try again later, or fix the providers",
                        provider=name,
                        status_code=error.status_code,
                        request_id=call.request.request_id,
                    ) from error
                continue
        chosen = set(map(id, order))
        call.skipped += [Attempt(p.name, "skipped-cooldown") for p in providers if id(p) not in chosen]
        return order


def _launch(
    manager: ProviderManager, call: Call, provider: BaseProvider, reason: str, *, alone: bool = False
) -> AttemptState:
    now = call.clock()
    # Alone in the caller's task, an attempt is stopped only by its own timeout: when the
    # call's deadline comes first, the call's scope is all it needs.
    scoped = not alone or now + attempt_timeout(provider) < call.deadline
    attempt = AttemptState(provider, reason, now, scoped=scoped)
    request = call.request
    attempt.dropped = request_dropped(request, getattr(provider, "kind", None), request.model or provider.model)
    attempt.store, attempt.fleet = manager.cooldown.state, manager.scope(provider)  # its budgets: `_budget`
    call.attempts.append(attempt)
    kind = "hedge" if reason.startswith("hedge") else reason  # the observer's four kinds
    notify(call.observer.attempt_start, call.request, provider.name, provider.model, kind)
    return attempt


def _failed(manager: ProviderManager, call: Call, attempt: AttemptState) -> LLMException:
    error = attempt.error
    assert error is not None
    call.errors.append(error)
    if attempt.outcome != "skipped-rate-limit":  # not sent: says nothing of the provider's health
        manager.cooldown.failure(attempt.provider.name, error)
    return error


async def _alone(manager: ProviderManager, call: Call, provider: BaseProvider) -> AttemptState:
    """The lean path: one provider, attempts one after another in the caller's task."""
    reason = "first"
    retries = 0
    while True:
        attempt = _launch(manager, call, provider, reason, alone=True)
        await run_attempt(attempt, call.request, call.clock)
        if attempt.fatal is not None:
            raise attempt.fatal
        if attempt.error is None:
            _observe(manager.hedge, call, attempt, [])
            return attempt
        error = _failed(manager, call, attempt)
        delay, _ = _next_round(manager, call, [attempt], retries, error)
        await anyio.sleep(delay)
        retries += 1
        reason = "retry"


async def _race_in(manager: ProviderManager, call: Call, pending: deque[BaseProvider], tg: TaskGroup) -> AttemptState:
    reports: deque[AttemptState] = deque()
    wake = [anyio.Event()]
    running: list[AttemptState] = []
    round_failures: list[AttemptState] = []
    retries = 0
    fallback_timeout = manager.fallback_timeout
    policy = manager.hedge
    hedged: list[tuple[AttemptState, float]] = []  # attempts a hedge was started beside, and when
    hedge_reason = ""
    if policy is not None:
        policy.budget.call(call.clock())

    async def run(attempt: AttemptState) -> None:
        await run_attempt(attempt, call.request, call.clock)
        if not attempt.stopped:
            reports.append(attempt)
            wake[0].set()

    effort = call.request.reasoning_effort
    # A call that asks for reasoning may stream nothing while the model thinks.
    thinking = max(manager.reasoning_fallback_timeout, fallback_timeout) if effort not in (None, "none") else 0.0

    def launch(provider: BaseProvider, reason: str) -> float:
        nonlocal hedge_reason
        attempt = _launch(manager, call, provider, reason)
        running.append(attempt)
        tg.start_soon(run, attempt, name=f"llmcomm attempt {provider.name} {call.request.request_id}")
        if thinking:
            delay, hedge_reason = thinking, f"hedge-reasoning {thinking:g} s"
        elif policy is None:
            delay, hedge_reason = fallback_timeout, f"hedge-fixed {fallback_timeout:g} s"
        else:
            delay, hedge_reason = policy.delay(_key(call, provider), fallback_timeout, attempt.started)
        return attempt.started + delay

    hedge_at = launch(pending.popleft(), "first")
    while True:
        if not reports:
            # No attempt can report between this check and the wait: tasks run only when we yield.
            wake[0] = event = anyio.Event()
            with anyio.CancelScope(deadline=hedge_at if pending else math.inf):
                await event.wait()
            if not reports:
                now = call.clock()
                if pending and now >= hedge_at:
                    if policy is not None and not policy.budget.spend(now):
                        hedge_at = math.inf  # budget spent: wait for a reply or a failure (logged once)
                        continue
                    nxt = pending.popleft()
                    hedged += [(a, now) for a in running if all(a is not h for h, _ in hedged)]
                    notify(
                        call.observer.fallback,
                        call.request,
                        running[-1].provider.name if running else nxt.name,
                        nxt.name,
                        f"{hedge_reason} (no first token yet)",
                    )
                    hedge_at = launch(nxt, hedge_reason)
                continue
        attempt = reports.popleft()
        running.remove(attempt)
        if attempt.fatal is not None:  # the caller's task raises it once the group is closed
            raise LLMException("a provider raised a fatal exception", provider=attempt.provider.name)
        if attempt.error is None:
            _observe(policy, call, attempt, hedged)
            return attempt
        error = _failed(manager, call, attempt)
        round_failures.append(attempt)
        if pending:
            nxt = pending.popleft()
            notify(call.observer.fallback, call.request, attempt.provider.name, nxt.name, fallback_reason(error))
            hedge_at = launch(nxt, "fallback")
            continue
        if running:
            continue
        delay, again = _next_round(manager, call, round_failures, retries, error)
        await anyio.sleep(delay)
        retries += 1
        round_failures.clear()
        pending = deque(a.provider for a in again)
        hedge_at = launch(pending.popleft(), "retry")


def _key(call: Call, provider: BaseProvider) -> tuple[str, str]:
    return provider.name, call.request.model or provider.model


def _observe(
    policy: AdaptiveHedge | None, call: Call, winner: AttemptState, hedged: list[tuple[AttemptState, float]]
) -> None:
    """Feed the hedge statistics: the winner's time to first progress, and, for each attempt that
    was hedged and is still silent, how long it had been silent when the hedge started.

    That is a lower bound of its own time, which keeps the slow tail in the window (without it
    the p95 would sink to the fast replies and every slow call would be hedged twice over);
    it is not the time it waited until the winner came, which would feed the backup's speed
    back into the primary's p95 and ratchet it up to `fallback_timeout`.
    """
    if policy is None or winner.first_at is None:
        return
    policy.observe(_key(call, winner.provider), winner.first_at - winner.started, winner.first_at)
    for attempt, hedged_at in hedged:
        if attempt is not winner and attempt.first_at is None and attempt.error is None:
            policy.observe(_key(call, attempt.provider), hedged_at - attempt.started, winner.first_at)


def _next_round(
    manager: ProviderManager, call: Call, failures: list[AttemptState], retries: int, last: LLMException
) -> tuple[float, list[AttemptState]]:
    """The wait before retrying the retryable ones of `failures`; raises the call's error when none may be."""
    again = [a for a in failures if a.error is not None and a.error.retryable]
    if again and all(a.outcome == "skipped-rate-limit" for a in again):
        call.budget_waits += 1  # a wait for budget sent nothing: it is no retry
        return _budget_wait(manager, call, again, last), again
    first = again[0].error if again else None
    retries -= call.budget_waits
    if first is None or not manager.retry.should_retry(first, retries):
        raise final_error(call)
    delay = manager.retry.delay(retries, first)
    if delay >= call.deadline - call.clock():
        raise final_error(call)
    notify(call.observer.retry, call.request, again[0].provider.name, last, delay)
    return delay, again


def _budget_wait(manager: ProviderManager, call: Call, skipped: list[AttemptState], last: LLMException) -> float:
    """Every provider is out of rate-limit budget: the wait until the first has room, within the
    call's deadline (not a retry: it sent nothing); `RateLimitError` saying when, past the deadline."""
    waits = [a.error.retry_after or 0.0 for a in skipped if a.error is not None]
    wait = max(min(waits), 0.001)
    left = call.deadline - call.clock()
    if wait >= left:
        raise RateLimitError(
            f"every provider is out of its rate-limit budget; the first has room again in {wait:.3g} s, "
            f"after this call's deadline ({max(left, 0.0):.3g} s left); try again then, raise the call's timeout, "
            "or raise rpm/tpm if the providers allow more",
            provider=skipped[0].provider.name,
            request_id=call.request.request_id,
            retry_after=wait,
        )
    notify(call.observer.retry, call.request, skipped[0].provider.name, last, wait)
    return wait


def final_error(call: Call) -> LLMException:
    """The error of a call that no provider served: its own when one provider was tried."""
    tried = {a.provider.name for a in call.attempts}
    if len(tried) == 1:
        return call.errors[-1]
    return AllProvidersFailedError(call.errors, request_id=call.request.request_id)


def fallback_reason(error: LLMException) -> str:
    """Why the race moved on: the error's class, and for a rejected request the provider's own words.

    A request one provider rejects (a 400 for a field only another kind takes, say)
    and another then serves is a doomed request paid on every call: the observer logs
    such a fallback at WARNING, with the provider's message.
    """
    if isinstance(error, InvalidRequestError):
        status = f" (HTTP {error.status_code})" if error.status_code else ""
        return f"{REJECTED}{status}: {error.message}"
    return type(error).__name__
