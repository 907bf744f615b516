"""What the race does about code it does not control: providers and observers (hooks).

A provider may raise anything (a `BaseException` subclass, `GeneratorExit`, a stray
`CancelledError`), an observer or hook too, and a provider may run without ever
yielding to the event loop. None of that may take down the caller's task, hang
it, or leak as anything but an `LLMException`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from .._errors import LLMException, ProviderUnavailableError

logger = logging.getLogger("llmcomm")

#: how long closing one provider iterator may take before it is given up on (s)
CLOSE_GRACE = 2.0


def is_cancellation(exc: BaseException) -> bool:
    """Whether `exc` is the event loop cancelling this task (not a provider's stray raise).

    A group made only of cancellations is one too: trio's happy-eyeballs connect
    (`trio.open_tcp_stream`, under httpcore2) raises the cancellation of its
    nursery that way, and the enclosing cancel scope catches it as such.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in exc.exceptions)
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task() if asyncio._get_running_loop() is not None else None
        return task is not None and task.cancelling() > 0
    try:
        import trio
    except ImportError:  # pragma: no cover - trio is only needed to run on trio
        return False
    return isinstance(exc, trio.Cancelled)


def passes_through(exc: BaseException) -> bool:
    """Whether `exc` must propagate unchanged: a real cancellation, or Ctrl-C."""
    return isinstance(exc, KeyboardInterrupt) or is_cancellation(exc)


def contract_error(provider: str, exc: BaseException) -> LLMException:
    """The typed error for a provider that raised something other than an `LLMException`."""
    error = ProviderUnavailableError(
        f"provider raised {type(exc).__name__}: {exc}; a provider must raise only LLMException, fix the provider",
        provider=provider,
    )
    error.__cause__ = exc
    return error


async def aclose_quietly(iterator: AsyncIterator[Any] | None) -> None:
    """Close a provider's iterator (its connection or process) within `CLOSE_GRACE`, shielded."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE):
        try:
            await aclose()
        except BaseException as exc:  # closing must not fail the caller
            if isinstance(exc, KeyboardInterrupt):
                raise
            logger.debug("closing a provider's stream failed: %r", exc)


def notify(fn: Callable[..., None], *args: Any) -> None:
    """Tell an observer; whatever it raises is logged, and the call goes on."""
    try:
        fn(*args)
    except BaseException as exc:
        if passes_through(exc):
            raise
        logger.exception("an observer or hook raised %s in %s; the call goes on", type(exc).__name__, fn)


def race_clock() -> Callable[[], float]:
    """`anyio.current_time`, resolved once for the running backend.

    The same clock (the asyncio loop's `time()`, trio's `current_time()`, a trio
    `MockClock` included), read without looking the backend up on every reading:
    a call reads it about ten times.
    """
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop.time
    try:
        import trio

        trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return anyio.current_time
    return trio.current_time


def loop_token() -> object | None:
    """An identity for the running event loop (asyncio loop or trio run), None outside any."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    try:
        import trio

        return trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None
