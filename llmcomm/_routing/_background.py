"""Tasks a client runs beside its callers: async hooks, and closing streams dropped unclosed.

`LLMCommunication` enters no task group (DESIGN Part 2, "Lifecycle"): a task group
held from open to close would make the user's code run inside it, and could not
be closed from another task. These few tasks are therefore the event loop's own
(an asyncio task, a trio system task), each in a cancel scope of its own, so the
client can stop them from whichever task closes it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any, final

import anyio

from ._guard import is_cancellation, loop_token

logger = logging.getLogger("llmcomm")


@final
class Background:
    """Starts tasks owned by no caller's task; `aclose()` ends them."""

    __slots__ = ("_closed", "_idle", "_running", "_scopes", "_tasks", "_token")

    def __init__(self) -> None:
        #: the event loop (asyncio) or trio token of the task that made this
        self._token = loop_token()
        self._scopes: set[anyio.CancelScope] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._idle: anyio.Event | None = None
        self._closed = False

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None) -> None:
        """Run `func(*args)` in a task of its own; safe from any thread (refused once closed)."""
        if self._closed:
            raise RuntimeError("llmcomm's background tasks are closed")
        token = self._token
        self._running += 1
        if isinstance(token, asyncio.AbstractEventLoop):
            if asyncio._get_running_loop() is token:
                self._spawn_asyncio(token, func, args, name)
            else:
                token.call_soon_threadsafe(self._spawn_asyncio, token, func, args, name)
            return
        import trio

        assert isinstance(token, trio.lowlevel.TrioToken)
        context = contextvars.copy_context()

        def spawn() -> None:
            trio.lowlevel.spawn_system_task(self._run, func, args, name=name, context=context)

        try:
            trio.lowlevel.current_trio_token()
            spawn()
        except RuntimeError:  # not in the trio thread
            token.run_sync_soon(spawn)

    def _spawn_asyncio(
        self,
        loop: asyncio.AbstractEventLoop,
        func: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        name: object,
    ) -> None:
        task = loop.create_task(self._run(func, args), name=None if name is None else str(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, func: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                if self._closed:
                    scope.cancel()
                try:
                    await func(*args)
                except BaseException as exc:
                    if is_cancellation(exc):
                        raise
                    logger.exception("an llmcomm background task failed")
        finally:
            self._scopes.discard(scope)
            self._running -= 1
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def aclose(self, grace: float) -> None:
        """Refuse new tasks, give running ones `grace` seconds, then cancel them and wait."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            for wait in (grace, grace):
                if self._running == 0:
                    return
                self._idle = anyio.Event()
                with anyio.move_on_after(wait):
                    await self._idle.wait()
                for scope in list(self._scopes):
                    scope.cancel()
