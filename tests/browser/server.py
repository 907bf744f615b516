"""Serve an ASGI app with real uvicorn on 127.0.0.1, from a daemon thread, for one test."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, final

import uvicorn

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@final
class UvicornThread:
    """`uvicorn.Server` for `app` on a free loopback port, in a thread with its own event loop.

    `start()` returns once the app's lifespan has started (or raises when it failed);
    `stop()` asks the server to exit and waits for the thread. Both block, so async
    tests call them through `anyio.to_thread.run_sync`.
    """

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="uvicorn", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped during startup; the app's lifespan failed (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {START_TIMEOUT} s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)
        self._socket.close()
        if self._thread.is_alive():
            raise TimeoutError(f"uvicorn did not stop within {STOP_TIMEOUT} s")

    def __enter__(self) -> UvicornThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
