"""`SimpleLLMManager` against `llmcomm.testing`, called as the legacy application calls it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from llmcomm import LLMMessage, SimpleLLMManager, SimpleLLMService, get_llm_manager, get_llm_service
from llmcomm.legacy._singletons import _reset_legacy_singletons
from llmcomm.testing import FakeServer, Script

from ._support import REQUEST_ID, body, run_in_new_loop

# -- SimpleLLMManager ------------------------------------------------------------------


def test_new_event_loop_per_request_from_four_threads(server: FakeServer) -> None:
    server.default = Script(text="from a fresh loop", token_delay=0.001)
    manager = get_llm_manager()

    def handler(worker: int) -> list[str]:
        replies = []
        for request in range(5):
            response = run_in_new_loop(manager, messages=[{"role": "user", "content": f"{worker}/{request}"}])
            assert REQUEST_ID.match(response.request_id)
            replies.append(response.content)
        return replies

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(handler, range(4)))
    assert results == [["from a fresh loop"] * 5] * 4
    assert server.request_count == 20
    # One pool on the portal's loop serves every caller's loop: connections are reused, never per loop.
    assert len({r.connection_id for r in server.requests}) <= 4
    assert body(server)["max_tokens"] == 40960  # what the legacy chat path always sent


@pytest.mark.anyio
async def test_manager_from_asyncio_and_trio(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_MAX_TOKENS", "1000")
    manager = SimpleLLMManager()
    messages = [LLMMessage("system", "Be kind."), LLMMessage("user", "hi")]
    response = await manager.generate_response(messages=messages, request_id="LLM-1700000000000-aaaabbbb")
    assert (response.content, response.request_id) == ("Hello from llmcomm.testing.", "LLM-1700000000000-aaaabbbb")
    assert (body(server)["system"], body(server)["max_tokens"]) == ("Be kind.", 1000)
    response = await manager.generate_response(messages=messages, model="claude-other", max_tokens=77)
    assert (body(server)["model"], body(server)["max_tokens"]) == ("claude-other", 77)
    assert await manager.test_connection() is True
    server.default = Script(status=401)
    failed = await manager.generate_response("anthropic", [{"role": "user", "content": "hi"}])
    assert failed.content.startswith("Anthropic API错误: [anthropic] authentication failed")
    assert dict(failed.usage) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert await manager.test_connection() is False


def test_manager_passes_the_service_failures_through(server: FakeServer) -> None:
    server.default = Script(status=529)
    response = run_in_new_loop(get_llm_manager(), messages=[{"role": "user", "content": "x"}])
    assert response.content.startswith("Anthropic API错误: [anthropic] provider unavailable")
    _reset_legacy_singletons()
    server.default = Script(chunks=("a ", "b ", "c "), reset_after=1)
    response = run_in_new_loop(get_llm_manager(), messages=[{"role": "user", "content": "x"}])
    assert response.content.startswith("调用失败: [anthropic] ")
    assert run_in_new_loop(get_llm_manager()).content.startswith("LLM调用失败: messages is None")


def test_manager_ignores_providers_that_are_not_configured(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    manager = get_llm_manager()
    for name in ("nope", "openai", "", None, 42):
        caplog.clear()
        with caplog.at_level("WARNING", logger="llmcomm.legacy"):
            response = run_in_new_loop(manager, provider=name, messages=[{"role": "user", "content": "x"}])
        assert response.content == "Hello from llmcomm.testing.", name
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == (1 if name else 0), warnings
        if name:
            assert f"provider {name!r} is not configured and is ignored" in warnings[0]
    assert server.request_count == 5


def test_manager_max_tokens_on_the_chat_path(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = get_llm_manager()
    assert manager.max_tokens == 4096  # the attribute, as the legacy manager read it
    run_in_new_loop(manager, messages=[{"role": "user", "content": "x"}])
    assert body(server)["max_tokens"] == 40960
    run_in_new_loop(manager, messages=[{"role": "user", "content": "x"}], max_tokens=321)
    assert body(server)["max_tokens"] == 321
    _reset_legacy_singletons()
    monkeypatch.setenv("ANTHROPIC_MAX_TOKENS", "2048")
    run_in_new_loop(get_llm_manager(), messages=[{"role": "user", "content": "x"}])
    assert body(server)["max_tokens"] == 2048
    get_llm_service().generate_response([{"role": "user", "content": "x"}])
    assert body(server)["max_tokens"] == 2048
    get_llm_service().simple_llm("x")
    assert body(server)["max_tokens"] == 12288  # default_max_tokens


def test_manager_default_model_changed_by_the_application(server: FakeServer) -> None:
    manager = get_llm_manager()
    run_in_new_loop(manager, messages=[{"role": "user", "content": "x"}])
    assert body(server)["model"] == manager.default_model
    manager.default_model = "claude-chosen-by-the-app"
    run_in_new_loop(manager, messages=[{"role": "user", "content": "x"}])
    assert body(server)["model"] == "claude-chosen-by-the-app"


def test_manager_routes_providers(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    manager = get_llm_manager()
    assert manager.list_available_providers() == ["anthropic", "openai"]
    run_in_new_loop(manager, provider="openai", messages=[{"role": "user", "content": "x"}])
    assert server.requests[-1].api == "openai"
    info = manager.get_provider_info("openai")
    assert (info["provider"], info["type"], info["status"]) == ("openai", "openai", "available")
    assert manager.get_provider_info()["type"] == "simplified_anthropic"
    assert manager.get_provider_info("nope") == manager.get_provider_info()
    manager.set_default_provider("openai")
    run_in_new_loop(manager, messages=[{"role": "user", "content": "x"}])
    assert server.requests[-1].api == "openai"
    manager.set_default_provider("nope")  # a warning, not an error
    assert manager.default_provider == "openai"
    assert manager.get_service("nope") is get_llm_service()
    assert manager.health_check() is True
    assert server.requests[-1].body["messages"][0]["content"] == "Reply with the single word OK."


def test_manager_registered_services(server: FakeServer) -> None:
    manager = get_llm_manager()
    assert manager.get_service() is get_llm_service()
    with closing(SimpleLLMService()) as extra:
        manager.register_service("custom", extra)
        assert manager.get_service("custom") is extra
        assert "custom" in manager.list_available_providers()
        run_in_new_loop(manager, provider="custom", messages=[{"role": "user", "content": "x"}])
        assert extra.client is not None
        assert not extra.client.closed
        assert manager.get_provider_info("custom")["provider"] == "custom"


def test_singletons_are_one_per_process_and_thread_safe(server: FakeServer) -> None:
    barrier = threading.Barrier(16)

    def get(_: int) -> tuple[int, int]:
        barrier.wait(timeout=2)
        return id(get_llm_service()), id(get_llm_manager())

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = set(pool.map(get, range(16)))
    assert len(ids) == 1
    first = get_llm_service()
    _reset_legacy_singletons()
    assert get_llm_service() is not first


def test_sync_service_from_async_code(server: FakeServer) -> None:
    async def handler() -> str:
        return get_llm_service().simple_llm("hi")  # sync legacy code inside a running loop

    assert asyncio.run(handler()) == "Hello from llmcomm.testing."
