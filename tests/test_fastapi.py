"""examples/fastapi_app.py under real uvicorn on 127.0.0.1, against the fake provider server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from examples import fastapi_app
from llmcomm.testing import FakeServer, Script
from tests.browser.chromium import dump_dom
from tests.browser.server import UvicornThread
from tests.helpers import config, provider

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(server: FakeServer) -> AsyncIterator[str]:
    """The example app, its LLMCommunication pointed at `server`, under uvicorn; yields its URL."""
    app = fastapi_app.create_app(config(provider(server)))
    runner = UvicornThread(app)
    await anyio.to_thread.run_sync(runner.start)
    try:
        yield runner.url
    finally:
        await anyio.to_thread.run_sync(runner.stop)


async def sse_lines(response: httpx2.Response) -> AsyncGenerator[str]:
    """The body's lines as they arrive (httpx2's `aiter_bytes` closes its inner generators on break)."""
    buffer = b""
    async with aclosing(response.aiter_bytes()) as chunks:
        async for chunk in chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode()


async def sse_events(response: httpx2.Response) -> AsyncGenerator[tuple[str, Any]]:
    """(event, JSON data) pairs of a text/event-stream body, as they arrive."""
    event, data = "message", list[str]()
    async with aclosing(sse_lines(response)) as lines:
        async for line in lines:
            if not line:
                if data:
                    yield event, json.loads("\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))


async def test_stream_sends_tokens_then_done(server: FakeServer) -> None:
    server.default = Script(chunks=("Hello", ", ", "wide\nworld", "!"))
    async with (
        serving(server) as url,
        httpx2.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{url}/stream", params={"prompt": "hi"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [item async for item in sse_events(response)]
    tokens = [data for event, data in events if event == "token"]
    assert tokens == ["Hello", ", ", "wide\nworld", "!"]
    last_event, done = events[-1]
    assert last_event == "done"
    assert done["provider"] == "anthropic"
    assert done["usage"]["completion_tokens"] == 4


async def test_stream_reports_a_failure_as_an_event(server: FakeServer) -> None:
    server.default = Script(status=401, error_message="invalid x-api-key")
    async with (
        serving(server) as url,
        httpx2.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{url}/stream", params={"prompt": "hi"}) as response,
    ):
        events = [item async for item in sse_events(response)]
    assert [event for event, _ in events] == ["failed"]
    assert events[0][1]["error"] == "AuthenticationError"


async def test_generate_returns_json_and_maps_errors(server: FakeServer) -> None:
    server.enqueue(Script(text="Plain JSON reply."), Script(status=401))
    async with serving(server) as url, httpx2.AsyncClient(timeout=10) as client:
        ok = await client.post(f"{url}/generate", json={"prompt": "hi", "max_tokens": 20})
        refused = await client.post(f"{url}/generate", json={"prompt": "hi"})
        invalid = await client.post(f"{url}/generate", json={"prompt": "hi", "model": ""})
    assert ok.status_code == 200
    body = ok.json()
    assert body["content"] == "Plain JSON reply."
    assert body["provider"] == "anthropic"
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert server.requests[0].body["max_tokens"] == 20
    assert refused.status_code == 502
    assert refused.json()["error"] == "AuthenticationError"
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "InvalidRequestError"


async def test_client_disconnect_closes_the_upstream_request(server: FakeServer) -> None:
    server.default = Script(tokens=200, token_delay=0.02)
    async with serving(server) as url:
        client = httpx2.AsyncClient(timeout=10)
        try:
            async with client.stream("GET", f"{url}/stream", params={"prompt": "count"}) as response:
                seen = 0
                async with aclosing(sse_events(response)) as events:
                    async for event, _ in events:
                        assert event == "token"
                        seen += 1
                        if seen == 5:
                            break
        finally:
            await client.aclose()
        disconnected_at = time.monotonic()
        assert len(server.requests) == 1
        upstream = server.requests[0]
        await server.wait_closed(upstream, timeout=1.0)
        assert upstream.client_closed_at is not None, "the app finished the upstream response instead of closing it"
        assert upstream.client_closed_at - disconnected_at < 1.0
        assert upstream.finished_at is None


def test_page_shows_streamed_tokens_in_chromium() -> None:
    chunks = tuple(f"word{i} " for i in range(12))
    with FakeServer(default=Script(chunks=chunks, token_delay=0.02)) as server, serving_sync(server) as app:
        dom = dump_dom(f"{app.url}/?prompt=hello")
    match = re.search(r'<p id="reply" data-state="(\w+)" data-tokens="(\d+)">([^<]*)</p>', dom)
    assert match is not None, dom[-3000:]
    state, tokens, text = match.groups()
    assert state == "done"
    assert text == "".join(chunks)
    # One DOM update per SSE event: the page showed the reply as it arrived, not at the end.
    assert int(tokens) == len(chunks)
    assert server.requests[0].stream


def serving_sync(server: FakeServer) -> UvicornThread:
    """The example app pointed at a threaded `server`, as a context manager."""
    return UvicornThread(fastapi_app.create_app(config(provider(server))))


def test_without_credentials_the_app_uses_the_simulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CLAUDE_CLI_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with UvicornThread(fastapi_app.create_app()) as app:
        response = httpx2.post(f"{app.url}/generate", json={"prompt": "hi"}, timeout=30)
    assert response.status_code == 200
    assert response.json()["provider"] == "simulator"
    assert response.json()["content"] == fastapi_app.SIMULATED_REPLY
