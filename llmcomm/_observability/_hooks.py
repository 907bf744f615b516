"""User hooks: plain callables, sync or async, told about every call of an `LLMCommunication`.

    llm = LLMCommunication(config)

    @llm.hooks.on_request_end
    async def record(event: HookEvent) -> None:
        await audit_log.write(event.request_id, event.response.usage)

A sync hook runs at once, on the call's path, so it must be quick. An async hook
(any callable that returns an awaitable) is handed to a small bounded queue and
run in the background by a task the `LLMCommunication` starts: the call never
waits for it. A hook that raises is logged on `llmcomm.hooks` and the call goes
on; an async hook that cannot be queued (more than `QUEUE_SIZE` waiting) is
dropped with a warning.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import LLMException
from .._types import LLMResponse, Request
from ._context import request_id_scope
from ._event import (
    AttemptStart,
    CallState,
    Event,
    Fallback,
    FirstToken,
    RequestCancelled,
    RequestEnd,
    RequestError,
    RequestStart,
    Retry,
)
from ._logging import get_logger

HookKind = Literal["request_start", "first_token", "retry", "fallback", "request_end", "error"]
HOOK_KINDS: Final[tuple[HookKind, ...]] = ("request_start", "first_token", "retry", "fallback", "request_end", "error")
#: async hook runs that may wait to be started; more are dropped
QUEUE_SIZE: Final = 1024
#: async hook runs at the same time
CONCURRENCY: Final = 32

hook_logger = get_logger("llmcomm.hooks")


class Spawner(Protocol):
    """Where background tasks start: a task group, or a client's own background tasks."""

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None) -> object: ...


@final
@dataclass(frozen=True, slots=True)
class HookEvent:
    """What a hook is told. Fields that do not apply to an event's `kind` are None.

    - `request_start`: `providers` (the order the call will try).
    - `first_token`: `provider`, `model`, `seconds` since the call began.
    - `retry`: `provider` (about to be tried again), `error`, `delay` (seconds).
    - `fallback`: `provider` (left), `to_provider`, `reason`.
    - `request_end`: `provider`, `model`, `seconds`, `response`.
    - `error`: `provider` (the last tried, if any), `model`, `seconds`, `error`.
    """

    kind: HookKind
    request_id: str
    request: Request
    provider: str | None = None
    model: str | None = None
    seconds: float | None = None
    providers: tuple[str, ...] = ()
    to_provider: str | None = None
    reason: str | None = None
    delay: float | None = None
    response: LLMResponse | None = None
    error: LLMException | None = None


HookFunction = Callable[[HookEvent], Awaitable[object] | object]
#: the hook kind of each event hooks are told of
_HOOKED: Final[dict[type[Any], HookKind]] = {
    RequestStart: "request_start",
    FirstToken: "first_token",
    Retry: "retry",
    Fallback: "fallback",
    RequestEnd: "request_end",
    RequestError: "error",
}
_F = TypeVar("_F", bound=Callable[[HookEvent], Any])


@final
class Hooks:
    """The hooks of one `LLMCommunication` (its `hooks` attribute).

    Each `on_*` method registers a callable taking one `HookEvent` and returns it
    unchanged, so it also works as a decorator. Register before or while the
    client is open; `remove()` unregisters.
    """

    __slots__ = ("_by_kind",)

    def __init__(self) -> None:
        # Tuples, replaced on change: a call iterating them is never disturbed.
        self._by_kind: dict[HookKind, tuple[HookFunction, ...]] = dict.fromkeys(HOOK_KINDS, ())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in self._by_kind.items() if v)
        return f"<Hooks {counts or 'none'}>"

    def _add(self, kind: HookKind, fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"a hook must be callable, got {type(fn).__name__}")
        self._by_kind[kind] = (*self._by_kind[kind], fn)
        return fn

    def on_request_start(self, fn: _F) -> _F:
        """Call `fn` when a call starts."""
        return self._add("request_start", fn)

    def on_first_token(self, fn: _F) -> _F:
        """Call `fn` when a call's first content arrives."""
        return self._add("first_token", fn)

    def on_retry(self, fn: _F) -> _F:
        """Call `fn` when a provider is about to be retried."""
        return self._add("retry", fn)

    def on_fallback(self, fn: _F) -> _F:
        """Call `fn` when a call moves on to the next provider."""
        return self._add("fallback", fn)

    def on_request_end(self, fn: _F) -> _F:
        """Call `fn` when a call finished with a reply."""
        return self._add("request_end", fn)

    def on_error(self, fn: _F) -> _F:
        """Call `fn` when a call failed."""
        return self._add("error", fn)

    def remove(self, fn: HookFunction) -> None:
        """Unregister `fn` from every event it was registered for."""
        for kind, fns in self._by_kind.items():
            if fn in fns:
                self._by_kind[kind] = tuple(f for f in fns if f is not fn and f != fn)

    def functions(self, kind: HookKind) -> tuple[HookFunction, ...]:
        """The hooks registered for `kind`, in registration order."""
        return self._by_kind[kind]


_Job = tuple[HookFunction, Awaitable[object], HookEvent]


def _hook_event(kind: HookKind, request: Request, event: Event) -> HookEvent:
    """The `HookEvent` of `event`: the fields that apply to it, the others None."""
    rid = request.request_id
    match event:
        case RequestStart():
            return HookEvent(kind, rid, request, providers=event.providers)
        case FirstToken():
            return HookEvent(kind, rid, request, event.provider, event.model, event.seconds)
        case Retry():
            return HookEvent(kind, rid, request, event.provider, event.model, delay=event.delay, error=event.error)
        case Fallback():
            return HookEvent(
                kind, rid, request, event.provider, event.model, to_provider=event.to_provider, reason=event.reason
            )
        case RequestEnd():
            seconds = event.response.response_time
            return HookEvent(kind, rid, request, event.provider, event.model, seconds, response=event.response)
        case RequestError():
            return HookEvent(kind, rid, request, event.provider, event.model, event.seconds, error=event.error)
        case AttemptStart() | RequestCancelled():  # hooks are not told of these (`_HOOKED`)
            return HookEvent(kind, rid, request, event.provider, event.model)


def _discard(awaitable: Awaitable[object]) -> None:
    if isinstance(awaitable, Coroutine):
        awaitable.close()  # never run: close it so no "never awaited" warning fires


def _name(fn: HookFunction) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@final
class HookRunner:
    """Calls the hooks of a `Hooks` and runs the async ones in the background."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._send: MemoryObjectSendStream[_Job] | None = None
        self._done: anyio.Event | None = None

    def open(self, task_group: Spawner) -> None:
        """Start running async hooks in `task_group`."""
        send, receive = anyio.create_memory_object_stream[_Job](QUEUE_SIZE)
        self._send = send
        self._done = anyio.Event()
        task_group.start_soon(self._serve, receive, self._done, name="llmcomm hooks")

    async def aclose(self, grace: float) -> None:
        """Stop taking async hooks and give the queued ones up to `grace` seconds to finish."""
        send, self._send = self._send, None
        done, self._done = self._done, None
        if send is None or done is None:
            return
        send.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
            await done.wait()

    def __repr__(self) -> str:
        return "llmcomm hooks"

    def handle(self, call: CallState, event: Event) -> None:
        """The sink: tell the hooks registered for `event`'s kind, if any (the `HookEvent` is built only then)."""
        kind = _HOOKED.get(type(event))
        if kind is not None and (fns := self.hooks.functions(kind)):
            self.dispatch(fns, _hook_event(kind, call.request, event))

    def dispatch(self, fns: tuple[HookFunction, ...], event: HookEvent) -> None:
        """Call each of `fns` with `event`; queue what async ones return. Never raises."""
        for fn in fns:
            try:
                result = fn(event)
            except Exception:
                hook_logger.exception(
                    "%s hook %s failed; the call goes on", event.kind, _name(fn), extra={"request_id": event.request_id}
                )
                continue
            if result is not None and inspect.isawaitable(result):
                self._queue(fn, result, event)

    def _queue(self, fn: HookFunction, awaitable: Awaitable[object], event: HookEvent) -> None:
        send = self._send
        try:
            if send is None:
                raise anyio.ClosedResourceError  # noqa: TRY301 - handled below with a closed queue
            send.send_nowait((fn, awaitable, event))
        except anyio.WouldBlock:
            _discard(awaitable)
            hook_logger.warning(
                "%s hook %s dropped: %d async hook runs are already waiting; make the hooks faster",
                event.kind,
                _name(fn),
                QUEUE_SIZE,
                extra={"request_id": event.request_id},
            )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            _discard(awaitable)
            hook_logger.debug(
                "%s hook %s not run: the client is closing",
                event.kind,
                _name(fn),
                extra={"request_id": event.request_id},
            )

    async def _serve(self, receive: MemoryObjectReceiveStream[_Job], done: anyio.Event) -> None:
        slots = anyio.Semaphore(CONCURRENCY)
        unstarted: set[int] = set()
        jobs: dict[int, _Job] = {}
        try:
            async with anyio.create_task_group() as tg:
                async for job in receive:
                    await slots.acquire()
                    jobs[id(job)] = job
                    unstarted.add(id(job))
                    tg.start_soon(self._run, job, slots, unstarted, jobs)
        finally:
            # Cancelled with jobs queued or not yet started: close them unrun.
            for key in unstarted:
                _discard(jobs[key][1])
            while True:
                try:
                    _discard(receive.receive_nowait()[1])
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            receive.close()
            done.set()

    @staticmethod
    async def _run(job: _Job, slots: anyio.Semaphore, unstarted: set[int], jobs: dict[int, _Job]) -> None:
        unstarted.discard(id(job))
        fn, awaitable, event = job
        try:
            with request_id_scope(event.request_id):
                await awaitable
        except Exception:
            hook_logger.exception(
                "%s hook %s failed; the call goes on", event.kind, _name(fn), extra={"request_id": event.request_id}
            )
        finally:
            jobs.pop(id(job), None)
            slots.release()
