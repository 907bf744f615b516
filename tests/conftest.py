"""Shared fixtures: every async test runs on asyncio and on trio, against `llmcomm.testing`."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from llmcomm.testing import FakeServer

from .reliability._resources import GRACE, child_pids, leaks


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    """A fake provider server on 127.0.0.1, in the test's own event loop."""
    async with FakeServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_leftover_threads_or_children() -> Iterator[None]:
    """After every test: no new non-daemon thread and no child process may remain.

    Each gets up to `GRACE` seconds to finish; the sync facade's shared portal
    thread is meant to outlive a test and is not counted.
    """
    threads_before = frozenset(threading.enumerate())
    children_before = child_pids()
    yield
    left = leaks(threads_before, children_before)
    if left:
        pytest.fail(f"the test left behind, {GRACE:g} s after it ended: {'; '.join(left)}", pytrace=False)


@pytest.fixture
def private_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory of the test's own, as `TMPDIR` and `tempfile.gettempdir()`.

    Tests that count scratch directories in the temporary directory count only
    their own: another suite on the same machine makes some of its own meanwhile.
    """
    path = tmp_path_factory.mktemp("tmp")
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path
