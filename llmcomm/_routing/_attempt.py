"""One provider trying to serve one call, read up to its first progress.

`run_attempt` reads a provider's batches until one shows progress (text or
reasoning; a closing chunk also ends the wait: a complete reply, maybe empty),
and leaves the provider's iterator open for the consumer. It never raises but a
real cancellation: every failure, whatever the provider raised, becomes the
attempt's `LLMException`. It runs in the race's task group, or straight in the
caller's task when the call cannot be hedged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import final

import anyio
import anyio.lowlevel

from .._errors import LLMException
from .._secrets import detach_foreign_causes
from .._types import Attempt, AttemptOutcome, ChunkBatch, Request, is_progress
from ..providers._base import BaseProvider, attempt_timeout, secret_of, stream_batches
from ..providers._watch import READ_WATCH, ReadWatch, watchable
from ._budget import charge, reading_headers, report
from ._guard import aclose_quietly, contract_error, is_cancellation
from ._outcome import attempt_timed_out
from ._state import Scope, StateBackend

#: the longest a provider may hold the event loop, in loop time (s), before the race
#: yields to it for the provider: deadlines, the hedge and other tasks keep running
#: beside a provider that never awaits
CHECKPOINT_INTERVAL = 0.005


def wins(batch: ChunkBatch) -> bool:
    """Whether a batch ends the wait for a first chunk: progress, or the reply's end."""
    return any(is_progress(chunk) or chunk.finish_reason is not None or chunk.usage is not None for chunk in batch)


@final
class AttemptState:
    """What one attempt did: all times are readings of the race's clock (`anyio.current_time()`)."""

    __slots__ = (
        "batches",
        "charged",
        "deadline",
        "dropped",
        "ended",
        "error",
        "exhausted",
        "fatal",
        "first",
        "first_at",
        "fleet",
        "headers",
        "outcome",
        "provider",
        "reason",
        "scope",
        "started",
        "stopped",
        "store",
        "watch",
    )

    def __init__(self, provider: BaseProvider, reason: str, now: float, *, scoped: bool = True) -> None:
        self.provider = provider
        self.reason = reason
        self.started = now
        self.deadline = now + attempt_timeout(provider)
        #: the attempt's own scope (its timeout, and `stop()`); None when the call's deadline
        #: comes first and nothing else can stop the attempt, so the call's scope suffices
        self.scope = anyio.CancelScope(deadline=self.deadline) if scoped else None
        self.batches: AsyncIterator[ChunkBatch] | None = None
        #: the first batch that showed progress (None with `first_at` set: the reply ended empty)
        self.first: ChunkBatch | None = None
        self.first_at: float | None = None
        self.exhausted = False
        self.outcome: AttemptOutcome | None = None
        self.error: LLMException | None = None
        self.ended: float | None = None
        self.stopped = False
        #: a KeyboardInterrupt or SystemExit the provider raised, for the caller's task to raise
        self.fatal: BaseException | None = None
        #: the call's hint options this provider's model does not take (left out of its body)
        self.dropped: tuple[str, ...] = ()
        #: the state keeping the provider's budgets and its scope there (None: not counted; `_budget`)
        self.store: StateBackend | None = None
        self.fleet: Scope | None = None
        #: tokens charged to the budgets for this attempt, not yet settled
        self.charged = 0
        #: the rate-limit headers of the provider's response
        self.headers: Mapping[str, str] | None = None
        #: the read deadline of its HTTP response, once `send()` attached it (`providers._watch`)
        self.watch: ReadWatch | None = None

    def stop(self, now: float) -> None:
        """Cancel this attempt because the race no longer needs it."""
        if self.outcome is None:
            self.outcome = "cancelled"
            self.ended = now
        self.stopped = True
        if self.scope is not None:
            self.scope.cancel()

    def skip(self, error: LLMException, now: float) -> None:
        """Not sent: the provider has no rate-limit budget left."""
        self.fail(error, now)
        self.outcome = "skipped-rate-limit"

    def fail(self, error: LLMException, now: float) -> None:
        self.outcome = "failed"
        self.error = error
        self.ended = now

    def record(self, now: float) -> Attempt:
        ended = self.ended if self.ended is not None else now
        error = f"{type(self.error).__name__}: {self.error}" if self.error is not None else None
        ttft = self.first_at - self.started if self.first_at is not None else None
        return Attempt(
            self.provider.name,
            self.outcome or "cancelled",
            error,
            ended - self.started,
            ttft,
            self.dropped,
            self.reason,
        )


async def run_attempt(attempt: AttemptState, request: Request, clock: Callable[[], float]) -> None:
    """Read `attempt` to its first progress (see the module docstring); raises only cancellation."""
    provider = attempt.provider
    error: LLMException | None = None
    scope = attempt.scope
    refused = await charge(attempt, request, clock())
    if refused is not None:
        attempt.skip(refused, clock())
        return
    try:
        with reading_headers(attempt):
            if scope is None:
                await _read_to_first(attempt, request, clock)
            else:
                with scope:
                    await _read_to_first(attempt, request, clock)
    except LLMException as exc:
        error = exc
        detach_foreign_causes(exc, (secret_of(provider),))
    except BaseException as exc:
        if is_cancellation(exc):
            raise
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            attempt.fatal = exc  # raised again in the caller's task, never inside a task group
        error = contract_error(provider.name, exc)
    finally:
        if attempt.first_at is None:
            await aclose_quietly(attempt.batches)
    if attempt.stopped:
        report(attempt, clock())
        return
    if error is None and scope is not None and scope.cancelled_caught:
        error = attempt_timed_out(provider.name, attempt.deadline - attempt.started)
    if error is not None:
        error.provider = error.provider or provider.name
        attempt.fail(error, clock())
    report(attempt, clock())


async def _read_to_first(attempt: AttemptState, request: Request, clock: Callable[[], float]) -> None:
    if not watchable(attempt.provider):
        await _read_batches(attempt, request, clock)
        return
    attempt.watch = watch = ReadWatch()
    token = READ_WATCH.set(watch)  # read by `send()` when the first batch is asked for
    try:
        await _read_batches(attempt, request, clock)
    finally:
        READ_WATCH.reset(token)


async def _read_batches(attempt: AttemptState, request: Request, clock: Callable[[], float]) -> None:
    attempt.batches = batches = stream_batches(attempt.provider, request)
    last_yield = attempt.started
    while True:
        try:
            batch = await batches.__anext__()
        except StopAsyncIteration:
            attempt.exhausted = True
            attempt.first_at = clock()
            return
        if wins(batch):
            attempt.first = batch
            attempt.first_at = clock()
            return
        now = clock()
        if now - last_yield >= CHECKPOINT_INTERVAL:
            await anyio.lowlevel.checkpoint()  # a provider that never awaits must not freeze the loop
            last_yield = now
