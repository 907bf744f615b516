"""`LLMStream`: the consumer's end of one call.

The call's race runs inside the stream's first `__anext__`, in the consumer's
task; after it the consumer reads the winner's batches directly (one network
read each), with no task, buffer or cancel scope held between two `__anext__`
calls. So a stream may be iterated, broken out of and closed from any task, also
when a framework closes the user's async generator that wraps it from another
task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import final

from ._errors import LLMException
from ._routing import Call
from ._structured_call import with_parsed
from ._types import LLMResponse, StreamChunk


@final
class LLMStream:
    """An async iterator of `StreamChunk`s and an async context manager.

    The request starts on the first iteration. Leaving the `async with` block,
    breaking out of it, cancellation or an error closes the upstream request at
    once. `response` holds the final `LLMResponse` once the stream is done; after
    a failure, iteration raises the call's `LLMException`.
    """

    __slots__ = ("_call", "_chunks", "_closed", "_start", "response")

    def __init__(self, start: Callable[[], Call]) -> None:
        self._start = start
        self._call: Call | None = None
        self._closed = False
        # What is left of the batch (the chunks of one network read) being handed out.
        self._chunks: Iterator[StreamChunk] = iter(())
        self.response: LLMResponse | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._call else "not started"
        return f"<LLMStream {state}>"

    async def __aenter__(self) -> LLMStream:
        self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> LLMStream:
        return self

    async def __anext__(self) -> StreamChunk:
        chunk = next(self._chunks, None)
        if chunk is not None:
            return chunk
        return await self._next_batch()

    async def _next_batch(self) -> StreamChunk:
        call = self._call or self._begin()
        while not self._closed:
            batch = await call.next_batch()
            if batch is None:
                self._closed = True
                self.response = with_parsed(call.request, call.response)  # a response_format is checked at the end
                break
            self._chunks = chunks = iter(batch)
            chunk = next(chunks, None)
            if chunk is not None:
                return chunk
        raise StopAsyncIteration

    def _begin(self) -> Call:
        if self._call is None:
            if self._closed:
                raise LLMException("this stream was closed; start a new one with generate_stream()")
            self._call = self._start()
        return self._call

    async def aclose(self) -> None:
        """Stop the call and close its upstream connection (idempotent)."""
        self._chunks = iter(())
        call = self._call
        if self._closed and (call is None or call.finished):
            return
        self._closed = True
        if call is None:
            return
        await call.aclose()
        if self.response is None:
            self.response = call.response

    async def text(self) -> str:
        """Read the rest of the stream and return its text."""
        parts = [chunk.text async for chunk in self]
        return "".join(parts)

    def __del__(self) -> None:
        # A stream dropped without being closed must not keep its upstream open.
        call = self._call
        if call is not None and call.running:
            with contextlib.suppress(Exception):  # a finalizer may run outside the event loop
                call.manager.reap(call)
