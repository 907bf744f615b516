"""One call: its race, then the winner's stream, read in the consumer's own task.

    new ──next_batch()──► racing ──first progress──► serving ──end / error / close──► done

The race runs inside the first `next_batch()` (see `_race.py`). After it, the
winner's iterator belongs to the consumer: each `next_batch()` awaits the
provider's next batch (the chunks of one network read) under one deadline, the
nearest of the idle watchdog (`stream_idle_timeout` from now), the call's
deadline and the winner's per-attempt timeout. On llmcomm's own HTTP client
that deadline is kept by the network read, which enters a cancel scope only when
it waits (`providers._watch`: most events come from a buffer); elsewhere a
cancel scope surrounds the batch. No task, no buffer and no cancel scope lives
between two `next_batch()` calls, so the call may be read, broken out of and
closed from any task. A close from another task cancels the scope (or read
watch) the reader is in, if any, and waits for it; otherwise it closes the
provider's iterator itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, final

import anyio
import anyio.lowlevel

from .._errors import LLMException, ProviderUnavailableError
from .._events import call_observer
from .._observability._context import _request_id
from .._secrets import detach_foreign_causes
from .._types import Attempt, ChunkBatch, LLMResponse, Request, StreamChunk
from ..providers._base import BaseProvider, secret_of
from ..providers._watch import ReadStopped, ReadWatch
from ._attempt import CHECKPOINT_INTERVAL, AttemptState
from ._budget import settle
from ._continue import stream_broke, stream_stopped
from ._guard import CLOSE_GRACE, aclose_quietly, contract_error, is_cancellation, notify, race_clock
from ._outcome import call_timeout, cancelled_error, closed_error, served_response
from ._race import race, release_probes

if TYPE_CHECKING:
    from ._manager import ProviderManager

_NEW: Final = 0
_RACING: Final = 1
_SERVING: Final = 2
_DONE: Final = 3


@final
class Call:
    """The state of one call, shared by its reader and whoever closes it."""

    __slots__ = (
        "__weakref__",
        "attempts",
        "budget_waits",
        "cancel_requested",
        "chunks",
        "clock",
        "closing",
        "continued",
        "deadline",
        "done",
        "error",
        "errors",
        "forced",
        "hard_deadline",
        "last_yield",
        "manager",
        "observer",
        "pending_first",
        "probes",
        "providers",
        "request",
        "response",
        "scope",
        "skipped",
        "started",
        "state",
        "tail_error",
        "timeout",
        "winner",
    )

    def __init__(
        self,
        manager: ProviderManager,
        request: Request,
        providers: Sequence[BaseProvider],
        timeout: float,
        *,
        forced: bool = False,
    ) -> None:
        self.manager = manager
        self.request = request
        self.observer = call_observer(manager.observer, request)
        self.providers = tuple(providers)
        self.timeout = timeout
        self.forced = forced
        self.state = _NEW
        #: the race's one clock: `anyio.current_time`, resolved when the call starts
        self.clock: Callable[[], float] = anyio.current_time
        self.started = self.deadline = self.hard_deadline = self.last_yield = 0.0
        #: what a close from another task cancels: the reader's scope, or its winner's read watch
        self.scope: anyio.CancelScope | ReadWatch | None = None
        self.cancel_requested = False
        self.done: anyio.Event | None = None
        self.attempts: list[AttemptState] = []
        self.skipped: list[Attempt] = []
        self.errors: list[LLMException] = []
        self.probes: list[str] = []
        #: rounds that waited for a rate-limit budget (not counted as retries)
        self.budget_waits = 0
        self.winner: AttemptState | None = None
        self.pending_first: ChunkBatch | None = None
        #: every chunk served so far: the text, and what a reply holds besides text (`assemble`)
        self.chunks: list[StreamChunk] = []
        self.closing: StreamChunk | None = None
        self.error: LLMException | None = None
        self.response: LLMResponse | None = None
        #: a provider error raised right after its closing chunk, for the next read
        self.tail_error: LLMException | None = None
        #: whether another provider went on with the reply after the winner broke
        self.continued = False

    def text(self) -> str:
        """The reply's text so far."""
        return "".join([chunk.text for chunk in self.chunks])

    @property
    def running(self) -> bool:
        """Whether the call has started and is not over."""
        return self.state == _RACING or self.state == _SERVING

    @property
    def finished(self) -> bool:
        """Whether the call is over (served, failed or closed)."""
        return self.state == _DONE

    # -- reading ---------------------------------------------------------------------------

    async def next_batch(self) -> ChunkBatch | None:
        """The next batch of the reply, None at its end; raises the call's `LLMException`."""
        if self.state == _SERVING:
            first = self.pending_first
            if first is not None:
                self.pending_first = None
                return first
            return await self._pull()
        if self.state == _NEW:
            await self._open()
            return await self.next_batch()
        if self.error is not None:
            raise self.error
        return None

    async def _open(self) -> None:
        manager = self.manager
        request = self.request
        if manager.closed:
            self.state = _DONE
            raise LLMException(
                "this LLMCommunication is closed; open a new one (async with LLMCommunication() as llm:)",
                request_id=request.request_id,
            )
        self.state = _RACING
        self.clock = clock = race_clock()
        self.started = self.last_yield = now = clock()
        self.deadline = now + self.timeout
        manager.register(self)
        notify(self.observer.request_start, request, tuple(p.name for p in self.providers))
        winner: AttemptState | None = None
        token = _request_id.set(request.request_id)
        try:
            with anyio.CancelScope(deadline=self.deadline) as scope:
                self.scope = scope
                winner = await race(manager, self)
        except LLMException as exc:
            self.fail(exc)
            raise
        except BaseException as exc:
            self.end_cancelled(cancelled_error(request.request_id) if is_cancellation(exc) else None)
            raise
        finally:
            self.scope = None
            _request_id.reset(token)
            release_probes(self)
        if winner is None:  # the call's scope caught a cancellation: its deadline, or a close
            if self.cancel_requested:
                self.end_cancelled(closed_error(request.request_id))
            else:
                self.fail(call_timeout(self.timeout, request.request_id))
            assert self.error is not None
            raise self.error
        self._won(winner)
        if self.cancel_requested:  # closed from another task just as the race was won
            await self._close_now()

    def _won(self, winner: AttemptState) -> None:
        manager = self.manager
        self.winner = winner
        winner.outcome = "won"
        name = winner.provider.name
        manager.cooldown.success(name)
        self.hard_deadline = min(self.deadline, winner.deadline)
        assert winner.first_at is not None
        notify(self.observer.first_token, self.request, name, winner.provider.model, winner.first_at - self.started)
        first = winner.first
        if first is not None:
            self._remember(first)
            self.pending_first = first
        self.state = _SERVING

    def _remember(self, batch: ChunkBatch) -> None:
        if batch:
            self.chunks += batch
            last = batch[-1]
            if last.finish_reason is not None or last.usage is not None:
                self.closing = last

    async def _pull(self) -> ChunkBatch | None:
        winner = self.winner
        assert winner is not None
        if self.tail_error is not None:  # raised just after the closing chunk
            await stream_broke(self, self.tail_error, may_continue=False)  # the reply was whole
            raise self.error or self.tail_error
        now = self.clock()
        deadline = now + self.manager.stream_idle_timeout
        if self.hard_deadline < deadline:
            deadline = self.hard_deadline
        batch: ChunkBatch | None = None  # stays None when the scope catches its deadline
        error: LLMException | None = None
        watch = winner.watch
        token = _request_id.set(self.request.request_id)
        try:
            if watch is not None and watch.attached and now < deadline:
                # The deadline moves to the network read, which scopes itself when it waits
                # (`providers._watch`): most events come from a buffer, and cost no scope here.
                self.scope = watch
                watch.deadline = deadline
                watch.expired = False
                watch.armed = True
                try:
                    batch, error = await self._read(winner, now, deadline)
                finally:
                    watch.armed = False  # the closing drain keeps the transport's own timeout
                stopped = watch.expired
            else:
                with anyio.CancelScope(deadline=deadline) as scope:
                    self.scope = scope
                    batch, error = await self._read(winner, now, deadline)
                stopped = scope.cancelled_caught
        except BaseException as exc:
            if is_cancellation(exc) and self.state == _SERVING:  # from outside: the caller's scope or task
                self.end_cancelled(cancelled_error(self.request.request_id))
                await aclose_quietly(winner.batches)
            raise
        finally:
            self.scope = None
            _request_id.reset(token)
        if self.cancel_requested and self.state != _DONE:  # closed from another task just as a batch came
            await self._close_now()
        if batch is not None:
            self._remember(batch)
            self.tail_error = error
            return batch
        if stopped:
            await stream_stopped(self, deadline)
        elif error is not None:
            await stream_broke(self, error)
        elif winner.exhausted:
            self._finish()
        else:  # pragma: no cover - a provider iterator that returned None
            await stream_broke(
                self, ProviderUnavailableError("the provider yielded no batch", provider=winner.provider.name)
            )
        if self.error is not None:
            raise self.error
        if self.state == _SERVING:  # continued on another provider
            return await self.next_batch()
        return None

    async def _read(
        self, winner: AttemptState, now: float, deadline: float
    ) -> tuple[ChunkBatch | None, LLMException | None]:
        """The winner's next batch (None at its end or when stopped), and the error it raised, if any.

        Both may come: an error raised just after the closing chunk is the reply's tail.
        """
        if winner.exhausted:  # its end was read with its closing chunk
            return None, None
        batch: ChunkBatch | None = None
        try:
            # Past the deadline (every read came from a buffer) the checkpoint stops the call.
            if now >= deadline or now - self.last_yield >= CHECKPOINT_INTERVAL:
                self.last_yield = now
                await anyio.lowlevel.checkpoint()  # a provider that never awaits must not freeze the loop
            batch = await winner.batches.__anext__()  # type: ignore[union-attr]
            if batch and batch[-1].finish_reason is not None:
                # The closing chunk: the provider's end is due now; read it under the same
                # deadline (one cancel scope less per call).
                self.pending_first = await winner.batches.__anext__()  # type: ignore[union-attr]
        except StopAsyncIteration:
            winner.exhausted = True
        except ReadStopped:
            pass  # the watch says so
        except LLMException as exc:
            detach_foreign_causes(exc, (secret_of(winner.provider),))
            return batch, exc
        except BaseException as exc:
            if is_cancellation(exc):
                raise
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                self.end_cancelled()
                raise
            return batch, contract_error(winner.provider.name, exc)
        return batch, None

    # -- ending ----------------------------------------------------------------------------

    def _finish(self) -> None:
        winner = self.winner
        assert winner is not None
        now = self.clock()
        winner.ended = now
        self.response = response = served_response(self, winner, now)
        settle(winner, response.usage.total_tokens, now)
        self._settle()
        notify(self.observer.request_end, self.request, response)

    def fail(self, error: LLMException) -> None:
        """End the call with `error` (its request id set)."""
        error.request_id = error.request_id or self.request.request_id
        self.error = error
        self._settle()
        notify(self.observer.request_error, self.request, error, self.clock() - self.started)

    def end_cancelled(self, error: LLMException | None = None) -> None:
        """End the call as cancelled; `error` is what its reader raises (None: the cancellation itself)."""
        if self.state == _DONE:
            return
        self.error = error
        self._settle()
        notify(self.observer.request_cancelled, self.request, self.clock() - self.started)

    def _settle(self) -> None:
        self.state = _DONE
        self.pending_first = None
        now = self.clock()
        for attempt in self.attempts:
            if attempt.outcome is None:
                attempt.outcome = "cancelled"
                attempt.ended = now
        self.manager.unregister(self)
        if self.done is not None:
            self.done.set()

    def attempt_records(self, now: float) -> tuple[Attempt, ...]:
        """What each provider did, skipped ones first."""
        return (*self.skipped, *(a.record(now) for a in self.attempts))

    # -- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """End the call and close its upstream; safe from any task of the event loop (idempotent)."""
        if self.state == _DONE:
            return
        if self.state == _NEW:
            self.state = _DONE
            return
        scope = self.scope
        if scope is not None:  # a reader is in the race or a pull right now: stop it, and wait for it
            self.cancel_requested = True
            scope.cancel()
            if self.done is None:
                self.done = anyio.Event()
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE):
                await self.done.wait()
            return
        self.cancel_requested = True
        self.end_cancelled(closed_error(self.request.request_id))
        if self.winner is not None:
            await aclose_quietly(self.winner.batches)

    async def _close_now(self) -> None:
        """In the reader's task, a close that came from another task: end the call, raise its error."""
        self.end_cancelled(closed_error(self.request.request_id))
        if self.winner is not None:
            await aclose_quietly(self.winner.batches)
        assert self.error is not None
        raise self.error
