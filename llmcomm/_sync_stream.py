"""`SyncLLMStream`, and the waits every sync call makes on llmcomm's portal.

A sync stream is consumed inside one portal task (`_Pump`), which hands chunks to
the reader's thread through a queue that it keeps bounded; closing the iterator
cancels that task, which closes the upstream request. The upstream is also closed
when the reader is gone without closing it:

- the iterator is garbage collected (its finalizer cancels the task);
- the thread that read it has ended;
- it is read from an anyio worker thread (Starlette's `StreamingResponse` over a sync
  generator, Django under ASGI) whose host task was cancelled, e.g. because the HTTP
  client disconnected: noticed within `_HOST_POLL` seconds while the reader waits;
- nobody has asked for the next chunk for the stream idle timeout
  (`Configuration.stream_idle_timeout`) while one was waiting: the upstream is closed
  and the next `next()` raises `StreamInterruptedError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import anyio
from anyio.from_thread import BlockingPortal

from ._errors import LLMException, StreamInterruptedError
from ._monkey import hub_kept_awake
from ._portal import SHARED, check_not_portal_thread, finalizing_error, fork_epoch, in_portal_thread
from ._stream import LLMStream
from ._types import LLMResponse, StreamChunk

if TYPE_CHECKING:
    from ._sync import SyncLLMCommunication

T = TypeVar("T")

#: chunks a sync stream's portal task may run ahead of a slow reader
SYNC_STREAM_BUFFER: Final = 256
#: how long closing waits for the upstream request (or the whole facade) to be torn down (s)
CLOSE_TIMEOUT: Final = 5.0
#: how often a blocked caller checks that the portal it waits on is still alive (s)
_LIVENESS_INTERVAL: Final = 1.0
#: how often a reader in an anyio worker thread checks whether its host task was cancelled (s)
_HOST_POLL: Final = 0.1
#: how often the portal task checks that a reader it is waiting for is still there (s)
_READER_POLL: Final = 0.5


def portal_gone() -> LLMException:
    if SHARED.exited:
        return finalizing_error()
    return LLMException(
        "llmcomm's portal was shut down (shutdown_llm_services() or interpreter exit), "
        "so this SyncLLMCommunication is closed; create a new one"
    )


def forked_error(what: str) -> LLMException:
    return LLMException(
        f"this {what} was opened in the parent process before os.fork(); its connection belongs to the "
        "parent, so start a new one in this process"
    )


def _wait(future: concurrent.futures.Future[T], portal: BlockingPortal) -> None:
    while not future.done():
        concurrent.futures.wait((future,), _LIVENESS_INTERVAL)
        if not future.done() and not SHARED.serves(portal):
            raise portal_gone()


def result(future: concurrent.futures.Future[T], portal: BlockingPortal) -> T:
    """Wait for a portal task, in the caller's thread, and return or raise what it did."""
    try:
        _wait(future, portal)
        return future.result()
    except concurrent.futures.CancelledError:
        raise LLMException("the call was cancelled because its SyncLLMCommunication was closed") from None
    except BaseException:
        future.cancel()  # e.g. KeyboardInterrupt: stop the work on the portal too
        raise


def start_soon(portal: BlockingPortal, func: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
    try:
        with hub_kept_awake():
            return portal.start_task_soon(func)
    except RuntimeError:  # "This portal is not running"
        raise portal_gone() from None


def _host_scope() -> Any:
    """The cancel scope of the async task that runs this thread, when it is an anyio worker thread."""
    with contextlib.suppress(Exception):  # anyio internals: without them, the idle bound still holds
        from anyio._core._eventloop import threadlocals

        return getattr(threadlocals, "current_cancel_scope", None)
    return None


def _host_cancelled(scope: Any) -> bool:
    # The worker's own scope is shielded (the thread cannot be abandoned), so walk past shields.
    for _ in range(64):
        if scope is None:
            return False
        if getattr(scope, "cancel_called", False):
            return True
        scope = getattr(scope, "_parent_scope", None)
    return False


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

    __slots__ = (
        "_lock",
        "_portal",
        "_space",
        "finished",
        "host",
        "idle_limit",
        "last_read",
        "queue",
        "reader",
        "waiting",
    )

    def __init__(self, portal: BlockingPortal, idle_limit: float) -> None:
        self._portal = portal
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._space: anyio.Event | None = None
        self.finished = threading.Event()
        self.idle_limit = idle_limit
        self.last_read = time.monotonic()
        self.waiting = False  # a reader is blocked in get()
        self.reader: threading.Thread | None = None
        self.host: Any = None  # the cancel scope of the reader's host task, when read from an anyio worker thread

    def gone(self) -> str | None:
        """Why the reader is gone, when it is."""
        reader = self.reader
        if reader is not None and not reader.is_alive():
            return "the thread reading it has ended"
        if not self.waiting and self.host is not None and _host_cancelled(self.host):
            return "the async task reading it through a worker thread was cancelled"
        if not self.waiting and self.queue.qsize() and time.monotonic() - self.last_read > self.idle_limit:
            return f"nobody asked for the next chunk for {self.idle_limit:g} s"
        return None

    def check_reader(self) -> None:
        """Raise `StreamInterruptedError` when the reader is gone: ending the task closes the upstream."""
        if (why := self.gone()) is not None:
            raise StreamInterruptedError(
                f"the stream was closed because its reader is gone ({why}); read a sync stream "
                "to its end or close it (a `with` block does)"
            )

    async def run(self, stream: LLMStream) -> None:
        try:
            async with stream:
                async for chunk in stream:
                    if self.queue.qsize() >= SYNC_STREAM_BUFFER:
                        await self._wait_for_space()
                    self.queue.put(chunk)
                    self.check_reader()
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
        while True:
            with anyio.move_on_after(_READER_POLL):
                await space.wait()
                return
            self.check_reader()

    def task_done(self, future: concurrent.futures.Future[None]) -> None:
        # After a normal end the reader stops at _End and never sees this; after a
        # cancellation (close, portal shutdown) it is the only end marker.
        self.queue.put(_STOPPED)

    def get(self, on_host_cancelled: Callable[[], None]) -> _Item:
        self.reader = threading.current_thread()
        host = self.host = _host_scope()
        interval = _HOST_POLL if host is not None else _LIVENESS_INTERVAL
        self.waiting = True
        try:
            while True:
                try:
                    item = self.queue.get(timeout=interval)
                    break
                except queue.Empty:
                    if not SHARED.serves(self._portal):
                        return _STOPPED
                    if host is not None and _host_cancelled(host):
                        on_host_cancelled()  # its HTTP client is gone, most likely: nobody will read on
                        raise asyncio.CancelledError("the task reading this stream was cancelled") from None
        finally:
            self.waiting = False
            self.last_read = time.monotonic()
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
    after a failure, iteration raises the call's `LLMException`. A stream nobody
    reads any more is closed too (see the module docstring for when that is noticed).
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_done",
        "_epoch",
        "_future",
        "_owner",
        "_portal",
        "_pump",
        "_stream",
        "response",
    )

    def __init__(self, owner: SyncLLMCommunication, portal: BlockingPortal, stream: LLMStream) -> None:
        self._owner = owner  # keeps the facade (and its connections) alive while the stream is
        self._portal = portal
        self._stream: LLMStream | None = stream
        self._pump = _Pump(portal, owner.config.stream_idle_timeout)
        self._future: concurrent.futures.Future[None] | None = None
        self._done = False
        self._closed = False
        self._epoch = fork_epoch()
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
        if self._epoch != fork_epoch():
            raise forked_error("stream")
        if self._future is not None:
            return
        if self._done:
            raise LLMException("this stream was closed; start a new one with generate_stream()")
        check_not_portal_thread("SyncLLMStream")
        stream, self._stream = self._stream, None
        assert stream is not None
        self._future = start_soon(self._portal, partial(self._pump.run, stream))
        self._future.add_done_callback(self._pump.task_done)

    def __next__(self) -> StreamChunk:
        if self._done:
            raise StopIteration
        self._start()
        check_not_portal_thread("SyncLLMStream")
        item = self._pump.get(self._abandon)
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

    def _abandon(self) -> None:
        # Cancelling never blocks: the reader's host is being cancelled and must not wait.
        self._closed = self._done = True
        future = self._future
        if future is not None:
            future.cancel()

    def close(self) -> None:
        """Stop the call and close its upstream connection (idempotent).

        Returns once the upstream request is closed (waiting at most a few seconds).
        """
        self._closed = self._done = True
        self._stream = None
        future = self._future
        if future is None or future.done() or self._epoch != fork_epoch():
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
