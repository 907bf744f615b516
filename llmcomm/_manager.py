"""The provider manager: order, fallback race, retries, deadlines and cooldown.

One call runs as one *race task* in the task group that `LLMCommunication` owns.
The race task starts attempts (one task each, in a task group of its own) and
reads their reports from an inbox:

    t=0      P1 starts
    P1 fails before its first content      -> P2 starts at once
    no content from anyone for fallback_timeout  -> the next provider starts too (a hedge)
    first non-empty content                 -> that attempt wins; every other is cancelled
    after that                              -> the winner streams straight to the consumer;
                                               silence longer than stream_idle_timeout or a
                                               failure ends it with StreamInterruptedError
    every provider failed, some retryably   -> back off (Retry-After honoured) and go again

Chunks reach the consumer through a memory object stream, so the consumer holds
no task group or cancel scope and may be closed from any task (see `LLMStream`).
They travel in batches, the chunks one network read decoded (`ChunkBatch`): one
hand-off per read rather than per token, and the consumer still sees one chunk
at a time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from contextlib import aclosing
from typing import final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._capabilities import skip_unsupported
from ._errors import (
    AllProvidersFailedError,
    InvalidRequestError,
    LLMException,
    LLMTimeoutError,
    ProviderUnavailableError,
    StreamInterruptedError,
)
from ._events import NullObserver, Observer
from ._messages import assemble
from ._retry import CooldownTracker, RetryHandler
from ._types import Attempt, AttemptOutcome, ChunkBatch, LLMResponse, Request, StreamChunk, UsageInfo, is_progress
from .providers._base import BaseProvider, stream_batches

#: batches (each the chunks of one network read) the winner may run ahead of a slow consumer
STREAM_BUFFER = 16

_Report = tuple["_Attempt", ChunkBatch | LLMException | None]


@final
class _Attempt:
    """One provider trying to serve one call."""

    __slots__ = (
        "blocked",
        "chunks",
        "closing",
        "decided",
        "ended",
        "error",
        "last_progress",
        "outcome",
        "parts",
        "provider",
        "reason",
        "scope",
        "started",
        "stopped_by_manager",
        "time_to_first_token",
        "won",
    )

    def __init__(self, provider: BaseProvider, reason: str, started: float, deadline: float) -> None:
        self.provider = provider
        self.reason = reason
        self.started = started
        self.ended: float | None = None
        self.outcome: AttemptOutcome | None = None
        self.error: LLMException | None = None
        self.time_to_first_token: float | None = None
        self.scope = anyio.CancelScope(deadline=deadline)
        self.decided = anyio.Event()
        self.won = False
        self.stopped_by_manager = False
        self.blocked = False
        self.parts: list[str] = []
        self.chunks: list[StreamChunk] = []  # for what the reply holds besides text (assemble)
        self.closing: StreamChunk | None = None
        self.last_progress = started

    def stop(self, outcome: AttemptOutcome) -> None:
        """Cancel this attempt (from the race task)."""
        if self.outcome is None:
            self.outcome = outcome
            self.ended = time.monotonic()
        self.stopped_by_manager = True
        self.scope.cancel()

    def record(self) -> Attempt:
        ended = self.ended if self.ended is not None else time.monotonic()
        error = f"{type(self.error).__name__}: {self.error}" if self.error is not None else None
        return Attempt(
            self.provider.name, self.outcome or "cancelled", error, ended - self.started, self.time_to_first_token
        )


@final
class Call:
    """One call's state, shared by its race task and the `LLMStream` that reads it."""

    def __init__(self, request: Request, providers: Sequence[BaseProvider], timeout: float) -> None:
        self.request = request
        self.providers = tuple(providers)
        self.timeout = timeout
        self.started = time.monotonic()
        self.send, self.receive = anyio.create_memory_object_stream[ChunkBatch](STREAM_BUFFER)
        self.scope: anyio.CancelScope | None = None
        self.cancel_requested = False
        self.done = anyio.Event()
        self.error: LLMException | None = None
        self.response: LLMResponse | None = None
        self.attempts: list[_Attempt] = []
        self.skipped: list[Attempt] = []
        self.probes: list[str] = []

    def cancel(self) -> None:
        """Stop the call; safe from any task of the event loop."""
        self.cancel_requested = True
        if self.scope is not None:
            self.scope.cancel()

    def attempt_records(self) -> tuple[Attempt, ...]:
        return (*self.skipped, *(a.record() for a in self.attempts))


@final
class ProviderManager:
    """Serves calls from an ordered set of providers, racing them as DESIGN.md describes."""

    def __init__(
        self,
        providers: Sequence[BaseProvider],
        *,
        fallback_timeout: float = 2.0,
        stream_idle_timeout: float = 60.0,
        retry: RetryHandler | None = None,
        cooldown: CooldownTracker | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.providers = tuple(providers)
        self.fallback_timeout = fallback_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.retry = retry or RetryHandler()
        self.cooldown = cooldown or CooldownTracker()
        self.observer: Observer = observer or NullObserver()
        self._by_name = {p.name: p for p in self.providers}

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.providers)
        return f"ProviderManager([{names}], fallback_timeout={self.fallback_timeout})"

    def select(self, provider: str | None) -> tuple[BaseProvider, ...]:
        """The providers a call may use: all, or the one it names."""
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

    def start(self, task_group: TaskGroup, call: Call) -> None:
        """Run `call`'s race in `task_group` (the one its `LLMCommunication` owns)."""
        task_group.start_soon(self._run, call, name=f"llmcomm race {call.request.request_id}")

    async def _run(self, call: Call) -> None:
        request = call.request
        self.observer.request_start(request, tuple(p.name for p in call.providers))
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + call.timeout) as scope:
                call.scope = scope
                if call.cancel_requested:
                    scope.cancel()
                await self._race(call)
            if scope.cancelled_caught and not call.cancel_requested and call.response is None:
                call.error = LLMTimeoutError(
                    f"no complete reply within the call's timeout of {call.timeout:g} s; "
                    "raise timeout= or LLM_TIMEOUT, or check the providers",
                    request_id=request.request_id,
                    provider=self._winner_name(call),
                )
        except LLMException as exc:
            call.error = exc
        except Exception as exc:  # a bug must never take down the client's task group
            call.error = LLMException(f"internal error in the provider manager: {exc!r}; please report it")
            call.error.__cause__ = exc
        finally:
            for name in call.probes:  # a probe slot not settled by a success or failure is given back
                self.cooldown.release(name)
            for attempt in call.attempts:
                if attempt.outcome is None:
                    attempt.outcome = "cancelled"
                    attempt.ended = time.monotonic()
            if call.error is not None:
                call.error.request_id = call.error.request_id or request.request_id
                if call.response is None:
                    self.observer.request_error(request, call.error, time.monotonic() - call.started)
            elif call.response is None:
                call.error = LLMException("the call was closed before it finished", request_id=request.request_id)
                self.observer.request_cancelled(request, time.monotonic() - call.started)
            call.send.close()
            call.done.set()

    @staticmethod
    def _winner_name(call: Call) -> str | None:
        return next((a.provider.name for a in call.attempts if a.won), None)

    def _plan(self, call: Call) -> deque[BaseProvider]:
        providers = skip_unsupported(call.request, call.providers, call.skipped)  # capability planning
        if len(call.providers) == 1 and len(self.providers) > 1:
            return deque(providers)  # forced with provider=: the caller's choice beats cooldown
        order: deque[BaseProvider] = deque()
        for provider in providers:
            taken = self.cooldown.acquire(provider.name)
            if taken == "probe":
                call.probes.append(provider.name)
            if taken is not None:
                order.append(provider)
            else:
                call.skipped.append(Attempt(provider.name, "skipped-cooldown"))
        if not order:
            left = self.cooldown.snapshot()
            raise ProviderUnavailableError(
                f"every provider is cooling down after repeated failures (seconds left: {left}); "
                "try again then, or fix the providers",
                request_id=call.request.request_id,
            )
        return order

    async def _race(self, call: Call) -> None:
        pending = self._plan(call)
        inbox_send, inbox = anyio.create_memory_object_stream[_Report](math.inf)
        failure: LLMException | None = None
        with inbox_send, inbox:
            async with anyio.create_task_group() as tg:
                # Nothing may be raised out of a task group body (trio would wrap it in an
                # ExceptionGroup): the failure is kept and raised once the group is closed.
                try:
                    await self._race_in(call, pending, tg, inbox_send, inbox)
                except LLMException as exc:
                    failure = exc
                    tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _race_in(
        self,
        call: Call,
        pending: deque[BaseProvider],
        tg: TaskGroup,
        inbox_send: MemoryObjectSendStream[_Report],
        inbox: MemoryObjectReceiveStream[_Report],
    ) -> None:
        running: list[_Attempt] = []
        errors: list[LLMException] = []
        round_failures: list[_Attempt] = []
        retries = 0

        def launch(provider: BaseProvider, reason: str) -> float:
            now = time.monotonic()
            limit = getattr(getattr(provider, "config", None), "timeout", math.inf)
            attempt = _Attempt(provider, reason, now, anyio.current_time() + limit)
            call.attempts.append(attempt)
            running.append(attempt)
            self.observer.attempt_start(call.request, provider.name, provider.model, reason)
            tg.start_soon(self._attempt, call, attempt, inbox_send)
            return now + self.fallback_timeout

        hedge_at = launch(pending.popleft(), "first")
        while True:
            wait = hedge_at - time.monotonic() if pending else math.inf
            report: _Report | None = None
            with anyio.move_on_after(max(wait, 0.0)):
                report = await inbox.receive()
            if report is None:  # no first content within fallback_timeout: race the next
                nxt = pending.popleft()
                self.observer.fallback(
                    call.request,
                    running[-1].provider.name,
                    nxt.name,
                    f"no first token within {self.fallback_timeout:g} s",
                )
                hedge_at = launch(nxt, "hedge")
                continue
            attempt, event = report
            if not isinstance(event, LLMException):
                break  # first content (or a complete empty reply): the winner
            running.remove(attempt)
            errors.append(event)
            round_failures.append(attempt)
            if pending:
                nxt = pending.popleft()
                self.observer.fallback(call.request, attempt.provider.name, nxt.name, type(event).__name__)
                hedge_at = launch(nxt, "fallback")
                continue
            if running:
                continue
            again = [a for a in round_failures if a.error is not None and a.error.retryable]
            first_error = again[0].error if again else None
            if first_error is None or not self.retry.should_retry(first_error, retries):
                raise self._final_error(call, errors)
            delay = self.retry.delay(retries, first_error)
            deadline_left = (call.scope.deadline if call.scope else math.inf) - anyio.current_time()
            if delay >= deadline_left:
                raise self._final_error(call, errors)
            self.observer.retry(call.request, again[0].provider.name, event, delay)
            await anyio.sleep(delay)
            retries += 1
            round_failures.clear()
            pending = deque(a.provider for a in again)
            hedge_at = launch(pending.popleft(), "retry")

        await self._serve_winner(call, attempt, event, running, inbox)

    async def _serve_winner(
        self,
        call: Call,
        winner: _Attempt,
        first: ChunkBatch | None,
        running: list[_Attempt],
        inbox: MemoryObjectReceiveStream[_Report],
    ) -> None:
        winner.won = True
        winner.outcome = "won"
        for other in running:
            if other is not winner:
                other.stop("cancelled")
        self.cooldown.success(winner.provider.name)
        now = time.monotonic()
        winner.time_to_first_token = now - winner.started
        self.observer.first_token(call.request, winner.provider.name, winner.provider.model, now - call.started)
        if first is not None:
            winner.last_progress = now
            _remember(winner, first)
            await _deliver(call, winner, first)
        winner.decided.set()
        finished = first is None
        while not finished:
            idle_left = self.stream_idle_timeout - (time.monotonic() - winner.last_progress)
            if winner.blocked:
                idle_left = self.stream_idle_timeout  # a slow consumer is not a silent provider
            if idle_left <= 0:
                winner.stop("failed")
                raise StreamInterruptedError(
                    f"no content for {self.stream_idle_timeout:g} s after the stream started; "
                    "the partial reply is in partial_text, try again",
                    provider=winner.provider.name,
                    partial_text="".join(winner.parts),
                    request_id=call.request.request_id,
                )
            with anyio.move_on_after(idle_left):
                attempt, event = await inbox.receive()
                if attempt is not winner:
                    continue
                if isinstance(event, LLMException):
                    winner.outcome = "failed"
                    winner.error = event
                    raise StreamInterruptedError(
                        f"the stream broke after it started: {event}; the partial reply is in partial_text",
                        provider=winner.provider.name,
                        status_code=event.status_code,
                        partial_text="".join(winner.parts),
                        request_id=call.request.request_id,
                        retryable=event.retryable,
                    ) from event
                finished = True
        winner.ended = time.monotonic()
        closing = winner.closing
        call.response = LLMResponse(
            content="".join(winner.parts),
            model=closing.model if closing else winner.provider.model,
            usage=(closing.usage if closing and closing.usage else UsageInfo()),
            response_time=winner.ended - call.started,
            provider=winner.provider.name,
            request_id=call.request.request_id,
            finish_reason=closing.finish_reason if closing else None,
            time_to_first_token=(winner.started - call.started) + (winner.time_to_first_token or 0.0),
            attempts=call.attempt_records(),
            **assemble(winner.chunks).response_fields(),
        )
        self.observer.request_end(call.request, call.response)

    async def _attempt(self, call: Call, attempt: _Attempt, inbox: MemoryObjectSendStream[_Report]) -> None:
        report: ChunkBatch | LLMException | None = None
        send_nowait = call.send.send_nowait
        monotonic = time.monotonic
        with attempt.scope:
            try:
                async with aclosing(stream_batches(attempt.provider, call.request)) as batches:  # type: ignore[type-var]
                    async for batch in batches:
                        if attempt.won:
                            # The per-read path, inlined: remember the text, hand the batch over
                            # without a coroutine while the buffer has room (`_deliver` otherwise).
                            attempt.last_progress = monotonic()
                            _remember(attempt, batch)
                            try:
                                send_nowait(batch)
                            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                                await _deliver(call, attempt, batch)
                        elif any(is_progress(c) or c.finish_reason is not None or c.usage is not None for c in batch):
                            inbox.send_nowait((attempt, batch))
                            await attempt.decided.wait()  # only a winner gets past this
                report = None
            except LLMException as exc:
                report = exc
            except Exception as exc:  # a user's provider broke its contract: still no raw error for the caller
                report = ProviderUnavailableError(
                    f"provider raised {type(exc).__name__}: {exc}; fix the provider", provider=attempt.provider.name
                )
                report.__cause__ = exc
        if attempt.scope.cancelled_caught and not attempt.stopped_by_manager:
            report = ProviderUnavailableError(
                "the attempt took longer than the provider's timeout; raise ProviderConfig.timeout",
                provider=attempt.provider.name,
            )
        if attempt.stopped_by_manager:
            return
        if isinstance(report, LLMException):
            attempt.outcome = "failed"
            attempt.error = report
            attempt.ended = time.monotonic()
            if not attempt.won:
                self.cooldown.failure(attempt.provider.name, report)
        inbox.send_nowait((attempt, report))

    def _final_error(self, call: Call, errors: list[LLMException]) -> LLMException:
        tried = {a.provider.name for a in call.attempts}
        if len(tried) == 1:
            return errors[-1]
        return AllProvidersFailedError(errors, request_id=call.request.request_id)


def _remember(attempt: _Attempt, batch: ChunkBatch) -> None:
    if batch:
        attempt.parts += [chunk.text for chunk in batch]
        attempt.chunks += batch
        if not is_progress(batch[-1]):  # the closing chunk is always a stream's last
            attempt.closing = batch[-1]


async def _deliver(call: Call, attempt: _Attempt, batch: ChunkBatch) -> None:
    try:
        call.send.send_nowait(batch)
    except anyio.WouldBlock:
        attempt.blocked = True
        try:
            await call.send.send(batch)
        finally:
            attempt.blocked = False
            attempt.last_progress = time.monotonic()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        call.cancel()  # the consumer is gone: stop reading upstream
