"""A sync stream whose reader is gone closes its upstream within a bounded time, never `LLM_TIMEOUT`."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from llmcomm import Configuration, ProviderConfig, StreamInterruptedError, SyncLLMCommunication
from llmcomm.testing import FakeServer, RecordedRequest, Script

KEY = "sk-test-0123456789abcdef"
SLOW = Script(tokens=400, token_delay=0.05)  # a 20 s reply


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def facade(server: FakeServer, wire: Literal["anthropic", "openai"], **settings: float) -> SyncLLMCommunication:
    url = server.anthropic_base_url if wire == "anthropic" else server.openai_base_url
    provider = ProviderConfig(name=wire, kind=wire, api_key=KEY, base_url=url, timeout=60)
    return SyncLLMCommunication(Configuration(providers=[provider], **settings))  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def closed_after(server: FakeServer, started: float, bound: float) -> float:
    request: RecordedRequest = server.requests[-1]
    assert wait_until(lambda: request.client_closed_at is not None, bound), "the upstream stayed open"
    assert request.client_closed_at is not None
    return request.client_closed_at - started


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_dropped_generator_closes_the_upstream(server: FakeServer, wire: Literal["anthropic", "openai"]) -> None:
    server.default = SLOW
    with facade(server, wire) as llm:

        def words() -> Iterator[str]:
            with llm.generate_stream("count") as stream:
                for chunk in stream:
                    yield chunk.text

        reader = words()
        assert next(reader)
        started = time.monotonic()
        del reader
        gc.collect()
        assert closed_after(server, started, 2.0) < 1.0


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_reader_thread_that_dies_closes_the_upstream(
    server: FakeServer, wire: Literal["anthropic", "openai"]
) -> None:
    server.default = SLOW
    with facade(server, wire) as llm:
        stream = llm.generate_stream("count")
        kept: list[object] = [stream]  # still referenced: only the thread's end can tell

        def read_one() -> None:
            next(stream)

        thread = threading.Thread(target=read_one)
        thread.start()
        thread.join(5)
        started = time.monotonic()
        assert closed_after(server, started, 3.0) < 2.0
        kept.clear()


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_a_stream_nobody_reads_is_closed_after_the_idle_timeout(
    server: FakeServer, wire: Literal["anthropic", "openai"]
) -> None:
    server.default = SLOW
    with facade(server, wire, stream_idle_timeout=1.0) as llm:
        stream = llm.generate_stream("count")  # kept, never closed, read once by this live thread
        assert next(stream).text
        started = time.monotonic()
        assert 0.9 <= closed_after(server, started, 4.0) < 2.5
        rest: list[object] = []
        with pytest.raises(StreamInterruptedError, match="reader is gone"):
            rest.extend(stream)  # what had arrived, then the error
        stream.close()


def test_a_slow_reader_within_the_idle_timeout_gets_everything(server: FakeServer) -> None:
    server.default = Script(tokens=20, token_delay=0.01)
    with facade(server, "anthropic", stream_idle_timeout=1.0) as llm, llm.generate_stream("count") as stream:
        texts = []
        for chunk in stream:
            texts.append(chunk.text)
            time.sleep(0.05 if len(texts) < 5 else 0)
    assert "".join(texts) == "".join(f"tok{i} " for i in range(20))


ASGI_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from llmcomm import SyncLLMCommunication

llm = SyncLLMCommunication()

async def ping(request):
    return PlainTextResponse("ok")

async def stream(request):
    def gen():
        with llm.generate_stream("count") as s:
            for chunk in s:
                yield chunk.text
    return StreamingResponse(gen(), media_type="text/plain")   # iterated in the threadpool

app = Starlette(routes=[Route("/ping", ping), Route("/stream", stream)])
"""


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_uvicorn_sync_stream_closes_when_the_client_disconnects(
    server: FakeServer, tmp_path: Path, wire: Literal["anthropic", "openai"]
) -> None:
    pytest.importorskip("uvicorn")
    import urllib.request

    server.default = Script(tokens=400, token_delay=0.2)  # an 80 s reply
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "LLM_", "CLAUDE_"))}
    prefix = wire.upper()
    url = server.anthropic_base_url if wire == "anthropic" else server.openai_base_url
    env.update({f"{prefix}_API_KEY": KEY, f"{prefix}_BASE_URL": url, "LLM_PROVIDERS": wire, "LLM_TIMEOUT": "120"})
    cmd = [sys.executable, "-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    return True
            except OSError:
                return False

        assert wait_until(up, 20), "uvicorn did not come up"
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(200)
        assert wait_until(lambda: server.request_count > 0, 5)
        time.sleep(0.5)
        client.close()
        started = time.monotonic()
        assert closed_after(server, started, 10.0) < 2.0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
