"""`SyncLLMCommunication`: the blocking facade, a thin layer over `LLMCommunication`.

Every call runs on llmcomm's one shared portal thread (`_portal`), so connections
live on the portal's event loop and never on a caller's: the facade is safe from
any thread, also from one whose own event loop is running (Jupyter, an async
handler calling sync code) or was closed, from a greenlet of a gevent-patched
process, and from a signal handler that interrupted a call of its own thread. A
facade made before `os.fork()` opens connections of its own in the child. Streams
are in `_sync_stream`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any, Final, TypeVar, Unpack, final

import anyio
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal

from ._call_options import CallOptions
from ._client import LLMCommunication, MessagesLike
from ._config import Configuration
from ._errors import ConfigurationError, LLMException
from ._monkey import hub_kept_awake, monkey_patched
from ._observability import Hooks, Metrics
from ._portal import (
    _LEFT_BEHIND,
    SHARED,
    Lease,
    check_not_portal_thread,
    fork_epoch,
    in_portal_thread,
    refuse_when_finalizing,
    track,
)
from ._stream import LLMStream
from ._sync_stream import CLOSE_TIMEOUT, portal_gone, result, start_soon
from ._sync_stream import SyncLLMStream as SyncLLMStream
from ._types import LLMResponse

T = TypeVar("T")

_log = logging.getLogger("llmcomm")

_CLOSED: Final = "this SyncLLMCommunication is closed; create a new one to make calls"


def _open_failed(exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"llmcomm could not open its connections ({type(exc).__name__}: {exc}); check the installed packages"
    )


@final
class _Holder:
    """Keeps one `LLMCommunication` open on the portal. Touched only on the portal's loop.

    The loop runs one task at a time, so every caller may ask it to open the
    connections: the first opens them, the others wait for that, none holds a lock.
    """

    __slots__ = ("background", "closed", "done", "error", "llm", "ready", "stop")

    def __init__(self, llm: LLMCommunication) -> None:
        self.llm = llm
        self.ready: anyio.Event | None = None
        self.stop: anyio.Event | None = None
        self.done: anyio.Event | None = None
        self.error: BaseException | None = None
        self.closed = False
        #: done once a background opening has finished (os.fork() waits for it)
        self.background: concurrent.futures.Future[None] | None = None

    def _opened(self) -> None:
        background = self.background
        if background is not None and not background.done():
            background.set_result(None)

    async def open_in_background(self) -> None:
        """Open the connections before the first call needs them; a failure waits for that call."""
        try:
            await self.hold()
        except Exception:  # the first call opens again, and raises what it meets
            _log.debug("opening llmcomm's connections in the background failed", exc_info=True)
        finally:
            self._opened()

    async def hold(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if self.closed:
            raise LLMException(_CLOSED)
        if self.ready is not None:  # opened, or being opened by another call
            await self.ready.wait()
            if self.error is not None:
                raise self.error
            task_status.started()
            return
        ready = self.ready = anyio.Event()
        self.stop, self.done = anyio.Event(), anyio.Event()
        try:
            async with self.llm:
                ready.set()
                self._opened()
                task_status.started()
                await self.stop.wait()
        except Exception as exc:
            if not ready.is_set():  # the callers waiting get the error; the next call tries again
                self.error = exc
                ready.set()
                self.ready = None
            raise
        finally:
            self.done.set()

    async def close(self) -> None:
        self.closed = True
        if self.stop is None or self.done is None:
            return
        self.stop.set()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await self.done.wait()


def _open_in_background(
    ref: weakref.ref[SyncLLMCommunication], holder: _Holder, starting: concurrent.futures.Future[Any]
) -> None:
    # Runs once the portal is up: in the portal thread, or at once in the facade's builder.
    facade = ref()
    if facade is None or facade._closed or starting.cancelled() or starting.exception() is not None:
        holder._opened()  # nothing will be opened: os.fork() need not wait for it
        return
    starting.result().run_soon(holder.open_in_background)


@final
class SyncLLMCommunication:
    """The blocking form of `LLMCommunication`: the same calls, from any thread.

    ::

        with SyncLLMCommunication() as llm:
            print(llm.generate_text("Say hi"))
            with llm.generate_stream("Tell a story") as stream:
                for chunk in stream:
                    print(chunk.text, end="")

    `config=None` reads the environment (`Configuration.from_env()`) and raises
    `ConfigurationError` when no provider is configured; other keyword options
    (`observer`, `hooks`, `otel`) are those of `LLMCommunication`. Building the
    facade starts llmcomm's portal thread and opens the connections (no network I/O:
    the HTTP clients and providers are built) in the background, without waiting, so
    the first call rarely waits for them; `close()` closes them (or the end of the
    `with` block; a facade that is garbage collected closes itself too).
    Errors are the same `LLMException` types the async API raises; a call while the
    interpreter is exiting raises `LLMException` at once.
    """

    def __init__(self, config: Configuration | None = None, **options: Any) -> None:
        # Building the async client does no I/O; it opens on the portal at the first call.
        self._options = options
        self._llm = LLMCommunication(config, **options)
        self.config = self._llm.config
        self._holder = _Holder(self._llm)
        self._portal: BlockingPortal | None = None
        self._closed = False
        self._streams: weakref.WeakSet[SyncLLMStream] = weakref.WeakSet()
        self._epoch = fork_epoch()
        self._lease: Lease | None = None
        with contextlib.suppress(LLMException, RuntimeError):  # exiting, or no thread to be had: the first call says
            self._lease = SHARED.lease()  # the portal starts now, while the caller does other things
        # ...and opens the connections once it is up, so the first call need not (not under gevent,
        # where the opening's worker "threads" are greenlets of the portal thread, racing its exit).
        if self._lease is not None and not monkey_patched():
            # Tracked from now on, so a fork right after building waits for the imports it makes.
            self._holder.background = concurrent.futures.Future()
            track(self._holder.background)
            self._lease.starting.add_done_callback(partial(_open_in_background, weakref.ref(self), self._holder))

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.config.providers)
        state = "closed" if self._closed else "open" if self._portal else "not opened"
        return f"<SyncLLMCommunication {state} providers=[{names}]>"

    def __enter__(self) -> SyncLLMCommunication:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def metrics(self) -> Metrics:
        """Counters and percentiles of this facade's calls (`snapshot()`, `prometheus()`)."""
        return self._llm.metrics

    @property
    def hooks(self) -> Hooks:
        """The hooks told of this facade's calls; they run on the portal thread."""
        return self._llm.hooks

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def _after_fork(self) -> None:
        # In a child of os.fork(): the parent's client lives on a loop whose thread is not
        # here. Keep it referenced (finalizing it could touch that loop) and start afresh.
        _LEFT_BEHIND.append((self._llm, self._holder, self._lease))
        self._llm = LLMCommunication(self.config, **self._options)
        self._holder = _Holder(self._llm)
        self._portal = None
        self._lease = None
        self._streams = weakref.WeakSet()
        self._epoch = fork_epoch()

    def _open(self) -> BlockingPortal:
        """The portal this facade's connections are open on, opening them on the first call."""
        portal = self._portal
        if portal is not None and self._epoch == fork_epoch() and not self._closed:
            return portal
        refuse_when_finalizing()
        check_not_portal_thread("SyncLLMCommunication")
        if self._epoch != fork_epoch():
            self._after_fork()
        if self._closed:
            raise LLMException(_CLOSED)
        lease = self._lease
        if lease is None:
            lease = self._lease = SHARED.lease()
        elif not SHARED.current(lease):
            raise portal_gone()
        # No lock is held while waiting: the portal thread starts on its own, and the
        # holder opens the connections once, however many callers ask at the same time.
        try:
            with hub_kept_awake():
                portal = lease.wait()
                portal.start_task(self._holder.hold, name="llmcomm sync facade")
        except (RuntimeError, concurrent.futures.CancelledError):
            raise portal_gone() from None
        except LLMException:
            raise
        except Exception as exc:
            raise _open_failed(exc) from exc
        self._portal = portal
        return portal

    def close(self) -> None:
        """Stop open streams and close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._holder._opened()  # os.fork() no longer waits for a background opening
        for stream in list(self._streams):
            stream.close()
        lease, self._lease = self._lease, None
        if lease is None or self._epoch != fork_epoch():
            return
        on_portal = in_portal_thread()
        try:
            if on_portal or not SHARED.current(lease) or not lease.starting.done():
                return  # on the loop, which cannot wait for itself; or nothing was opened there
            future = start_soon(lease.portal, self._holder.close)
            concurrent.futures.wait((future,), CLOSE_TIMEOUT + 1)
        except LLMException:
            return  # the portal was shut down, which closed the connections already
        finally:
            SHARED.release(lease, wait=not on_portal)

    def __del__(self) -> None:
        # A facade dropped without close() must not keep connections (and the portal) open.
        # Closing blocks, and a finalizer may run anywhere, so a helper thread does it.
        if getattr(self, "_closed", True) or getattr(self, "_lease", None) is None or sys.is_finalizing():
            return  # at exit the portal's own exit hook has closed everything already
        if self._epoch != fork_epoch():
            return
        if self._portal is None:
            lease, self._lease = self._lease, None
            self._closed = True
            if lease is not None:
                SHARED.release(lease, wait=False)
            return
        with contextlib.suppress(Exception):  # interpreter shutdown: the exit hook closes the portal
            threading.Thread(target=self._close_quietly, name="llmcomm-close", daemon=True).start()

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception:  # a finalizer's helper thread has nobody to report to
            _log.debug("closing a dropped SyncLLMCommunication failed", exc_info=True)

    # -- calls -------------------------------------------------------------------------

    def _call(self, func: Callable[[LLMCommunication], Awaitable[T]]) -> T:
        portal = self._open()
        check_not_portal_thread("SyncLLMCommunication")
        return result(start_soon(portal, partial(func, self._llm)), portal)

    def generate_response(self, messages: str | MessagesLike, **options: Unpack[CallOptions]) -> LLMResponse:
        """The whole reply as an `LLMResponse` (streamed underneath, so fallback applies).

        Options as for `LLMCommunication.generate_stream`.
        """
        return self._call(lambda llm: llm.generate_response(messages, **options))

    def run_tools(
        self, messages: str | MessagesLike, *, tools: Iterable[Any], max_steps: int = 8, **options: Any
    ) -> LLMResponse:
        """`LLMCommunication.run_tools`, blocking: the tool loop, its functions run in worker threads."""
        return self._call(lambda llm: llm.run_tools(messages, tools=tools, max_steps=max_steps, **options))

    def generate_text(self, prompt: str | MessagesLike, **options: Unpack[CallOptions]) -> str:
        """The reply's text."""
        return self._call(lambda llm: llm.generate_text(prompt, **options))

    def llm_call(self, prompt: str) -> str:
        """The reply's text, with the configured defaults (the legacy name)."""
        return self._call(lambda llm: llm.llm_call(prompt))

    def generate_stream(self, prompt_or_messages: str | MessagesLike, **options: Unpack[CallOptions]) -> SyncLLMStream:
        """Stream a reply: a `SyncLLMStream`, a blocking iterator of `StreamChunk`s.

        Bad input raises `InvalidRequestError` here; the request starts on the first
        iteration (or on entering its `with` block). Closing the iterator, leaving the
        `with` block or dropping it closes the upstream request.
        """

        async def make(llm: LLMCommunication) -> LLMStream:
            return llm.generate_stream(prompt_or_messages, **options)

        stream = self._call(make)
        sync_stream = SyncLLMStream(self, self._open(), stream)
        self._streams.add(sync_stream)
        return sync_stream

    async def agenerate_response(self, messages: str | MessagesLike, **options: Any) -> LLMResponse:
        """`generate_response`, awaitable from any event loop, asyncio or trio.

        For code that is async in places but shares one blocking client (a Flask
        application with a few `asyncio.run(...)` calls). The call runs on the
        client's own loop, so the caller's loop may be one made for this call alone
        and closed right after (the new-loop-per-request pattern): nothing stays
        bound to it. Cancelling the caller cancels the call. Raises what
        `generate_response` raises, and `LLMException` once the client is closed.
        """
        if in_portal_thread() and self._portal is not None:
            return await self._llm.generate_response(messages, **options)
        portal = self._open()  # blocks on the first call only, while the connections open
        if not SHARED.serves(portal):
            raise portal_gone()
        try:
            return await portal.call_async(partial(self._llm.generate_response, messages, **options))
        except concurrent.futures.CancelledError:
            raise LLMException("the call was cancelled because its SyncLLMCommunication was closed") from None
