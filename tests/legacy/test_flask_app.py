"""The legacy API inside a Flask back end written like the MRC application, against `llmcomm.testing`.

Each scenario is what the application's users meet: a reply, an overloaded or
refusing provider, a stream that breaks or stalls, recovery, fallback, and
several requests at once. The application answers HTTP 200 with the legacy
text in every case; what differs is the prefix its own checks look at.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from llmcomm.legacy._singletons import _reset_legacy_singletons
from llmcomm.testing import FakeServer, Script

APP_MODULE = "tests.legacy.mrc_like_app"
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

LoadApp = Callable[..., ModuleType]


@pytest.fixture
def load_app(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> LoadApp:
    """Set environment variables, then (re)import the application, which binds fresh legacy instances."""

    def load(**env: str) -> ModuleType:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _reset_legacy_singletons()
        module = importlib.reload(sys.modules[APP_MODULE]) if APP_MODULE in sys.modules else None
        module = module or importlib.import_module(APP_MODULE)
        module.monitor.clear()
        return module

    return load


def flask_app(module: ModuleType) -> Flask:
    app: Flask = module.app
    return app


def chat(module: ModuleType, **payload: Any) -> dict[str, Any]:
    """POST /api/llm/chat through Flask's test client; the JSON body of a 200 answer."""
    response = flask_app(module).test_client().post("/api/llm/chat", json={"message": "hi", **payload})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The application on a real threaded HTTP server on 127.0.0.1, as `app.run()` serves it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="mrc-like-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def post_json(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.loads(response.read())
        return response.status, body


# -- one request ------------------------------------------------------------------------


def test_success(server: FakeServer, load_app: LoadApp) -> None:
    server.default = Script(text="A full reply.", input_tokens=11)
    app = load_app()
    body = chat(app, history=[{"role": "assistant", "content": "earlier"}, {"role": "user", "content": ""}])
    data = body["data"]
    assert (data["response"], data["provider"]) == ("A full reply.", "anthropic")
    assert data["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert data["response_time"] > 0
    assert (body["llm_success"], body["llm_api_error"]) == (True, False)
    sent = server.requests[0].body
    assert sent["messages"] == [{"role": "assistant", "content": "earlier"}, {"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 40960  # what the legacy chat path always sent
    assert app.monitor == [("anthropic", True, False)]


@pytest.mark.parametrize(
    ("status", "detail"), [(529, "provider unavailable"), (500, "provider unavailable"), (401, "authentication failed")]
)
def test_an_error_status_is_an_api_error(server: FakeServer, load_app: LoadApp, status: int, detail: str) -> None:
    server.default = Script(status=status, retry_after=0)
    app = load_app()
    started = time.monotonic()
    body = chat(app)
    elapsed = time.monotonic() - started
    data = body["data"]
    assert data["response"].startswith(f"Anthropic API错误: [anthropic] {detail}"), data["response"]
    assert f"HTTP {status}" in data["response"]
    assert (data["usage"], data["provider"]) == (ZERO_USAGE, "anthropic")
    # The application's own check counts an API error as a success, as it always did; the prefix tells it apart.
    assert (body["llm_success"], body["llm_api_error"]) == (True, True)
    if status == 401:
        assert server.request_count == 1, "a refused key is never retried"
        assert elapsed < 1.0


def test_a_reset_mid_stream_is_a_call_failure(server: FakeServer, load_app: LoadApp) -> None:
    server.default = Script(chunks=("one ", "two ", "three ", "four "), reset_after=2)
    app = load_app()
    body = chat(app)
    data = body["data"]
    assert data["response"].startswith("调用失败: [anthropic] the stream broke after it started"), data["response"]
    assert data["usage"] == ZERO_USAGE
    assert (body["llm_success"], body["llm_api_error"]) == (False, False)
    assert app.monitor == [("anthropic", False, False)]


@pytest.mark.parametrize(
    "script",
    [Script(tokens=10, stall_after=2), Script(delay_before_first_token=30, keepalive_interval=0.05)],
    ids=["after-two-chunks", "before-the-first-chunk"],
)
def test_a_stall_ends_within_llm_timeout_as_a_call_failure(
    server: FakeServer, load_app: LoadApp, script: Script
) -> None:
    server.default = script
    app = load_app(LLM_TIMEOUT="0.5")
    started = time.monotonic()
    body = chat(app)
    elapsed = time.monotonic() - started
    assert body["data"]["response"].startswith("调用失败: "), body["data"]["response"]
    assert "0.5 s" in body["data"]["response"]
    assert body["llm_success"] is False
    assert 0.4 < elapsed < 0.5 + 1.5
    upstream = server.requests[0]
    deadline = time.monotonic() + 1.0
    while upstream.client_closed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstream.client_closed_at is not None, "the stalled upstream request was left open"


@pytest.mark.parametrize("status", [529, 401])
def test_recovery_after_a_failure(server: FakeServer, load_app: LoadApp, status: int) -> None:
    # The failure puts the only provider in cooldown; the next call must still reach it (a probe).
    server.default = Script(status=status, retry_after=0)
    app = load_app()
    assert chat(app)["data"]["response"].startswith("Anthropic API错误: ")
    server.default = Script(text="Back again.")
    requests_before = server.request_count
    body = chat(app)
    assert server.request_count > requests_before, "the provider was not asked again"
    assert body["data"]["response"] == "Back again."


def test_fallback_to_a_second_provider(server: FakeServer, load_app: LoadApp) -> None:
    server.route(model="claude-overloaded", script=Script(status=529, retry_after=0))
    server.default = Script(text="From the fallback.")
    app = load_app(ANTHROPIC_MODEL="claude-overloaded", OPENAI_BASE_URL=server.openai_base_url)
    body = chat(app)
    data = body["data"]
    assert (data["response"], data["provider"]) == ("From the fallback.", "openai")
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"] > 0
    assert [r.api for r in server.requests] == ["anthropic", "openai"]
    assert body["llm_success"] is True
    # The legacy 40960 was the Anthropic service's own limit: the fallback keeps the one it can serve.
    anthropic_body, openai_body = (r.body for r in server.requests)
    assert anthropic_body["max_tokens"] == 40960
    assert openai_body["max_tokens"] == 4096


def test_a_max_tokens_the_caller_gives_goes_to_every_provider(server: FakeServer, load_app: LoadApp) -> None:
    server.route(model="claude-overloaded", script=Script(status=529, retry_after=0))
    server.default = Script(text="From the fallback.")
    load_app(ANTHROPIC_MODEL="claude-overloaded", OPENAI_BASE_URL=server.openai_base_url)
    from llmcomm.legacy import llm_manager

    loop = asyncio.new_event_loop()
    try:
        response = loop.run_until_complete(
            llm_manager.generate_response(messages=[{"role": "user", "content": "hi"}], max_tokens=1234)
        )
    finally:
        loop.close()
    assert response.content == "From the fallback."
    assert [r.body["max_tokens"] for r in server.requests] == [1234, 1234]


def test_provider_from_the_request_body(server: FakeServer, load_app: LoadApp) -> None:
    app = load_app(OPENAI_BASE_URL=server.openai_base_url)
    for provider, api in [("openai", "openai"), ("nope", "anthropic"), (None, "anthropic"), ("anthropic", "anthropic")]:
        body = chat(app, provider=provider)
        assert body["data"]["response"] == "Hello from llmcomm.testing.", provider
        assert server.requests[-1].api == api, provider


def test_the_sync_service_route(server: FakeServer, load_app: LoadApp) -> None:
    client = flask_app(load_app()).test_client()
    assert client.post("/api/llm/simple", json={"message": "hi"}).get_json() == {
        "text": "Hello from llmcomm.testing.",
        "ok": True,
    }
    server.default = Script(status=529, retry_after=0)
    client = flask_app(load_app()).test_client()
    body = client.post("/api/llm/simple", json={"message": "hi"}).get_json()
    assert body["text"].startswith("API错误: [anthropic] provider unavailable")
    assert body["ok"] is False


def test_info_and_health(server: FakeServer, load_app: LoadApp) -> None:
    client = flask_app(load_app(ANTHROPIC_MODEL="claude-configured")).test_client()
    info = client.get("/api/llm/chat").get_json()
    assert info == {
        "available_providers": ["anthropic"],
        "provider_info": {
            "provider": "anthropic",
            "model": "claude-configured",
            "status": "available",
            "type": "simplified_anthropic",
        },
    }
    assert server.request_count == 0
    assert client.get("/api/llm/health").get_json()["healthy"] is True
    assert server.request_count == 1  # the health check makes its one-line call


# -- several requests at once -----------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Script(text="Same for everyone.", token_delay=0.002), "Same for everyone."),
        (Script(chunks=("a ", "b ", "c "), reset_after=1), "调用失败: "),
    ],
    ids=["success", "reset-mid-stream"],
)
def test_concurrent_requests_on_a_real_server(
    server: FakeServer, load_app: LoadApp, script: Script, expected: str
) -> None:
    server.default = script
    app = load_app()
    with serving(flask_app(app)) as base_url:

        def worker(index: int) -> list[str]:
            replies = []
            for turn in range(4):
                status, body = post_json(f"{base_url}/api/llm/chat", {"message": f"{index}/{turn}"})
                assert status == 200
                replies.append(body["data"]["response"])
            return replies

        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = [reply for batch in pool.map(worker, range(8)) for reply in batch]
    assert len(replies) == 32
    assert all(reply.startswith(expected) for reply in replies), {r[:60] for r in replies}
    assert len(app.monitor) == 32
    if expected.startswith("调用失败"):
        # The first reset opens the breaker; calls after it fail without a request until item 4 lands.
        assert 1 <= server.request_count <= 32
    else:
        assert server.request_count == 32
        assert len({r.connection_id for r in server.requests}) <= 8, "connections are pooled, not one per loop"
