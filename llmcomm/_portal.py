"""The one blocking portal that every sync call of llmcomm runs on.

A daemon thread runs an asyncio event loop with an anyio `BlockingPortal`. The
first `SyncLLMCommunication` that needs it starts it and the last one to close
stops it, as `anyio.from_thread.BlockingPortalProvider` does, with what the sync
facade needs on top:

- a lease can be given back without waiting for the thread (from a finalizer,
  or from the portal thread itself, where joining would deadlock);
- `SharedPortal.shutdown()` stops the portal whatever is still leased, with a
  bounded wait; it runs at interpreter exit, so open connections are closed then;
- `in_portal_thread()` lets blocking calls refuse to run on the portal's own
  loop, where they could only deadlock.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from concurrent.futures import Future
from typing import Final, final

import anyio
from anyio.from_thread import BlockingPortal

from ._errors import LLMException

#: the event loop the portal runs; connections opened for sync callers live on it
BACKEND: Final = "asyncio"
#: how long starting the portal thread may take
START_TIMEOUT: Final = 10.0
#: how long stopping the portal thread may take before it is left to die with the process
STOP_TIMEOUT: Final = 5.0

_log = logging.getLogger("llmcomm")
_thread_state = threading.local()


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


@final
class Lease:
    """A claim on the running portal; hand it back with `SharedPortal.release()`."""

    __slots__ = ("generation", "portal", "released")

    def __init__(self, portal: BlockingPortal, generation: int) -> None:
        self.portal = portal
        self.generation = generation
        self.released = False


@final
class _Running:
    __slots__ = ("portal", "thread")

    def __init__(self, portal: BlockingPortal, thread: threading.Thread) -> None:
        self.portal = portal
        self.thread = thread


def _start(backend: str) -> _Running:
    ready: Future[BlockingPortal] = Future()

    async def serve() -> None:
        async with BlockingPortal() as portal:
            ready.set_result(portal)
            await portal.sleep_until_stopped()

    def main() -> None:
        _thread_state.is_portal = True
        try:
            anyio.run(serve, backend=backend)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:  # a thread cannot raise to anyone: say it at least
                _log.error("llmcomm's portal event loop ended with an error: %r", exc)

    thread = threading.Thread(target=main, name="llmcomm-portal", daemon=True)
    thread.start()
    return _Running(ready.result(START_TIMEOUT), thread)


def _stop(running: _Running, *, wait: bool, timeout: float) -> bool:
    """Cancel what runs on the portal and end its thread; True when the thread is gone."""
    if running.thread is threading.current_thread():
        # A loop cannot wait for itself: a helper thread asks it to stop.
        helper = threading.Thread(target=_stop, args=(running,), kwargs={"wait": False, "timeout": timeout})
        helper.daemon = True
        helper.start()
        return False
    with contextlib.suppress(RuntimeError):  # already stopping
        running.portal.start_task_soon(running.portal.stop, True)
    if wait:
        running.thread.join(timeout)
        if running.thread.is_alive():
            _log.warning(
                "llmcomm's portal thread did not stop within %g s; leaving it to exit with the process", timeout
            )
            return False
    return True


@final
class SharedPortal:
    """A portal thread started on first lease and stopped when the last lease is returned."""

    def __init__(self, backend: str = BACKEND) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._leases = 0
        self._generation = 0
        self._exit_hook = False

    def __repr__(self) -> str:
        state = "running" if self._running is not None else "stopped"
        return f"<SharedPortal {state} leases={self._leases}>"

    @property
    def running(self) -> bool:
        """Whether the portal thread is up."""
        return self._running is not None

    @property
    def leases(self) -> int:
        """How many leases are out."""
        return self._leases

    def acquire(self) -> Lease:
        """A lease on the portal, starting its thread when none runs."""
        with self._lock:
            if self._running is None:
                self._running = _start(self._backend)
                self._generation += 1
                if not self._exit_hook:
                    # Registered on first start, so importing llmcomm changes nothing.
                    atexit.register(self.shutdown)
                    self._exit_hook = True
            self._leases += 1
            return Lease(self._running.portal, self._generation)

    def release(self, lease: Lease, *, wait: bool = True) -> None:
        """Hand `lease` back; the last one stops the portal (waiting for it when `wait`)."""
        with self._lock:
            if lease.released:
                return
            lease.released = True
            if lease.generation != self._generation or self._running is None:
                return  # its portal was shut down already
            self._leases -= 1
            if self._leases:
                return
            running, self._running = self._running, None
        _stop(running, wait=wait, timeout=STOP_TIMEOUT)

    def serves(self, portal: BlockingPortal) -> bool:
        """Whether `portal` is the running one (a caller waiting on it may keep waiting)."""
        running = self._running
        return running is not None and running.portal is portal and running.thread.is_alive()

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the portal now, cancelling whatever still runs on it.

        Every call still running on it is cancelled, which closes its connections
        and child processes; every open lease becomes stale. Returns True when the
        portal thread has ended (or none was running).
        """
        with self._lock:
            running, self._running = self._running, None
            self._leases = 0
        if running is None:
            return True
        return _stop(running, wait=True, timeout=timeout)


#: the portal every `SyncLLMCommunication` of this process shares
SHARED: Final = SharedPortal()
