"""The one blocking portal that every sync call of llmcomm runs on.

A native OS thread runs an asyncio event loop with an anyio `BlockingPortal`. The
first `SyncLLMCommunication` starts it (in the background: building a facade does
not wait for it) and the last one to close stops it, as
`anyio.from_thread.BlockingPortalProvider` does, with what the sync facade needs on top:

- no lock is held while the thread starts or while anything waits: a signal
  handler that makes a sync call while its own thread is inside one only waits
  for work that the portal thread does, never for the frame it interrupted;
- the thread is a real OS thread even under gevent's monkey-patching (`_monkey`);
  under eventlet the sync API raises `ConfigurationError` saying why;
- after `os.fork()` the child forgets the parent's portal (its thread does not
  exist there) and starts its own on first use; nothing of the parent's is touched;
- `SharedPortal.shutdown()` stops the portal whatever is still leased, with a
  bounded wait; it runs at interpreter exit, and a sync call after that, or while
  the interpreter is finalizing, is refused at once;
- `in_portal_thread()` lets blocking calls refuse to run on the portal's own
  loop, where they could only deadlock.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any, Final, final

import anyio
from anyio.from_thread import BlockingPortal

from ._errors import LLMException
from ._monkey import InlineExecutor, monkey_patched, original, prepare_patched_process, refuse_eventlet

#: the event loop the portal runs; connections opened for sync callers live on it
BACKEND: Final = "asyncio"
#: how long starting the portal thread may take (s)
START_TIMEOUT: Final = 10.0
#: how long stopping the portal thread may take before it is left to die with the process (s)
STOP_TIMEOUT: Final = 5.0

_log = logging.getLogger("llmcomm")

# A native thread-local: under monkey-patching `threading.local` would be per greenlet.
_thread_state: Any = original("_thread", "_local")()
#: bumped in every child process os.fork() makes; objects made before a fork compare it
_fork_epoch = 0
#: what a forked child inherited from the parent's portal, kept so no finalizer touches it
_LEFT_BEHIND: list[object] = []
_live_threads: set[int] = set()  # the portal threads of this process that have not returned yet


def fork_epoch() -> int:
    """How many forks separate this process from the one that imported llmcomm."""
    return _fork_epoch


def portal_thread_count() -> int:
    """How many portal threads of this process are still running (0 or 1, briefly 2 while one stops)."""
    return len(_live_threads)


def in_portal_thread() -> bool:
    """Whether the caller runs on the portal's event loop thread."""
    return getattr(_thread_state, "is_portal", False)


def check_not_portal_thread(what: str) -> None:
    """Refuse a blocking call on the portal's own thread, where it would deadlock."""
    if in_portal_thread():
        raise LLMException(
            f"{what} blocks until llmcomm's portal thread answers, and it was called from that very "
            "thread (from async code that llmcomm itself runs); await the LLMCommunication methods "
            "there instead of calling the sync API"
        )


def finalizing_error() -> LLMException:
    return LLMException(
        "the Python interpreter is finalizing (this sync call came from an atexit handler or a __del__ "
        "at exit, when Python has already shut down the thread pools a call needs), so llmcomm refuses "
        "it at once; make the call before the interpreter exits (at the end of main, or in your server's "
        "shutdown hook)"
    )


def exiting() -> bool:
    """Whether the interpreter is exiting: atexit handlers running, or finalization under way."""
    # threading._shutdown() sets _SHUTTING_DOWN before the atexit handlers run (Python >= 3.9).
    return sys.is_finalizing() or SHARED.exited or bool(getattr(threading, "_SHUTTING_DOWN", False))


def refuse_when_finalizing() -> None:
    """Raise `LLMException` at once when the interpreter is exiting, where a sync call would hang."""
    if exiting():
        raise finalizing_error()


@final
class _Running:
    """A portal thread that is up; `ended` is released when the thread has returned."""

    __slots__ = ("_background", "_loop", "ended", "portal")

    def __init__(self, portal: BlockingPortal, ended: Any) -> None:
        self.portal = portal
        self.ended = ended
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[None]] = set()

    def run_soon(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `func` on the portal without waiting, from any thread (the portal's too).

        `func` must not raise. It runs until it returns or the portal stops, which cancels it.
        """
        self._loop.call_soon_threadsafe(self._spawn, func)

    def _spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # A plain asyncio task: cancelled before its first step, its coroutine is closed
        # cleanly (a task group would leave it "never awaited").
        task = self._loop.create_task(func())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel_background(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)

    def alive(self) -> bool:
        return bool(self.ended.locked())

    def join(self, timeout: float) -> bool:
        if self.ended.acquire(timeout=timeout):
            self.ended.release()
            return True
        return False


@final
class Lease:
    """A claim on the portal; `wait()` for it to run, hand it back with `SharedPortal.release()`."""

    __slots__ = ("released", "starting")

    def __init__(self, starting: Future[_Running]) -> None:
        self.starting = starting
        self.released = False

    def wait(self, timeout: float = START_TIMEOUT) -> BlockingPortal:
        """The running portal, once its thread is up (at most `timeout` s; `LLMException` after)."""
        try:
            return self.starting.result(timeout).portal
        except FutureTimeout:
            raise LLMException(
                f"llmcomm's portal thread did not start within {timeout:g} s; the process may be out of "
                "threads or its interpreter may be exiting"
            ) from None
        except LLMException:
            raise
        except Exception as exc:
            raise LLMException(f"llmcomm's portal thread could not start ({type(exc).__name__}: {exc})") from exc

    @property
    def portal(self) -> BlockingPortal:
        """The running portal (the lease must have been waited for)."""
        return self.starting.result(0).portal


def _spawn(backend: str, starting: Future[_Running]) -> None:
    """Start the portal thread; it fulfils `starting`. Does not wait for it."""
    ended = original("_thread", "allocate_lock")()
    ended.acquire()

    async def serve() -> None:
        if monkey_patched():
            asyncio.get_running_loop().set_default_executor(InlineExecutor())
        async with BlockingPortal() as portal:
            running = _Running(portal, ended)
            starting.set_result(running)
            await portal.sleep_until_stopped()
        await running.cancel_background()

    def main() -> None:
        _thread_state.is_portal = True
        _live_threads.add(id(ended))
        try:
            anyio.run(serve, backend=backend)
        except BaseException as exc:
            if not starting.done():
                starting.set_exception(exc)
            else:  # a thread cannot raise to anyone: say it at least
                _log.error("llmcomm's portal event loop ended with an error: %r", exc)
        finally:
            _live_threads.discard(id(ended))
            ended.release()

    # A raw thread: threading.Thread.start() waits on an Event whose lock a signal handler
    # could find held by the frame it interrupted, and under monkey-patching it is a greenlet.
    original("_thread", "start_new_thread")(main, ())


def _stop(running: _Running, *, wait: bool, timeout: float) -> bool:
    """Cancel what runs on the portal and end its thread; True when the thread is gone."""
    # Asked without waiting for an answer (the loop may be this very thread, or busy), so
    # only the join below blocks, bounded by `timeout`.
    with contextlib.suppress(RuntimeError):  # the loop is closed already: the thread has ended
        running.run_soon(partial(running.portal.stop, True))
    if wait and not in_portal_thread() and not running.join(timeout):
        _log.warning("llmcomm's portal thread did not stop within %g s; leaving it to exit with the process", timeout)
        return False
    return not in_portal_thread() and wait


def _stop_when_up(starting: Future[_Running]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        _stop(starting.result(), wait=False, timeout=STOP_TIMEOUT)


@final
class SharedPortal:
    """A portal thread started on first lease and stopped when the last lease is returned."""

    def __init__(self, backend: str = BACKEND) -> None:
        self._backend = backend
        # Held only for a few assignments, never while waiting; reentrant, so a signal
        # handler that lands inside one of them does not deadlock its own thread.
        self._lock = threading.RLock()
        self._starting: Future[_Running] | None = None
        self._leases = 0
        self._exit_hook = False
        self.exited = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SharedPortal {state} leases={self._leases}>"

    def _current(self) -> _Running | None:
        starting = self._starting
        if starting is None or not starting.done() or starting.cancelled() or starting.exception() is not None:
            return None
        return starting.result()

    @property
    def running(self) -> bool:
        """Whether the portal thread is up."""
        current = self._current()
        return current is not None and current.alive()

    @property
    def leases(self) -> int:
        """How many leases are out."""
        return self._leases

    def lease(self) -> Lease:
        """A lease on the portal, starting its thread (without waiting for it) when none runs."""
        refuse_when_finalizing()
        if self._starting is None:
            refuse_eventlet()
            prepare_patched_process()
        with self._lock:
            starting = self._starting
            if starting is None or (starting.done() and starting.exception() is not None):
                starting = Future()
                _spawn(self._backend, starting)
                self._starting = starting
                self._leases = 0
                if not self._exit_hook:
                    # Registered on first start, so importing llmcomm changes nothing.
                    atexit.register(self._at_exit)
                    self._exit_hook = True
            self._leases += 1
            return Lease(starting)

    def acquire(self, timeout: float = START_TIMEOUT) -> Lease:
        """A lease on the running portal, waiting (at most `timeout` s) for its thread to start."""
        lease = self.lease()
        try:
            lease.wait(timeout)
        except BaseException:
            self.release(lease, wait=False)
            raise
        return lease

    def current(self, lease: Lease) -> bool:
        """Whether `lease` is on the portal of now (not one that was shut down)."""
        return lease.starting is self._starting and not lease.released

    def release(self, lease: Lease, *, wait: bool = True) -> None:
        """Hand `lease` back; the last one stops the portal (waiting for it when `wait`)."""
        with self._lock:
            if lease.released:
                return
            lease.released = True
            if lease.starting is not self._starting:
                return  # its portal was shut down already
            self._leases -= 1
            if self._leases:
                return
            starting, self._starting = lease.starting, None
        if starting.done():
            if self._current_of(starting):
                _stop(starting.result(), wait=wait, timeout=STOP_TIMEOUT)
        else:
            starting.add_done_callback(_stop_when_up)

    @staticmethod
    def _current_of(starting: Future[_Running]) -> bool:
        return not starting.cancelled() and starting.exception() is None

    def serves(self, portal: BlockingPortal) -> bool:
        """Whether `portal` is the running one (a caller waiting on it may keep waiting)."""
        current = self._current()
        return current is not None and current.portal is portal and current.alive()

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the portal now, cancelling whatever still runs on it.

        Every call still running on it is cancelled, which closes its connections
        and child processes; every open lease becomes stale. Returns True when the
        portal thread has ended (or none was running).
        """
        with self._lock:
            starting, self._starting = self._starting, None
            self._leases = 0
        if starting is None:
            return True
        if not starting.done():
            starting.add_done_callback(_stop_when_up)
            return False
        if not self._current_of(starting):
            return True
        return _stop(starting.result(), wait=True, timeout=timeout)

    def _at_exit(self) -> None:
        self.exited = True
        self.shutdown()

    def _after_fork_in_child(self) -> None:
        # The parent's portal thread does not exist here, and a lock may have been held by a
        # thread that does not either: forget both (kept referenced, so nothing finalizes them).
        _LEFT_BEHIND.append((self._starting, self._lock))
        self._lock = threading.RLock()
        self._starting = None
        self._leases = 0


SHARED: Final = SharedPortal()  # the portal every `SyncLLMCommunication` of this process shares


#: how long os.fork() waits for a portal thread that is still starting (s)
FORK_WAIT: Final = 5.0


#: work started in the background on the portal (its thread's start, connections being opened)
_in_flight: set[Future[Any]] = set()


def track(future: Future[Any]) -> None:
    """Let os.fork() wait (a little) for `future`, background work that may be importing modules."""
    _in_flight.add(future)
    future.add_done_callback(_in_flight.discard)


def _before_fork() -> None:
    # Forked mid-import, the child would see half-imported modules: let a starting portal,
    # and connections being opened in the background, finish first.
    if in_portal_thread():
        return
    starting = SHARED._starting
    pending = [*_in_flight, *([starting] if starting is not None else [])]
    with contextlib.suppress(Exception):
        concurrent.futures.wait(pending, FORK_WAIT)
    for future in pending:  # what did not finish in time (a portal shut down under it) is not waited for again
        if not future.done():
            _in_flight.discard(future)


def _after_fork_in_child() -> None:
    global _fork_epoch
    _fork_epoch += 1
    _live_threads.clear()
    _in_flight.clear()
    SHARED._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
