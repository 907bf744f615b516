"""The loopback HTTP/1.1 server behind :class:`FakeServer`."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.from_thread
import anyio.lowlevel
import orjson
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup

from . import _wire
from ._connection import Connection, Outcome, abort
from ._http import ParsedRequest
from ._record import RecordedRequest
from ._reply import Api, Reply, plan_reply
from ._script import Script

__all__ = ["FakeServer"]

_log = logging.getLogger("llmcomm.testing")

_API_PATHS: Final[dict[str, Api]] = {
    "/v1/messages": "anthropic",
    "/v1/chat/completions": "openai",
}
_THREAD_START_TIMEOUT: Final = 10.0
_THREAD_JOIN_TIMEOUT: Final = 5.0
# Off-loop waiters (sync mode) cannot use the loop's events, so they poll.
_POLL_INTERVAL: Final = 0.005
_ACCEPT_RETRY: Final = 0.01


def _loopback_host(host: str) -> str:
    if host == "localhost":
        # "localhost" may resolve to two addresses with different ephemeral ports.
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback IP address, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be a loopback address, got {host!r}")
    return str(address)


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


class FakeServer:
    """A loopback fake of the Anthropic Messages and OpenAI Chat Completions APIs.

    ``async with FakeServer() as server`` serves in the current event loop
    (asyncio or trio); plain ``with FakeServer() as server`` serves from an
    event loop in a daemon thread, for code that is not async.  Each API
    request is answered by a :class:`Script`: the route for its model if any,
    else the next queued script, else :attr:`default`.

    The async ``wait_*`` methods must be awaited in an event loop; in the
    threaded form they poll, so any loop works.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Script | None = None,
        backend: str = "asyncio",
    ) -> None:
        """Configure the server; nothing is bound until it is entered.

        Args:
            host: Loopback address to bind.
            port: Port to bind; 0 picks a free one.
            default: Script for requests when no route matches and the queue is empty.
            backend: Event loop backend of the threaded (sync) form.
        """
        self._host = _loopback_host(host)
        self._requested_port = port
        self._backend = backend
        self.default: Script = default if default is not None else Script()
        """Script used when no route matches and the queue is empty."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order."""
        self.errors: list[BaseException] = []
        """Unexpected errors met while serving (accept failures, handler bugs); normally empty."""
        self._queue: deque[Script] = deque()
        self._routes: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._request_count = 0
        self._open = 0
        self._connection_ids = 0
        self._serial = 0
        self._closed_connections: set[int] = set()
        self._port: int | None = None
        self._stack: AsyncExitStack | None = None
        self._changed: anyio.Event | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._stop: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("FakeServer is not running")
        return self._port

    @property
    def _origin(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``anthropic.AsyncAnthropic(base_url=...)``."""
        return self._origin

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.AsyncOpenAI(base_url=...)``."""
        return f"{self._origin}/v1"

    # -- scripting -----------------------------------------------------------

    def enqueue(self, *scripts: Script) -> None:
        """Queue scripts, consumed first-in first-out, one per unrouted API request."""
        with self._lock:
            self._queue.extend(scripts)

    def route(self, *, model: str, script: Script) -> None:
        """Answer every request whose JSON ``model`` equals ``model`` with ``script``."""
        with self._lock:
            self._routes[model] = script

    def reset(self) -> None:
        """Forget recorded requests, queued scripts and routes."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._routes.clear()
            self._request_count = 0

    def _choose(self, model: str | None) -> Script:
        with self._lock:
            if model is not None and model in self._routes:
                return self._routes[model]
            if self._queue:
                return self._queue.popleft()
            return self.default

    # -- observation ---------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Number of POSTs received on the two API endpoints."""
        return self._request_count

    @property
    def open_connections(self) -> int:
        """TCP connections currently open."""
        return self._open

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def _wait_until(self, condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
        try:
            with anyio.fail_after(timeout):
                while not condition():
                    changed = self._changed
                    if changed is not None and self._loop_thread == threading.get_ident():
                        await changed.wait()
                    else:
                        await anyio.sleep(_POLL_INTERVAL)
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what()}") from None

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        """Wait until :attr:`request_count` is at least ``n``; raise ``TimeoutError`` otherwise."""
        await self._wait_until(
            lambda: self._request_count >= n,
            timeout,
            lambda: f"{n} API requests (got {self._request_count})",
        )

    async def wait_closed(self, request: RecordedRequest, timeout: float = 1.0) -> None:
        """Wait until the connection that carried ``request`` is closed.

        Returns once the client closed it (``client_closed_at`` is set) or the
        connection ended for any other reason; raises ``TimeoutError`` otherwise.
        """
        await self._wait_until(
            lambda: request.client_closed_at is not None or request.connection_id in self._closed_connections,
            timeout,
            lambda: f"connection {request.connection_id} to close",
        )

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Bind and start serving in the current event loop."""
        if self._stack is not None:
            raise RuntimeError("FakeServer is already running")
        async with AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._requested_port)
            stack.push_async_callback(listener.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            self._changed = anyio.Event()
            self._loop_thread = threading.get_ident()
            self._port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
            for single in listener.listeners:
                if not isinstance(single, SocketListener):
                    raise TypeError(f"unexpected listener {single!r}")
                task_group.start_soon(self._accept_loop, single, task_group)
            stack.callback(task_group.cancel_scope.cancel)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving: cancel every connection and close the listener."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._port = None
            self._changed = None
            self._loop_thread = None

    def __enter__(self) -> Self:
        """Start serving from an event loop in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("FakeServer is already running")
        ready = threading.Event()
        self._thread_error = None

        def main() -> None:
            try:
                anyio.run(self._serve_in_thread, ready, backend=self._backend)
            except BaseException as error:
                self._thread_error = error
            finally:
                ready.set()

        thread = threading.Thread(target=main, name="llmcomm-testing-server", daemon=True)
        thread.start()
        if not ready.wait(_THREAD_START_TIMEOUT) or self._thread_error is not None:
            thread.join(_THREAD_JOIN_TIMEOUT)
            raise RuntimeError("FakeServer thread failed to start") from self._thread_error
        self._thread = thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server thread and wait for it to finish."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        stop, token = self._stop, self._token
        if stop is not None and token is not None:
            with suppress(anyio.RunFinishedError):
                anyio.from_thread.run_sync(stop.set, token=token)
        thread.join(_THREAD_JOIN_TIMEOUT)
        self._stop = self._token = None

    async def _serve_in_thread(self, ready: threading.Event) -> None:
        async with self:
            self._stop = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            ready.set()
            await self._stop.wait()

    async def _accept_loop(self, listener: SocketListener, task_group: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as error:
                # Running out of file descriptors must not end the server.
                self.errors.append(error)
                await anyio.sleep(_ACCEPT_RETRY)
                continue
            task_group.start_soon(self._serve_connection, stream)

    # -- connections ---------------------------------------------------------

    async def _serve_connection(self, stream: SocketStream) -> None:
        self._connection_ids += 1
        connection_id = self._connection_ids
        self._open += 1
        outcome: Outcome = "gone"
        try:
            connection = Connection(stream, connection_id, record=self._record, plan=self._plan, notify=self._notify)
            outcome = await connection.converse()
        except Exception as error:
            _log.exception("fake server connection %d failed", connection_id)
            self.errors.append(error)
        finally:
            self._open -= 1
            self._closed_connections.add(connection_id)
            self._notify()
            with anyio.CancelScope(shield=True):
                if outcome == "abort":
                    await abort(stream)
                else:
                    await stream.aclose()

    def _record(self, parsed: ParsedRequest, connection_id: int) -> RecordedRequest:
        body = _parse_json(parsed.body)
        fields = body if isinstance(body, dict) else {}
        model = fields.get("model")
        api = _API_PATHS.get(parsed.path, "other")
        record = RecordedRequest(
            method=parsed.method,
            path=parsed.path,
            query=parsed.query,
            headers=parsed.headers,
            body=body,
            api=api,
            stream=fields.get("stream") is True,
            model=model if isinstance(model, str) else None,
            connection_id=connection_id,
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)
            if api != "other" and parsed.method == "POST":
                self._request_count += 1
        self._notify()
        return record

    def _plan(self, parsed: ParsedRequest, record: RecordedRequest) -> Reply:
        api = record.api
        if api == "other" or parsed.method != "POST":
            status = 404 if api == "other" else 405
            kind = "not_found_error" if status == 404 else "invalid_request_error"
            message = f"{parsed.method} {parsed.path} is not served by llmcomm.testing"
            body = _wire.plain_error_body(kind, message)
            return Reply(status, [("content-type", "application/json")], (), (body,), "length")
        if not isinstance(record.body, dict):
            script = Script(status=400, error_message="request body must be a JSON object")
        else:
            script = self._choose(record.model)
            record.script = script
        self._serial += 1
        return plan_reply(api, record.body, record.stream, script, self._serial)
