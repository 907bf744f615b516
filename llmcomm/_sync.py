"""`SyncLLMCommunication`: the blocking facade, a thin layer over `LLMCommunication`.

Every call runs on llmcomm's one shared portal thread (`_portal`), so connections
live on the portal's event loop and never on a caller's: the facade is safe from
any thread, also from one whose own event loop is running (Jupyter, an async
handler calling sync code) or was closed. A sync stream is consumed inside one
portal task, which hands chunks to the caller's thread through a queue that it
keeps bounded; closing the iterator cancels that task, which closes the upstream
request.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from types import TracebackType
from typing import Any, Final, TypeVar, final

import anyio
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal

from ._client import LLMCommunication, MessagesLike
from ._config import Configuration
from ._errors import LLMException
from ._observability import Hooks, Metrics
from ._portal import SHARED, Lease, check_not_portal_thread, in_portal_thread
from ._stream import LLMStream
from ._types import LLMResponse, StreamChunk

T = TypeVar("T")

#: chunks a sync stream's portal task may run ahead of a slow reader
SYNC_STREAM_BUFFER: Final = 256
#: how long closing waits for the upstream request (or the whole facade) to be torn down
CLOSE_TIMEOUT: Final = 5.0
#: how often a blocked caller checks that the portal it waits on is still alive
_LIVENESS_INTERVAL: Final = 1.0

_log = logging.getLogger("llmcomm")


def _portal_gone() -> LLMException:
    return LLMException(
        "llmcomm's portal was shut down (shutdown_llm_services() or interpreter exit), "
        "so this SyncLLMCommunication is closed; create a new one"
    )


def _wait(future: concurrent.futures.Future[T], portal: BlockingPortal) -> None:
    while not future.done():
        concurrent.futures.wait((future,), _LIVENESS_INTERVAL)
        if not future.done() and not SHARED.serves(portal):
            raise _portal_gone()


def _result(future: concurrent.futures.Future[T], portal: BlockingPortal) -> T:
    """Wait for a portal task, in the caller's thread, and return or raise what it did."""
    try:
        _wait(future, portal)
        return future.result()
    except concurrent.futures.CancelledError:
        raise LLMException("the call was cancelled because its SyncLLMCommunication was closed") from None
    except BaseException:
        future.cancel()  # e.g. KeyboardInterrupt: stop the work on the portal too
        raise


def _start_soon(portal: BlockingPortal, func: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
    try:
        return portal.start_task_soon(func)
    except RuntimeError:  # "This portal is not running"
        raise _portal_gone() from None


async def _hold(llm: LLMCommunication, *, task_status: TaskStatus[anyio.Event] = anyio.TASK_STATUS_IGNORED) -> None:
    """Keep `llm` open on the portal until the returned event is set."""
    stop = anyio.Event()
    async with llm:
        task_status.started(stop)
        await stop.wait()


@final
class _Opened:
    """An `LLMCommunication` held open on the portal, and the lease that keeps the portal up."""

    __slots__ = ("holder", "lease", "llm", "stop")

    def __init__(
        self, lease: Lease, llm: LLMCommunication, stop: anyio.Event, holder: concurrent.futures.Future[None]
    ) -> None:
        self.lease = lease
        self.llm = llm
        self.stop = stop
        self.holder = holder

    @property
    def portal(self) -> BlockingPortal:
        return self.lease.portal

    def close(self, *, quiet: bool = False) -> None:
        """Close the `LLMCommunication`, then hand the lease back."""
        on_portal = in_portal_thread()
        try:
            if on_portal:
                self.stop.set()  # already on the loop, which cannot wait for itself
                return
            try:
                self.portal.start_task_soon(self.stop.set)
            except RuntimeError:
                return  # the portal was shut down, which closed the connections already
            concurrent.futures.wait((self.holder,), CLOSE_TIMEOUT)
            if not quiet and self.holder.done() and not self.holder.cancelled():
                self.holder.result()  # an error while closing the connections
        finally:
            SHARED.release(self.lease, wait=not on_portal)


def _close_quietly(opened: _Opened) -> None:
    try:
        opened.close(quiet=True)
    except Exception:  # a finalizer's helper thread has nobody to report to
        _log.debug("closing a dropped SyncLLMCommunication failed", exc_info=True)


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
    (`observer`, `hooks`, `otel`) are those of `LLMCommunication`. The connections open on
    the first call, on llmcomm's shared portal thread, and are closed by `close()`
    (or the end of the `with` block; a facade that is garbage collected closes
    itself too). Errors are the same `LLMException` types the async API raises.
    """

    def __init__(self, config: Configuration | None = None, **options: Any) -> None:
        # Building the async client does no I/O; it opens on the portal at the first call.
        self._llm = LLMCommunication(config, **options)
        self.config = self._llm.config
        self._lock = threading.Lock()
        self._opened: _Opened | None = None
        self._closed = False
        self._streams: weakref.WeakSet[SyncLLMStream] = weakref.WeakSet()

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.config.providers)
        state = "closed" if self._closed else "open" if self._opened else "not opened"
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

    def _open(self) -> _Opened:
        opened = self._opened
        if opened is not None:
            return opened
        check_not_portal_thread("SyncLLMCommunication")
        with self._lock:
            if self._closed:
                raise LLMException("this SyncLLMCommunication is closed; create a new one to make calls")
            if self._opened is None:
                lease = SHARED.acquire()
                llm = self._llm
                try:
                    holder, stop = lease.portal.start_task(_hold, llm, name="llmcomm sync facade")
                except RuntimeError:
                    SHARED.release(lease)
                    raise _portal_gone() from None
                except BaseException:
                    SHARED.release(lease)
                    raise
                self._opened = _Opened(lease, llm, stop, holder)
            return self._opened

    def close(self) -> None:
        """Stop open streams and close the connections (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            opened, self._opened = self._opened, None
        for stream in list(self._streams):
            stream.close()
        if opened is not None:
            opened.close()

    def __del__(self) -> None:
        # A facade dropped without close() must not keep connections (and the portal) open.
        # Closing blocks, and a finalizer may run anywhere, so a helper thread does it.
        opened = getattr(self, "_opened", None)
        if opened is None or getattr(self, "_closed", True) or sys.is_finalizing():
            return  # at exit the portal's own exit hook has closed everything already
        if not SHARED.serves(opened.portal):
            return
        with contextlib.suppress(RuntimeError):  # interpreter shutdown: the exit hook closes the portal
            threading.Thread(target=_close_quietly, args=(opened,), name="llmcomm-close", daemon=True).start()

    # -- calls -------------------------------------------------------------------------

    def _call(self, func: Callable[[LLMCommunication], Awaitable[T]]) -> T:
        opened = self._open()
        check_not_portal_thread("SyncLLMCommunication")
        llm = opened.llm
        return _result(_start_soon(opened.portal, partial(func, llm)), opened.portal)

    def generate_response(self, messages: str | MessagesLike, **options: Any) -> LLMResponse:
        """The whole reply as an `LLMResponse` (streamed underneath, so fallback applies).

        Options as for `LLMCommunication.generate_stream`.
        """
        return self._call(lambda llm: llm.generate_response(messages, **options))

    def run_tools(
        self, messages: str | MessagesLike, *, tools: Iterable[Any], max_steps: int = 8, **options: Any
    ) -> LLMResponse:
        """`LLMCommunication.run_tools`, blocking: the tool loop, its functions run in worker threads."""
        return self._call(lambda llm: llm.run_tools(messages, tools=tools, max_steps=max_steps, **options))

    def generate_text(self, prompt: str | MessagesLike, **options: Any) -> str:
        """The reply's text."""
        return self._call(lambda llm: llm.generate_text(prompt, **options))

    def llm_call(self, prompt: str) -> str:
        """The reply's text, with the configured defaults (the legacy name)."""
        return self._call(lambda llm: llm.llm_call(prompt))

    def generate_stream(self, prompt_or_messages: str | MessagesLike, **options: Any) -> SyncLLMStream:
        """Stream a reply: a `SyncLLMStream`, a blocking iterator of `StreamChunk`s.

        Bad input raises `InvalidRequestError` here; the request starts on the first
        iteration (or on entering its `with` block). Closing the iterator, leaving the
        `with` block or dropping it closes the upstream request.
        """

        async def make(llm: LLMCommunication) -> LLMStream:
            return llm.generate_stream(prompt_or_messages, **options)

        stream = self._call(make)
        sync_stream = SyncLLMStream(self, self._open().portal, stream)
        self._streams.add(sync_stream)
        return sync_stream

    async def _agenerate_response(self, messages: str | MessagesLike, **options: Any) -> LLMResponse:
        """`generate_response` awaitable from any event loop, asyncio or trio.

        The call runs on the portal, so a caller's loop may be one made for this
        call alone and closed right after (the legacy new-loop-per-request
        pattern): nothing stays bound to it. Cancelling the caller cancels the call.
        """
        opened = self._open()  # blocks on the first call only, while the connections open
        if in_portal_thread():
            return await opened.llm.generate_response(messages, **options)
        portal = opened.portal
        if not SHARED.serves(portal):
            raise _portal_gone()
        try:
            return await portal.call_async(partial(opened.llm.generate_response, messages, **options))
        except concurrent.futures.CancelledError:
            raise LLMException("the call was cancelled because its SyncLLMCommunication was closed") from None


# -- streams -------------------------------------------------------------------------


@final
class _End:
    __slots__ = ("response",)

    def __init__(self, response: LLMResponse | None) -> None:
        self.response = response


@final
class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_STOPPED: Final = object()
#: what the queue carries: StreamChunks, then an _End or a _Failed, or _STOPPED
_Item = object


@final
class _Pump:
    """The portal side of a sync stream: one task reads the `LLMStream` into a queue.

    It holds no reference to the `SyncLLMStream`, so dropping that closes the stream.
    """

    __slots__ = ("_lock", "_portal", "_space", "finished", "queue")

    def __init__(self, portal: BlockingPortal) -> None:
        self._portal = portal
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._space: anyio.Event | None = None
        self.finished = threading.Event()

    async def run(self, stream: LLMStream) -> None:
        try:
            async with stream:
                async for chunk in stream:
                    if self.queue.qsize() >= SYNC_STREAM_BUFFER:
                        await self._wait_for_space()
                    self.queue.put(chunk)
            self.queue.put(_End(stream.response))
        except Exception as exc:  # an LLMException, raised again in the reader's thread
            self.queue.put(_Failed(exc))
        finally:
            self.finished.set()

    async def _wait_for_space(self) -> None:
        with self._lock:
            if self.queue.qsize() < SYNC_STREAM_BUFFER:
                return
            space = self._space = anyio.Event()
        await space.wait()

    def task_done(self, future: concurrent.futures.Future[None]) -> None:
        # After a normal end the reader stops at _End and never sees this; after a
        # cancellation (close, portal shutdown) it is the only end marker.
        self.queue.put(_STOPPED)

    def get(self) -> _Item:
        while True:
            try:
                item = self.queue.get(timeout=_LIVENESS_INTERVAL)
                break
            except queue.Empty:
                if not SHARED.serves(self._portal):
                    return _STOPPED
        if self._space is not None:
            with self._lock:
                space, self._space = self._space, None
            if space is not None:
                with contextlib.suppress(RuntimeError):  # the portal is gone; so is the task waiting for space
                    self._portal.start_task_soon(space.set)
        return item


@final
class SyncLLMStream:
    """A blocking iterator of `StreamChunk`s, and a context manager.

    The request starts on the first iteration or on entering the `with` block.
    `close()`, leaving the block or dropping the iterator closes the upstream
    request. `response` holds the final `LLMResponse` once the stream is done;
    after a failure, iteration raises the call's `LLMException`.
    """

    __slots__ = ("__weakref__", "_closed", "_done", "_future", "_owner", "_portal", "_pump", "_stream", "response")

    def __init__(self, owner: SyncLLMCommunication, portal: BlockingPortal, stream: LLMStream) -> None:
        self._owner = owner  # keeps the facade (and its connections) alive while the stream is
        self._portal = portal
        self._stream: LLMStream | None = stream
        self._pump = _Pump(portal)
        self._future: concurrent.futures.Future[None] | None = None
        self._done = False
        self._closed = False
        self.response: LLMResponse | None = None

    def __repr__(self) -> str:
        state = "done" if self._done else "open" if self._future else "not started"
        return f"<SyncLLMStream {state}>"

    def __enter__(self) -> SyncLLMStream:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def _start(self) -> None:
        if self._future is not None:
            return
        if self._done:
            raise LLMException("this stream was closed; start a new one with generate_stream()")
        check_not_portal_thread("SyncLLMStream")
        stream, self._stream = self._stream, None
        assert stream is not None
        self._future = _start_soon(self._portal, partial(self._pump.run, stream))
        self._future.add_done_callback(self._pump.task_done)

    def __next__(self) -> StreamChunk:
        if self._done:
            raise StopIteration
        self._start()
        check_not_portal_thread("SyncLLMStream")
        item = self._pump.get()
        if isinstance(item, StreamChunk):
            return item
        self._done = True
        if isinstance(item, _End):
            self.response = item.response
            raise StopIteration
        if self._closed:  # closed from another thread while this one waited: the end, as after close()
            raise StopIteration
        if isinstance(item, _Failed):
            raise item.error
        raise LLMException("the stream was stopped before it finished (it was closed, or llmcomm shut down)")

    def text(self) -> str:
        """Read the rest of the stream and return its text."""
        return "".join(chunk.text for chunk in self)

    def close(self) -> None:
        """Stop the call and close its upstream connection (idempotent).

        Returns once the upstream request is closed (waiting at most a few seconds).
        """
        self._closed = self._done = True
        self._stream = None
        future = self._future
        if future is None or future.done():
            return
        future.cancel()
        if not in_portal_thread() and SHARED.serves(self._portal):
            self._pump.finished.wait(CLOSE_TIMEOUT)

    def __del__(self) -> None:
        # Dropped while running: cancel the portal task, which closes the upstream.
        # Cancelling a future never blocks, so this is safe in any thread.
        future = getattr(self, "_future", None)
        if future is not None and not future.done():
            future.cancel()
