"""The legacy service and manager against `llmcomm.testing`, called the way the legacy application calls them."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from llmcomm import (
    LLMMessage,
    LLMServices,
    SimpleLLMManager,
    SimpleLLMService,
    SyncLLMCommunication,
    get_llm_manager,
    get_llm_service,
    register_llm_services,
    shutdown_llm_services,
)
from llmcomm._observability import disable_legacy_log_file
from llmcomm._portal import SHARED
from llmcomm.legacy._singletons import _reset_legacy_singletons
from llmcomm.testing import FakeServer, Script

from .helpers import clear_provider_environment, refused_url

importlib.import_module("anthropic")  # the cold SDK import is not what these tests time
importlib.import_module("openai")

KEY = "test-key-0123456789"
REQUEST_ID = re.compile(r"^LLM-\d{13}-[0-9a-f]{8}$")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    clear_provider_environment(monkeypatch, tmp_path)
    yield
    _reset_legacy_singletons()
    assert not portal_running(), "a service was left open"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A fake Anthropic API, configured through the environment as the legacy application does."""
    with FakeServer() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        yield fake


@pytest.fixture
def service(server: FakeServer) -> Iterator[SimpleLLMService]:
    with closing(SimpleLLMService()) as legacy:
        yield legacy


def portal_running() -> bool:
    return SHARED.running


def body(server: FakeServer, index: int = -1) -> dict[str, Any]:
    recorded: dict[str, Any] = server.requests[index].body
    return recorded


def run_in_new_loop(manager: SimpleLLMManager, **kwargs: Any) -> Any:
    """The legacy Flask pattern: a brand-new event loop per request, closed afterwards."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(manager.generate_response(**kwargs))
    finally:
        loop.close()


# -- SimpleLLMService ------------------------------------------------------------------


def test_sync_methods_from_many_threads(server: FakeServer, service: SimpleLLMService) -> None:
    server.default = Script(text="pong")
    calls = [
        lambda: service.llm_call("ping"),
        lambda: service.simple_llm("ping"),
        lambda: service.llm_call_with_history("ping", [{"role": "user", "content": "a"}]),
        lambda: service.generate_response([{"role": "user", "content": "ping"}]).content,
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: calls[i % 4](), range(40)))
    assert results == ["pong"] * 40
    assert server.request_count == 40
    assert service.quick_test() is True


def test_simple_llm_sends_model_and_max_tokens(server: FakeServer, service: SimpleLLMService) -> None:
    assert service.simple_llm("hi") == "Hello from llmcomm.testing."
    assert body(server)["max_tokens"] == 12288  # default_max_tokens
    assert service.simple_llm("hi", model="claude-chosen", max_tokens=99)
    assert (body(server)["model"], body(server)["max_tokens"]) == ("claude-chosen", 99)


def test_empty_reply_is_no_valid_response(server: FakeServer, service: SimpleLLMService) -> None:
    server.default = Script(chunks=())
    assert service.simple_llm("hi") == "未收到有效响应"
    assert service.llm_call_with_history("hi") == "未收到有效响应"


def test_history_then_prompt(server: FakeServer, service: SimpleLLMService) -> None:
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
    ]
    assert service.llm_call_with_history("second", history) == "Hello from llmcomm.testing."
    sent = body(server)
    assert sent["system"] == "You are terse."
    assert sent["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]


def test_generate_response_maps_the_system_message_and_passes_kwargs(
    server: FakeServer, service: SimpleLLMService
) -> None:
    server.default = Script(text="fine thanks", input_tokens=11)
    messages = [LLMMessage("system", "Answer in English."), LLMMessage("user", "How are you?")]
    response = service.generate_response(messages, request_id="LLM-1700000000000-0123abcd", temperature=0.2, top_k=5)
    assert response.content == "fine thanks"
    assert response.provider == "anthropic"
    assert response.request_id == "LLM-1700000000000-0123abcd"
    assert dict(response.usage) == {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    assert response.usage["total_tokens"] == 13
    assert response.response_time > 0
    sent = body(server)
    assert sent["system"] == "Answer in English."
    assert sent["messages"] == [{"role": "user", "content": "How are you?"}]
    assert (sent["temperature"], sent["top_k"], sent["stream"]) == (0.2, 5, True)


@pytest.mark.parametrize("status", [400, 401, 429, 500, 529])
def test_failures_return_the_legacy_strings(server: FakeServer, status: int) -> None:
    server.default = Script(status=status, retry_after=0)  # retried at once, and fails again
    # A fresh service per call: one failure puts the only provider in cooldown.
    with closing(SimpleLLMService()) as service:
        first = service.simple_llm("hi")
    assert first.startswith("API错误: [anthropic] ")
    assert f"HTTP {status}" in first
    with closing(SimpleLLMService()) as service:
        assert service.llm_call("hi").startswith("调用失败: ")
    with closing(SimpleLLMService()) as service:
        assert service.llm_call_with_history("hi").startswith("API错误: ")
    with closing(SimpleLLMService()) as service:
        response = service.generate_response([{"role": "user", "content": "hi"}], model="claude-x")
    assert response.content.startswith("Anthropic API错误: [anthropic] ")
    assert (response.model, response.provider, dict(response.usage)) == (
        "claude-x",
        "anthropic",
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    )
    assert json.loads(json.dumps(response.usage)) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert REQUEST_ID.match(response.request_id or "")
    with closing(SimpleLLMService()) as service:
        assert service.quick_test() is False


@pytest.mark.parametrize(
    ("script", "prefix"),
    [
        (Script(chunks=("a ", "b ", "c "), reset_after=2), "调用失败: "),
        (Script(chunks=("a ", "b "), reset_after=0), "调用失败: "),
        (Script(chunks=("a ", "b ", "c "), sse_error_after=1), "Anthropic API错误: "),
        (Script(chunks=("a ", "b "), sse_error_after=0, error_type="overloaded_error"), "Anthropic API错误: "),
    ],
    ids=["reset-mid-stream", "reset-before-content", "error-event-mid-stream", "error-event-first"],
)
def test_stream_faults_get_the_legacy_prefix(server: FakeServer, script: Script, prefix: str) -> None:
    server.default = script
    with closing(SimpleLLMService()) as service:
        response = service.generate_response([{"role": "user", "content": "hi"}])
    assert response.content.startswith(prefix + "[anthropic] "), response.content
    assert dict(response.usage) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_a_refused_connection_is_an_api_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", refused_url())
    with closing(SimpleLLMService()) as service:
        response = service.generate_response([{"role": "user", "content": "hi"}])
    assert response.content.startswith("Anthropic API错误: [anthropic] cannot connect"), response.content
    with closing(SimpleLLMService()) as service:
        assert service.simple_llm("hi").startswith("API错误: [anthropic] cannot connect")


def test_a_stall_is_a_call_failure_within_llm_timeout(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TIMEOUT", "0.5")
    server.default = Script(tokens=5, stall_after=2)
    with closing(SimpleLLMService()) as service:
        started = time.monotonic()
        response = service.generate_response([{"role": "user", "content": "hi"}])
        elapsed = time.monotonic() - started
    assert response.content.startswith("调用失败: [anthropic] "), response.content
    assert elapsed < 0.5 + 1.5


def test_failure_from_another_provider_keeps_the_prefix_and_names_it(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    server.default = Script(status=529)
    with closing(SimpleLLMService()) as service:
        response = service.generate_response([{"role": "user", "content": "hi"}])
    assert response.content.startswith("Anthropic API错误: [openai] "), response.content
    assert response.provider == "openai"
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.default = Script(status=401)
    with closing(SimpleLLMService()) as service:
        both = service.generate_response([{"role": "user", "content": "hi"}])
    assert both.content.startswith("Anthropic API错误: "), both.content
    assert "[anthropic]" in both.content and "[openai]" in both.content


def test_bad_input_is_a_call_failure_not_an_api_error(server: FakeServer, service: SimpleLLMService) -> None:
    assert service.simple_llm("").startswith("调用失败: ")
    assert service.generate_response([{"role": "robot", "content": "x"}]).content.startswith("调用失败: ")
    assert server.request_count == 0


def test_default_model_follows_the_configuration(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-from-env")
    with closing(SimpleLLMService()) as service:
        assert service.default_model == "claude-from-env"
        service.simple_llm("hi")
        assert body(server)["model"] == "claude-from-env"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-from-env")
    with closing(SimpleLLMService()) as service:
        assert service.default_model == "gpt-from-env"
        assert service.simple_llm("hi") == "Hello from llmcomm.testing."
        assert server.requests[-1].api == "openai"


def test_explicit_api_key_means_anthropic_with_that_key(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("LLM_PROVIDERS", "openai")
    with closing(SimpleLLMService(api_key="explicit-key-0123456789")) as service:
        assert service.llm_call("hi") == "Hello from llmcomm.testing."
        assert server.requests[-1].api == "anthropic"
        headers = server.requests[-1].headers
        assert "explicit-key-0123456789" in headers.get("x-api-key", headers.get("authorization", ""))


def test_falls_back_to_the_next_configured_provider(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-broken")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    server.route(model="claude-broken", script=Script(status=401))
    with closing(SimpleLLMService()) as service:
        response = service.generate_response([{"role": "user", "content": "hi"}])
    assert (response.content, response.provider) == ("Hello from llmcomm.testing.", "openai")
    assert [r.api for r in server.requests] == ["anthropic", "openai"]


def test_nothing_configured_returns_strings_naming_the_variables() -> None:
    service = get_llm_service()
    assert service.client is None
    text = service.simple_llm("hi")
    assert text.startswith("调用失败: ")
    assert "ANTHROPIC_API_KEY" in text
    response = run_in_new_loop(get_llm_manager(), messages=[{"role": "user", "content": "hi"}])
    assert response.content.startswith("调用失败: ")  # the service's failure, passed through
    assert "ANTHROPIC_API_KEY" in response.content
    assert get_llm_manager().health_check() is False


def test_writes_the_legacy_log_file(server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log_file = tmp_path / "llm.log"
    monkeypatch.setenv("ENABLE_LLM_SPECIAL_LOG", "true")
    monkeypatch.setenv("LLM_LOG_FILE", str(log_file))
    try:
        with closing(SimpleLLMService()) as service:
            response = service.generate_response([{"role": "user", "content": "hi"}])
    finally:
        disable_legacy_log_file()
    assert f"[LLM-REQ-ID: {response.request_id}]" in log_file.read_text(encoding="utf-8")


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


# -- the service factory ---------------------------------------------------------------


def test_register_into_a_dict_and_shut_down(server: FakeServer) -> None:
    registry: dict[str, object] = {}
    services = register_llm_services(registry)
    assert isinstance(services, LLMServices)
    assert set(registry) == {"llm_communication", "llm_service", "llm_manager"}
    assert registry["llm_service"] is get_llm_service() is services.service
    assert registry["llm_manager"] is get_llm_manager() is services.manager
    assert isinstance(registry["llm_communication"], SyncLLMCommunication)
    assert services.service.simple_llm("hi") == "Hello from llmcomm.testing."
    assert portal_running()
    services.shutdown()
    assert not portal_running()
    assert services.service.llm_call("hi").startswith("调用失败: ")
    assert get_llm_service() is not services.service  # a fresh one after shutdown
    services.shutdown()


def test_register_through_a_register_method(server: FakeServer) -> None:
    class Registry:
        def __init__(self) -> None:
            self.entries: dict[str, object] = {}

        def register(self, name: str, instance: object) -> None:
            self.entries[name] = instance

    registry = Registry()
    with register_llm_services(registry, prefix="ai.") as services:
        assert sorted(registry.entries) == ["ai.llm_communication", "ai.llm_manager", "ai.llm_service"]
        assert run_in_new_loop(services.manager, messages=[{"role": "user", "content": "x"}]).content
    assert not portal_running()


def test_shutdown_llm_services_closes_everything(server: FakeServer) -> None:
    server.default = Script(tokens=50, stall_after=2)
    service = get_llm_service()
    assert service.client is not None
    stream = service.client.generate_stream("x")
    next(stream)
    assert shutdown_llm_services() is True
    assert not portal_running()
    upstream = server.requests[-1]
    deadline = time.monotonic() + 1.0
    while upstream.client_closed_at is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert upstream.client_closed_at is not None
    assert shutdown_llm_services() is True
