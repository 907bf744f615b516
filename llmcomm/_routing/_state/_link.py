"""The connection to Redis: a private thread with its own event loop, owned by the backend.

Why a thread: the Redis client (coredis, built on anyio) keeps its connections in a task
group that must stay open between calls, and llmcomm holds no task group across the
user's code (DESIGN Part 2, "Lifecycle"). Its own thread gives the connection a life of
its own, the same on asyncio, trio and the sync facade, and a forked child starts a
fresh one. The caller's event loop never awaits Redis except through `call`, which
gives up after the operation timeout.

Fail open: an operation that fails (or three in a row that take longer than `timeout`)
trips a bypass for `bypass` seconds, during which nothing is sent and callers use their
local state. One WARNING per outage, one INFO line when Redis answers again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, final

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..._secrets import mask_url
from ._lua import Script

T = TypeVar("T")
#: how long connecting to Redis may take, in seconds (operations wait for it only at start)
CONNECT_TIMEOUT = 1.0
#: operations running against Redis at once; the others queue, and their timeout starts when they run
CONCURRENCY = 16
#: operations queued at most; past that, updates are dropped (shared state is best effort, never a backlog)
MAX_BACKLOG = 1000
#: operations in a row that time out before Redis counts as down (a connection error counts at once)
SLOW_IN_A_ROW = 3
log = logging.getLogger("llmcomm")

#: the reply of a Redis command or script, as coredis gives it
Reply = Any
Op = Callable[[Any], Awaitable[T]]


async def run_script(client: Any, script: Script, keys: Sequence[str], args: Sequence[str | int | float]) -> Reply:
    """EVALSHA `script`; when Redis does not know it (restarted, flushed), EVAL it, which loads it too."""
    from coredis.exceptions import NoScriptError

    try:
        return await client.evalsha(script.sha, list(keys), list(args))
    except NoScriptError:
        return await client.eval(script.source, list(keys), list(args))


@final
class RedisLink:
    """One Redis connection pool on a private thread; every operation bounded by `timeout` seconds."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.05,
        bypass: float = 3.0,
        refresh_interval: float = 0.2,
        refresher: Callable[[], Sequence[tuple[str, Op[None]]]] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.bypass = bypass
        self.refresh_interval = refresh_interval
        self._refresher = refresher
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._pid = os.getpid()
        self._client: Any = None
        self._ready: anyio.Event | None = None
        self._reset: anyio.Event | None = None
        self._down_until = 0.0
        self._outage = False
        self._closed = False
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._pending_lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None  # made on the Redis thread's loop
        self._slow = 0
        self._key_locks: dict[str, anyio.Lock] = {}  # used on the Redis thread only
        self._group: Any = None  # the Redis thread's task group
        self._loop: Any = None  # the Redis thread's asyncio loop
        self._context = contextvars.Context()
        self._orphans: list[object] = []  # what a fork left of the parent's thread, never finalized

    def __repr__(self) -> str:
        return f"RedisLink({mask_url(self.url)!r}, timeout={self.timeout})"

    @property
    def available(self) -> bool:
        """Whether operations are sent now (False while bypassed after a failure, or closed)."""
        return not self._closed and time.monotonic() >= self._down_until

    # -- used from any thread -----------------------------------------------------------
    def submit(self, op: Op[T], key: str = "") -> concurrent.futures.Future[T] | None:
        """Start `op(client)` on the Redis thread and return at once; None when bypassed or closed.

        Operations on one `key` run in the order they were submitted."""
        if not self.available or len(self._pending) >= MAX_BACKLOG:  # len() of a set is atomic
            return None
        if self._ensure() is None:
            return None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            # a callback handed to the Redis thread's loop: the caller never waits for that thread
            self._loop.call_soon_threadsafe(self._spawn, op, key, future, context=self._context)
        except RuntimeError:  # the loop is closed: the link is closing
            return None
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._pending_lock:  # the Redis thread removes, the callers' threads add and copy
            self._pending.discard(future)

    async def call(self, op: Op[T], key: str = "") -> T | None:
        """`op(client)`'s result, awaited from any event loop; None when Redis failed, was slow or is bypassed."""
        future = self.submit(op, key)
        if future is None or not await self._wait(future):
            return None
        if future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    async def connect(self, timeout: float = 2 * CONNECT_TIMEOUT) -> bool:
        """Start connecting and wait up to `timeout` seconds until Redis answers; whether it did."""
        future = self.submit(_noop)
        if future is None:
            return False
        done = anyio.Event()
        wake = _waker()
        future.add_done_callback(lambda _: wake(done.set))
        with anyio.move_on_after(timeout):
            await done.wait()
        return future.done() and not future.cancelled() and future.exception() is None

    async def wait_pending(self) -> None:
        """Wait until every operation submitted so far has ended (each within its timeout)."""
        with self._pending_lock:
            pending = list(self._pending)
        for future in pending:
            await self._wait(future)

    async def _wait(self, future: concurrent.futures.Future[Any]) -> bool:
        done = anyio.Event()
        wake = _waker()
        future.add_done_callback(lambda _: wake(done.set))
        # the operation has its own timeout on the Redis thread; this margin covers thread scheduling
        with anyio.move_on_after(self.timeout * 2 + 0.02):
            await done.wait()
        if not future.done():
            future.cancel()
            return False
        return True

    def close(self) -> None:
        """Stop the Redis thread and close its connections (blocks for a few milliseconds)."""
        with self._lock:
            self._closed = True
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        if portal is None or portal_cm is None or self._pid != os.getpid():
            return
        with contextlib.suppress(RuntimeError):
            portal.call(portal.stop, True)
        portal_cm.__exit__(None, None, None)

    def _ensure(self) -> Any:
        """The Redis thread's event loop, starting the thread on first use (None once closed)."""
        with self._lock:
            if self._closed:
                return None
            if self._pid != os.getpid():  # a forked child: the thread is not here, start anew
                # Keep the parent's portal alive: finalizing its context manager here would wait
                # forever for a thread that the fork did not copy.
                self._orphans.append((self._portal, self._portal_cm, self._client, self._group, self._loop))
                self._pid, self._portal, self._portal_cm, self._client = os.getpid(), None, None, None
                self._ready = self._reset = None
                self._pending = set()
                self._limiter = None
                self._key_locks = {}
            if self._portal is None:
                self._portal_cm = start_blocking_portal("asyncio", name="llmcomm-redis")
                self._portal = self._portal_cm.__enter__()
                self._portal.start_task(self._host)  # waits (once) until the loop's task group is up
            return self._loop

    async def _host(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            self._group, self._loop = group, asyncio.get_running_loop()
            # the callbacks run in this thread's context, never the submitter's (which may say "trio")
            self._context = contextvars.copy_context()
            group.start_soon(self._serve)
            if self._refresher is not None:
                group.start_soon(self._refresh_loop)
            task_status.started()
            await anyio.sleep_forever()

    def _spawn(self, op: Op[T], key: str, future: concurrent.futures.Future[T]) -> None:
        if future.set_running_or_notify_cancel():
            self._group.start_soon(self._settle_future, op, key, future)

    async def _settle_future(self, op: Op[T], key: str, future: concurrent.futures.Future[T]) -> None:
        try:
            result = await self._run(op, key)
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            future.set_result(result)

    # -- on the Redis thread ------------------------------------------------------------
    async def _serve(self) -> None:
        from coredis import Redis
        from coredis.retry import NoRetryPolicy

        while not self._closed:
            self._ready, self._reset = anyio.Event(), anyio.Event()
            client = Redis.from_url(
                self.url,
                stream_timeout=self.timeout,
                connect_timeout=CONNECT_TIMEOUT,
                retry_policy=NoRetryPolicy(),
                verify_version=False,
            )
            try:
                async with client:
                    with anyio.fail_after(CONNECT_TIMEOUT):
                        await client.ping()  # one connection ready before the first operation
                    self._client = client
                    self._ready.set()
                    await self._reset.wait()
            except Exception as exc:  # down, or a pool that broke: reconnect after the bypass
                self._failed(exc)
            finally:
                self._client = None
            await anyio.sleep(max(0.01, self._down_until - time.monotonic()))

    async def _run(self, op: Op[T], key: str = "") -> T:
        if not key:
            return await self._run_now(op)
        # tasks start in the order they were submitted; the lock (FIFO) keeps that order per key
        lock = self._key_locks.setdefault(key, anyio.Lock())
        async with lock:
            return await self._run_now(op)

    async def _run_now(self, op: Op[T]) -> T:
        try:
            ready = self._ready
            if ready is not None and not ready.is_set():
                with anyio.fail_after(CONNECT_TIMEOUT):  # the first operations wait for the connection
                    await ready.wait()
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(CONCURRENCY)
            async with self._limiter:
                with anyio.fail_after(self.timeout):
                    result = await op(_connected(self._client))
        except TimeoutError as exc:
            # one slow answer is a hiccup (a busy machine); several in a row are an outage
            self._slow += 1
            if self._slow >= SLOW_IN_A_ROW:
                self._failed(exc)
            raise
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._failed(exc)
            raise
        self._slow = 0
        if self._outage:
            self._outage = False
            log.info(
                "shared state: Redis at %s answers again; breakers and budgets are shared again", mask_url(self.url)
            )
        return result

    async def _refresh_loop(self) -> None:
        assert self._refresher is not None
        while True:
            await anyio.sleep(self.refresh_interval)
            if not self.available:
                continue
            for key, op in self._refresher():
                try:
                    await self._run(op, key)
                except Exception:  # counted by _run; the next round tries again
                    break

    def _failed(self, exc: BaseException) -> None:
        self._slow = 0
        self._down_until = time.monotonic() + self.bypass
        if self._reset is not None:
            self._reset.set()  # reconnect with a fresh pool once the bypass is over
        if not self._outage:
            self._outage = True
            log.warning(
                "shared state: Redis at %s failed or took longer than %g ms (%s); this process goes on with its "
                "own breaker and budgets and tries Redis again in %g s. Check that Redis runs and is reachable.",
                mask_url(self.url),
                self.timeout * 1000,
                type(exc).__name__,
                self.bypass,
            )


async def _noop(client: Any) -> None:
    return None


def _connected(client: Any) -> Any:
    if client is None:
        raise ConnectionError("not connected to Redis")
    return client


def _waker() -> Callable[[Callable[[], object]], None]:
    """A thread-safe way to run a function in the calling event loop (asyncio or trio)."""
    native: Any = anyio.lowlevel.current_token().native_token  # an asyncio loop or a TrioToken
    schedule: Callable[[Callable[[], object]], object] = (
        native.call_soon_threadsafe if hasattr(native, "call_soon_threadsafe") else native.run_sync_soon
    )

    def wake(fn: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):  # the loop is gone: nobody waits any more
            schedule(fn)

    return wake
