"""Fixtures of the reliability suite.

`fake`: a fake provider server that must end every test with no open client
connection and no task left running in the event loop. `debug_log`: every log
record at DEBUG (llmcomm's, the HTTP stack's, the SDKs'), checked for canary keys
after the test.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from llmcomm.testing import FakeServer

from ._support import DEBUG_LOGGERS, LogCapture, find_canaries, wait_until

#: how long connections and tasks get to go away once the client closed
SETTLE = 1.0


def _task_ids() -> set[int]:
    # The test runner of anyio's pytest plugin wraps each fixture step and test in a task of its own.
    return {
        t.id for t in anyio.get_running_tasks() if not getattr(t.coro, "__qualname__", "").startswith("TestRunner.")
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    """A `FakeServer`; afterwards no connection may be open and no task left behind."""
    tasks_before = _task_ids()
    async with FakeServer() as server:
        yield server
        await wait_until(lambda: server.open_connections == 0, SETTLE)
        assert server.open_connections == 0, f"{server.open_connections} client connection(s) left open"
        assert not server.errors, f"the fake server failed: {server.errors!r}"
    await wait_until(lambda: not (_task_ids() - tasks_before), SETTLE)
    left = [f"{t.name} ({t.coro!r})" for t in anyio.get_running_tasks() if t.id in _task_ids() - tasks_before]
    assert not left, f"tasks still running after the client closed: {left}"


@pytest.fixture
def debug_log() -> Iterator[LogCapture]:
    """Every record at DEBUG on the root logger; no canary key may appear in any of them."""
    capture = LogCapture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in DEBUG_LOGGERS}
    saved_root = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    leaked = find_canaries(capture.texts())
    assert not leaked, "a canary key reached the logs:\n" + "\n".join(leaked)
