"""A real `redis-server` for the fleet tests: private, on a free loopback port, persistence off.

`redis` is one server for the whole session; `redis_private` is a server of the test's
own, which it may kill and restart (fail-open tests). Both are stopped after use. When
`redis-server` is missing the tests fail and say how to install it
(`python tests/fleet/install_redis.py`, which the nox `tests` session runs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import final

import pytest

#: how long a starting server gets to answer PING, in seconds
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis server on `port` answers PING (inline command, one line back)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
            return answer.startswith((b"+PONG", b"-NOAUTH"))  # a server with a password answers too
    except OSError:
        return False


@final
class RedisServer:
    """One `redis-server` process on 127.0.0.1:`port`, with no persistence."""

    def __init__(self, binary: str, port: int, workdir: Path, *, password: str | None = None) -> None:
        self.binary, self.port, self.workdir, self.password = binary, port, workdir, password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.binary, "--save", "", "--appendonly", "no", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not ping(self.port):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT:g} s")
            time.sleep(0.01)

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self._reap()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers, as when it is overloaded."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
        self._reap()

    def _reap(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None


def _binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            "redis-server is not installed: run `python tests/fleet/install_redis.py` (nox -s tests does)",
            pytrace=False,
        )
    return found


@contextmanager
def running_redis(password: str | None = None) -> Iterator[RedisServer]:
    """A Redis server on a free loopback port, persistence off, stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="llmcomm-redis-") as workdir:
        server = RedisServer(_binary(), free_port(), Path(workdir), password=password)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """The session's Redis server; tests use distinct scopes, so they never see each other's keys."""
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_with_password() -> Iterator[RedisServer]:
    """A Redis server of this test's own that wants the password `s3cret-redis-pw`."""
    with running_redis(password="s3cret-redis-pw") as server:
        yield server


@pytest.fixture
def redis_private() -> Iterator[RedisServer]:
    """A Redis server of this test's own, to kill and restart; stopped when the test ends."""
    with running_redis() as server:
        yield server
