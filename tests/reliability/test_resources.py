"""Resources: every way a call can end leaves no connection, task, thread, child or warning behind.

The `fake` fixture fails a test that leaves a client connection open or a task
running; the shared autouse check fails one that leaves a non-daemon thread or a
child process; `filterwarnings = error` turns a `ResourceWarning` or an
unraisable exception into a failure, and each test here collects garbage before it
ends so that a finalizer's complaint is charged to the test that caused it.
"""

from __future__ import annotations

import gc
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from llmcomm import (
    Configuration,
    LLMCommunication,
    LLMException,
    ProviderConfig,
    ProviderUnavailableError,
    SyncLLMCommunication,
)
from llmcomm.testing import FakeServer, Script

from ..helpers import config, provider
from ._resources import child_pids, leaks, new_threads

STALL = Script(chunks=("a", "b"), stall_after=1, keepalive_interval=0.05)
SILENT = Script(delay_before_first_token=30, keepalive_interval=0.05)
FAKE_CLI = Path(__file__).parent.parent / "claude_cli" / "fake_claude.py"


def test_the_leak_detectors_see_threads_children_and_zombies() -> None:
    threads_before, children_before = frozenset(threading.enumerate()), child_pids()
    assert leaks(threads_before, children_before) == []
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="left-running")
    thread.start()
    sleeper = subprocess.Popen(["sleep", "30"])
    zombie = os.posix_spawn("/bin/true", ["true"], {})
    try:
        assert thread in new_threads(threads_before)
        assert {sleeper.pid, zombie} <= child_pids()
        time.sleep(0.1)  # `true` has exited, and nobody reaped it yet
        assert zombie in child_pids()
    finally:
        release.set()
        thread.join()
        sleeper.kill()
        sleeper.wait()
        os.waitpid(zombie, 0)
    assert leaks(threads_before, children_before) == []


# -- every way a call can end ------------------------------------------------------------


async def _break_after_first_chunk(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = Script(tokens=500, token_delay=0.005)
    async with llm.generate_stream("hi") as stream:
        async for _ in stream:
            break


async def _error_raised_by_the_consumer(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = STALL
    with pytest.raises(ZeroDivisionError):
        async with llm.generate_stream("hi") as stream:
            async for _ in stream:
                _ = 1 / 0


async def _cancelled_by_the_caller(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = STALL
    with anyio.move_on_after(0.2):
        await llm.generate_text("hi")


async def _dropped_without_closing(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = STALL
    stream = llm.generate_stream("hi")
    assert (await stream.__anext__()).text == "a"
    del stream  # never closed: its finalizer must stop the call
    gc.collect()


async def _failed_mid_stream(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = Script(chunks=("a", "b"), reset_after=1)
    with pytest.raises(LLMException):
        await llm.generate_text("hi")


async def _cancelled_during_a_retry_wait(llm: LLMCommunication, server: FakeServer) -> None:
    server.default = Script(status=503, retry_after=5)
    with anyio.move_on_after(0.3) as scope:
        await llm.generate_text("hi", timeout=10)
    assert scope.cancelled_caught
    assert server.request_count == 1


ENDINGS: dict[str, Callable[[LLMCommunication, FakeServer], Awaitable[None]]] = {
    "break-after-first-chunk": _break_after_first_chunk,
    "error-raised-by-the-consumer": _error_raised_by_the_consumer,
    "cancelled-by-the-caller": _cancelled_by_the_caller,
    "dropped-without-closing": _dropped_without_closing,
    "failed-mid-stream": _failed_mid_stream,
    "cancelled-during-a-retry-wait": _cancelled_during_a_retry_wait,
}


@pytest.mark.anyio
@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
async def test_every_ending_closes_its_connection_at_once(
    fake: FakeServer, ending: Callable[[LLMCommunication, FakeServer], Awaitable[None]]
) -> None:
    async with LLMCommunication(config(provider(fake), max_retries=2)) as llm:
        with anyio.fail_after(5):
            await ending(llm, fake)
        # Before the client closes (which would close everything anyway): an unfinished response's
        # connection is gone already; a finished one may stay in the pool.
        for request in fake.requests:
            if request.finished_at is None:
                await fake.wait_closed(request, timeout=1.0)
    gc.collect()


@pytest.mark.anyio
async def test_closing_the_client_ends_streams_still_running(fake: FakeServer) -> None:
    """Streams in flight, one of them a hedged race, when the client closes: each ends with a typed error."""
    fake.route(model="silent", script=SILENT)
    fake.route(model="stalled", script=STALL)
    primary = provider(fake, "anthropic", name="primary", model="silent")
    backup = provider(fake, "openai", name="backup", model="stalled")
    outcomes: list[LLMException | None] = []
    close = anyio.Event()

    async def own(*, task_status: anyio.abc.TaskStatus[LLMCommunication]) -> None:
        async with LLMCommunication(config(primary, backup, fallback_timeout=0.2)) as llm:
            task_status.started(llm)
            await close.wait()

    async def consume(llm: LLMCommunication, provider: str | None) -> None:
        try:
            async with llm.generate_stream("hi", provider=provider) as stream:
                async for _ in stream:
                    pass
            outcomes.append(None)
        except LLMException as exc:
            outcomes.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            llm = await tasks.start(own)
            tasks.start_soon(consume, llm, None)  # the silent primary, then the backup raced beside it
            tasks.start_soon(consume, llm, "backup")
            await fake.wait_for_requests(3)
            started = time.monotonic()
            close.set()
        took = time.monotonic() - started
    assert took < 1.5
    assert len(outcomes) == 2
    assert all(isinstance(o, LLMException) for o in outcomes), outcomes
    gc.collect()


@pytest.mark.anyio
async def test_closing_the_client_reaps_a_streaming_cli_child(tmp_path: Path) -> None:
    mode = FAKE_CLI.stat().st_mode
    if not mode & stat.S_IXUSR:
        FAKE_CLI.chmod(mode | stat.S_IXUSR)
    record = tmp_path / "record.json"
    cli = ProviderConfig(
        name="cli",
        kind="claude_cli",
        cli_path=str(FAKE_CLI),
        env={"FAKE_CLAUDE_SCENARIO": "stall", "FAKE_CLAUDE_RECORD": str(record)},
    )
    llm = LLMCommunication(Configuration(providers=[cli], max_retries=0))
    async with llm:
        stream = llm.generate_stream("hi")
        assert (await stream.__anext__()).text == "Hello"
        pid = json.loads(record.read_text(encoding="utf-8"))["pid"]
    # The client closed with the stream still open: the child is gone, reaped, not a zombie.
    assert not Path(f"/proc/{pid}").exists()
    await stream.aclose()


def test_the_sync_facade_leaves_nothing_behind() -> None:
    with FakeServer(default=STALL) as server:
        sync = SyncLLMCommunication(config(provider(server), stream_idle_timeout=0.3))
        with sync:
            stream = sync.generate_stream("hi")
            assert next(iter(stream)).text == "a"
            stream.close()
            with pytest.raises(LLMException):
                sync.generate_text("hi")
            server.default = Script(status=503)
            with pytest.raises(ProviderUnavailableError):
                sync.generate_text("hi")
        deadline = time.monotonic() + 1.0
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0
    gc.collect()
