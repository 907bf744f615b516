"""Living with gevent's monkey-patching (and refusing eventlet's) for llmcomm's portal thread.

The portal must be a native OS thread: asyncio keeps one running loop per OS thread, so a
portal that were a greenlet would break `asyncio.run()` in every other greenlet of the
process. Whether `threading` is patched is looked up at call time, so all of this holds
whether llmcomm was imported before or after the patching.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, Final

from ._errors import ConfigurationError

#: modules whose import runs a subprocess (trio's `ctypes.util.find_library`): under gevent that only
#: works in the thread of gevent's default loop, so they are imported there before the portal needs them
_IMPORT_FIRST: Final = ("httpcore2", "trio")


def monkey_patched() -> bool:
    """Whether gevent has patched `threading` in this process."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    return gevent_monkey is not None and bool(gevent_monkey.is_module_patched("threading"))


def refuse_eventlet() -> None:
    """Raise `ConfigurationError` in a process eventlet has monkey-patched, where the portal cannot work."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        raise ConfigurationError(
            "llmcomm's sync API cannot run in a process eventlet has monkey-patched: eventlet's locks cannot "
            "be released from another OS thread (the portal thread's replies would never arrive) and its "
            "green sockets break trio, which the HTTP stack imports; run this process with gevent "
            "(gunicorn -k gevent) or threads (-k gthread), or use the async API on an asyncio loop"
        )


def prepare_patched_process() -> None:
    """Under gevent, import in the caller's thread what the portal thread could not."""
    if monkey_patched():
        for name in _IMPORT_FIRST:
            with contextlib.suppress(Exception):  # what cannot be imported fails again, reported, on opening
                importlib.import_module(name)


@contextlib.contextmanager
def hub_kept_awake() -> Iterator[None]:
    """Under gevent, let a greenlet wait for the portal thread even when nothing else is scheduled.

    The portal thread wakes the waiter across threads, but gevent's hub raises `LoopExit` at
    once when it has nothing of its own to wait for; a repeating timer gives it something.
    """
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is None or not gevent_monkey.is_module_patched("threading"):
        yield
        return
    timer = importlib.import_module("gevent").get_hub().loop.timer(1.0, 1.0)
    timer.start(lambda: None)
    try:
        yield
    finally:
        timer.close()


def original(module: str, name: str) -> Any:
    """`module.name` as it was before gevent monkey-patched it (itself when unpatched).

    Looked up at call time, so it holds whether llmcomm was imported before or after the patching.
    """
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        # gevent builds its hub lazily, importing as it goes; two threads doing that at once
        # deadlock on gevent's patched import lock, so the caller's hub exists before ours.
        importlib.import_module("gevent").get_hub()
        return gevent_monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """The portal loop's default executor under gevent: runs each function at once, in place.

    There a pool's "threads" would be greenlets of the portal thread, which the interpreter
    joins at exit from the main thread and waits for forever.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future
