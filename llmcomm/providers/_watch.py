"""The deadline of a served stream, kept at the network read instead of around each batch.

A call reads its winner's reply one batch per `next_batch()`, under the nearest of
the idle watchdog, the call's deadline and the attempt's timeout. With the real
wire's framing (one HTTP chunk per SSE event) a batch is one event, and a cancel
scope entered around every batch costs about as much as the floor spends on the
whole event (7.7 us of 11 on asyncio, benchmarks/README.md). Yet almost every
event is already in the HTTP parser's buffer: only about one batch in two
hundred waits on the network.

So the deadline moves to where the waiting happens. `WatchedBackend` wraps
httpcore2's network backend in llmcomm's own client; each connection it makes
is a `WatchedStream`. `send()` attaches the attempt's `ReadWatch` to the stream
its response is read from; when the call serves the reply it sets the watch's
deadline, and each network read enters a cancel scope with that deadline only
when it actually runs. A close from another task cancels that scope, or marks
the watch so the next read stops at once. A client llmcomm did not build (a
caller's own `http_client`) has no watched streams; the call then keeps its
scope around each batch, with the same deadlines and errors.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, final

import anyio
import httpx2

if TYPE_CHECKING:  # httpcore2 imports trio when it can: only a client built here needs it
    import httpcore2

#: the watch of the attempt now sending (set by whoever runs the attempt; None: unwatched)
READ_WATCH: ContextVar[ReadWatch | None] = ContextVar("llmcomm_read_watch", default=None)


class ReadStopped(Exception):
    """A watched read stopped at its deadline or by a close; the call reports why."""


@final
class ReadWatch:
    """One response's read deadline, and the way to stop its reads from another task.

    The reader arms it for one batch (`armed`, and `deadline`, which may be inf when
    no timeout applies) and disarms it after; only a read that waits on the network
    enters a cancel scope. `expired` says whether a read stopped, at the deadline or
    by `cancel()`.
    """

    __slots__ = ("armed", "attached", "deadline", "expired", "scope", "stopped")

    def __init__(self) -> None:
        #: whether `send()` attached this watch to a watched stream (else the reader scopes itself)
        self.attached = False
        #: whether a batch is being read under it (disarmed: the transport's own timeout rules)
        self.armed = False
        #: the reads' deadline on the race's clock, while armed
        self.deadline = math.inf
        self.expired = False
        self.stopped = False
        #: the scope of the read waiting right now, if any
        self.scope: anyio.CancelScope | None = None

    def cancel(self) -> None:
        """Stop the waiting read, or the next one; safe from any task of the event loop."""
        self.stopped = True
        if self.scope is not None:
            self.scope.cancel()


@final
class WatchedStream:
    """A connection whose reads honour the `ReadWatch` attached to it (see the module docstring).

    An `httpcore2.AsyncNetworkStream` by its methods (httpcore2's are interfaces).
    """

    __slots__ = ("_stream", "watch")

    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream
        self.watch: ReadWatch | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        watch = self.watch
        if watch is None or not watch.armed:
            return await self._stream.read(max_bytes, timeout)
        with anyio.CancelScope(deadline=watch.deadline) as scope:
            watch.scope = scope
            if watch.stopped:
                scope.cancel()
            try:
                return await self._stream.read(max_bytes, timeout)
            finally:
                watch.scope = None
        watch.expired = True
        raise ReadStopped("the read's deadline passed, or the call was closed")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> WatchedStream:
        return WatchedStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


@final
class WatchedBackend:
    """httpcore2's network backend, each connection it opens a `WatchedStream`.

    An `httpcore2.AsyncNetworkBackend` by its methods.
    """

    __slots__ = ("_backend",)

    def __init__(self, backend: httpcore2.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> WatchedStream:
        return WatchedStream(await self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> WatchedStream:
        return WatchedStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def watchable(provider: object) -> bool:
    """Whether `provider`'s batches come straight from one response, read as it arrives.

    Only then may a call keep its deadline at that response's network reads: the
    classes that say so themselves (`watchable = True` in their own body; a
    subclass, or a user's provider wrapping one, may read otherwise and is scoped
    per batch).
    """
    return type(provider).__dict__.get("watchable") is True


def watch_connections(client: httpx2.AsyncClient) -> int:
    """Give every connection pool of `client` a `WatchedBackend`; the number of pools changed.

    httpx2 does not take a network backend, so this sets the one attribute
    httpcore2's pools read when they open a connection. A pool of another shape
    is left alone (its reads are then unwatched, and the call scopes each batch);
    tests/test_read_watch.py fails if no pool of a default client is watched.
    """
    import httpcore2  # httpx2's transports have imported it already

    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    changed = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore2.AsyncNetworkBackend):  # a WatchedBackend is not one: no double wrap
            pool._network_backend = WatchedBackend(backend)  # type: ignore[union-attr]
            changed += 1
    return changed


def attach(response: httpx2.Response) -> WatchedStream | None:
    """Attach the sending attempt's watch (`READ_WATCH`, or none) to the stream `response` is read from.

    The stream when it is a watched one: whoever attached calls `detach` when the
    response ends, so a pooled connection carries no stale watch.
    """
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, WatchedStream):
        return None
    stream.watch = watch = READ_WATCH.get()
    if watch is not None:
        watch.attached = True
    return stream


def detach(stream: WatchedStream) -> None:
    """End what `attach` began: the connection goes back to the pool without the watch."""
    if stream.watch is not None:
        stream.watch.attached = False
        stream.watch = None
