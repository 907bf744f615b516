"""The request id of the call running in the current context.

A `ContextVar`, so concurrent calls never see each other's id: the race task of a
call and the tasks it starts carry the call's id, and so does the caller's task
while `generate_response()` (or anything built on it) waits for the reply.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmcomm_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the llmcomm call running in this context, or None outside any call."""
    return _request_id.get()


@contextmanager
def request_id_scope(request_id: str) -> Iterator[None]:
    """Make `request_id` the current one until the block ends (in this task only)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def run_with_request_id(request_id: str, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Call `fn` in a copy of the current context in which `request_id` is current.

    Tasks that `fn` starts copy that context, so they carry the id, while the
    caller's own context is left as it was.
    """
    context = contextvars.copy_context()

    def run() -> _T:
        _request_id.set(request_id)
        return fn(*args, **kwargs)

    return context.run(run)
