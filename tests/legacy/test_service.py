"""`SimpleLLMService` and the service factory against `llmcomm.testing`, called as the legacy application calls them."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from llmcomm import (
    LLMMessage,
    LLMServices,
    SimpleLLMService,
    SyncLLMCommunication,
    get_llm_manager,
    get_llm_service,
    register_llm_services,
    shutdown_llm_services,
)
from llmcomm._observability import disable_legacy_log_file
from llmcomm.testing import FakeServer, Script

from ..helpers import refused_url
from ._support import KEY, REQUEST_ID, body, portal_running, run_in_new_loop

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
    assert (sent["top_k"], sent["stream"]) == (5, True)
    # The configured model is a current Claude, which takes no sampling options: the hint is left out.
    assert "temperature" not in sent
    assert response.attempts[-1].dropped == ("temperature",)


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


@pytest.mark.parametrize("switch", [None, "", "false", "0"])
def test_no_log_file_is_created_unless_the_application_asks(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, switch: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLM_LOG_FILE", raising=False)
    if switch is None:
        monkeypatch.delenv("ENABLE_LLM_SPECIAL_LOG", raising=False)
    else:
        monkeypatch.setenv("ENABLE_LLM_SPECIAL_LOG", switch)
    with closing(SimpleLLMService()) as service:
        assert service.llm_call("hi") == "Hello from llmcomm.testing."
    assert not (tmp_path / "logs").exists()
    assert list(tmp_path.iterdir()) == []


def test_the_log_file_switch_is_read_from_dotenv_too(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENABLE_LLM_SPECIAL_LOG", raising=False)
    monkeypatch.delenv("LLM_LOG_FILE", raising=False)
    (tmp_path / ".env").write_text("ENABLE_LLM_SPECIAL_LOG=true\nLLM_LOG_FILE=llm.log\n", encoding="utf-8")
    try:
        with closing(SimpleLLMService()) as service:
            response = service.generate_response([{"role": "user", "content": "hi"}])
    finally:
        disable_legacy_log_file()
    assert f"[LLM-REQ-ID: {response.request_id}]" in (tmp_path / "llm.log").read_text(encoding="utf-8")
