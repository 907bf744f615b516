"""Every name, signature, default and return convention of LEGACY.md, checked by introspection."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

import llmcomm
from llmcomm import (
    LLMMessage,
    LLMResponse,
    ProviderConfig,
    SimpleLLMManager,
    SimpleLLMService,
    SyncLLMCommunication,
    get_llm_manager,
    get_llm_service,
)
from llmcomm.legacy._singletons import _reset_legacy_singletons

from .helpers import clear_provider_environment

EMPTY = inspect.Parameter.empty
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD


@pytest.fixture(autouse=True)
def _nothing_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    clear_provider_environment(monkeypatch, tmp_path)
    yield
    _reset_legacy_singletons()


def shape(func: Any) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


def hints(func: Any) -> dict[str, Any]:
    return typing.get_type_hints(func)


def test_legacy_names_are_public() -> None:
    for name in ("SimpleLLMService", "LLMMessage", "SimpleLLMManager", "get_llm_service", "get_llm_manager"):
        assert name in llmcomm.__all__
        assert getattr(llmcomm, name) is not None


def test_simple_llm_service_constructor() -> None:
    assert shape(SimpleLLMService.__init__) == [("self", POSITIONAL, EMPTY), ("api_key", POSITIONAL, None)]
    assert hints(SimpleLLMService.__init__)["api_key"] == Optional[str]  # noqa: UP045 - as LEGACY.md writes it


def test_simple_llm_service_attributes_when_nothing_is_configured() -> None:
    service = SimpleLLMService()  # must not raise
    assert service.api_key is None
    assert service.default_model == "claude-3-5-sonnet-20241022"
    assert service.default_max_tokens == 12288
    assert service.client is None


def test_simple_llm_service_attributes_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-configured")
    service = SimpleLLMService()
    try:
        assert service.api_key == "env-key-0123456789"
        assert service.default_model == "claude-configured"
        assert service.default_max_tokens == 12288
        assert isinstance(service.client, SyncLLMCommunication)
    finally:
        service.close()
    explicit = SimpleLLMService(api_key="explicit-key-0123456789")
    try:
        assert explicit.api_key == "explicit-key-0123456789"
        assert explicit.client is not None
        provider = explicit.client.config.providers[0]
        assert isinstance(provider, ProviderConfig)
        assert (provider.kind, provider.api_key) == ("anthropic", "explicit-key-0123456789")
    finally:
        explicit.close()


@pytest.mark.parametrize(
    ("method", "parameters", "returns"),
    [
        ("llm_call", [("prompt", EMPTY)], str),
        ("simple_llm", [("prompt", EMPTY), ("model", None), ("max_tokens", None)], str),
        (
            "llm_call_with_history",
            [("prompt", EMPTY), ("history", None), ("model", None), ("max_tokens", None)],
            str,
        ),
        (
            "generate_response",
            [("messages", EMPTY), ("model", None), ("max_tokens", None), ("request_id", None)],
            LLMResponse,
        ),
        ("quick_test", [], bool),
    ],
)
def test_simple_llm_service_methods(method: str, parameters: list[tuple[str, Any]], returns: type) -> None:
    func = getattr(SimpleLLMService, method)
    assert not inspect.iscoroutinefunction(func), "the legacy service is synchronous"
    expected = [("self", POSITIONAL, EMPTY)] + [(name, POSITIONAL, default) for name, default in parameters]
    if method == "generate_response":
        expected.append(("kwargs", VAR_KEYWORD, EMPTY))
    assert shape(func) == expected
    assert hints(func)["return"] is returns
    for name in ("model", "request_id"):
        if any(p[0] == name for p in parameters):
            assert hints(func)[name] == Optional[str]  # noqa: UP045
    if any(p[0] == "max_tokens" for p in parameters):
        assert hints(func)["max_tokens"] == Optional[int]  # noqa: UP045


def test_llm_response_fields() -> None:
    fields = dataclasses.fields(LLMResponse)
    assert [f.name for f in fields[:5]] == ["content", "model", "usage", "response_time", "provider"]
    assert fields[4].default == "anthropic"
    legacy = LLMResponse("text", "model-x", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, 0.5)  # type: ignore[arg-type]
    assert (legacy.content, legacy.model, legacy.response_time, legacy.provider) == (
        "text",
        "model-x",
        0.5,
        "anthropic",
    )
    assert legacy.usage["total_tokens"] == 3


def test_llm_response_usage_reads_like_the_legacy_dict() -> None:
    response = SimpleLLMService().generate_response([{"role": "user", "content": "hi"}])
    assert dict(response.usage) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert response.usage.get("prompt_tokens") == 0


def test_llm_message() -> None:
    assert dataclasses.is_dataclass(LLMMessage)
    assert [(f.name, f.default) for f in dataclasses.fields(LLMMessage)] == [
        ("role", dataclasses.MISSING),
        ("content", dataclasses.MISSING),
        ("name", None),
    ]
    assert hints(LLMMessage)["name"] == Optional[str]  # noqa: UP045
    message = LLMMessage("system", "be brief")
    assert (message.role, message.content, message.name) == ("system", "be brief", None)


@pytest.mark.parametrize(
    ("method", "parameters", "is_async"),
    [
        (
            "generate_response",
            [("provider", None), ("messages", None), ("request_id", None), ("kwargs", VAR_KEYWORD)],
            True,
        ),
        ("list_available_providers", [], False),
        ("get_provider_info", [("provider", None)], False),
        ("set_default_provider", [("provider", EMPTY)], False),
        ("test_connection", [("provider", None)], True),
        ("health_check", [], False),
        ("get_service", [("provider", None)], False),
        ("register_service", [("provider", EMPTY), ("service", EMPTY)], False),
        ("build_system_prompt", [("role_info", EMPTY)], False),
        ("build_context_messages", [("role_info", EMPTY), ("task_info", EMPTY), ("history_messages", None)], False),
    ],
)
def test_simple_llm_manager_methods(method: str, parameters: list[tuple[str, Any]], is_async: bool) -> None:
    func = getattr(SimpleLLMManager, method)
    assert inspect.iscoroutinefunction(func) is is_async
    expected = [("self", POSITIONAL, EMPTY)]
    for name, default in parameters:
        if default is VAR_KEYWORD:
            expected.append((name, VAR_KEYWORD, EMPTY))
        else:
            expected.append((name, POSITIONAL, default))
    assert shape(func) == expected


def test_simple_llm_manager_return_types() -> None:
    returns = {
        name: hints(getattr(SimpleLLMManager, name))["return"]
        for name in vars(SimpleLLMManager)
        if not name.startswith("_")
    }
    assert returns["generate_response"] is LLMResponse
    assert returns["list_available_providers"] == list[str]
    assert typing.get_origin(returns["get_provider_info"]) is dict
    assert returns["test_connection"] is bool
    assert returns["health_check"] is bool
    assert returns["build_system_prompt"] is str
    assert returns["build_context_messages"] == list[LLMMessage]


def test_simple_llm_manager_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert shape(SimpleLLMManager.__init__) == [("self", POSITIONAL, EMPTY)]
    manager = SimpleLLMManager()
    assert (manager.max_tokens, manager.api_key) == (4096, None)
    assert manager.default_model == "claude-3-5-sonnet-20241022"
    assert manager.simple_llm_service is get_llm_service()  # as the legacy manager did
    _reset_legacy_singletons()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-env")
    monkeypatch.setenv("ANTHROPIC_MAX_TOKENS", "1234")
    configured = SimpleLLMManager()
    assert (configured.api_key, configured.default_model, configured.max_tokens) == (
        "env-key-0123456789",
        "claude-env",
        1234,
    )
    assert configured.get_provider_info() == {
        "provider": "anthropic",
        "model": "claude-env",
        "status": "available",
        "type": "simplified_anthropic",
    }
    assert configured.get_service() is configured.simple_llm_service is get_llm_service()
    assert configured.get_service("anything") is get_llm_service()  # any name, as the legacy manager


def test_manager_model_defaults_to_the_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-local")
    manager = SimpleLLMManager()
    assert manager.default_model == "gpt-local"
    assert manager.list_available_providers() == ["anthropic", "openai"]
    info = manager.get_provider_info("openai")
    assert (info["provider"], info["model"], info["type"]) == ("openai", "gpt-local", "openai")
    assert manager.get_provider_info()["type"] == "openai"  # the default service is not Anthropic here


def test_set_default_provider_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    manager = SimpleLLMManager()
    with caplog.at_level("WARNING", logger="llmcomm.legacy"):
        manager.set_default_provider("no-such-provider")
    assert manager.default_provider == "anthropic"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no-such-provider" in caplog.records[0].getMessage()
    manager.set_default_provider("anthropic")
    assert manager.default_provider == "anthropic"


def test_build_context_messages_as_the_legacy_manager() -> None:
    manager = SimpleLLMManager()
    role = {"name": "老师", "description": "教学", "style": "耐心", "focus_points": ["概念", "实践"]}
    prompt = manager.build_system_prompt(role)
    assert prompt == (
        "你是老师。\n\n角色描述：教学\n发言风格：耐心\n关注点：概念, 实践\n\n"
        "请严格按照你的角色设定进行回复，保持角色的一致性和真实感。"
    )
    assert manager.build_system_prompt({}).startswith(
        "你是AI助手。\n\n角色描述：无描述\n发言风格：自然友好\n关注点：\n"
    )
    task = {"task_type": "ask_question", "description": "提问", "session_topic": "数学", "current_round": 2}
    history = [{"speaker_role": f"学生{i}", "content": f"c{i}"} for i in range(6)]
    history.append({"speaker_role": "老师", "content": "mine"})
    messages = manager.build_context_messages(role, task, history)
    assert [m.role for m in messages] == ["system", "user", "user", "user", "user", "user", "assistant"]
    assert messages[0] == LLMMessage("system", prompt)
    assert messages[1].content == (
        "当前任务：\n任务类型：ask_question\n任务描述：提问\n对话主题：数学\n当前轮次：2\n已执行步数：0\n\n"
        "请根据你的角色设定和当前任务，发表你的观点。"
    )
    assert [m.content for m in messages[2:]] == ["学生2: c2", "学生3: c3", "学生4: c4", "学生5: c5", "mine"]
    assert [m.role for m in manager.build_context_messages(role, {}, None)] == ["system", "user"]
    assert "任务类型：无" in manager.build_context_messages(role, {})[1].content


def test_module_level_getters() -> None:
    assert shape(get_llm_service) == []
    assert shape(get_llm_manager) == []
    assert hints(get_llm_service)["return"] is SimpleLLMService
    assert hints(get_llm_manager)["return"] is SimpleLLMManager
    service = get_llm_service()
    assert get_llm_service() is service
    assert get_llm_manager() is get_llm_manager()
    assert get_llm_manager().get_service() is service


def test_failure_prefixes_when_nothing_is_configured() -> None:
    service = SimpleLLMService()
    hint = "ANTHROPIC_API_KEY"
    assert service.llm_call("hi").startswith("调用失败: ")
    assert service.simple_llm("hi").startswith("调用失败: ")
    assert service.llm_call_with_history("hi", [{"role": "user", "content": "a"}]).startswith("调用失败: ")
    response = service.generate_response([LLMMessage("user", "hi")])
    assert response.content.startswith("调用失败: ")
    assert hint in response.content
    assert service.quick_test() is False


def test_importing_touches_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, threading\n"
        "import llmcomm\n"
        "assert 'anthropic' not in sys.modules and 'openai' not in sys.modules, 'an SDK was imported'\n"
        "assert threading.active_count() == 1, 'a thread was started'\n"
        "service = llmcomm.get_llm_service()\n"
        "manager = llmcomm.get_llm_manager()\n"
        "assert threading.active_count() == 1, 'a thread was started'\n"
        "print(service.llm_call('hi'))\n"
    )
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "ENABLE_LLM_SPECIAL_LOG": "false"}
    if "SYSTEMROOT" in os.environ:  # pragma: no cover - Windows
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("调用失败: ")
    assert "ANTHROPIC_API_KEY" in result.stdout


def test_legacy_module_has_exactly_the_legacy_names(tmp_path: Path) -> None:
    code = (
        "import sys, threading\n"
        "import llmcomm.legacy as legacy\n"
        "assert threading.active_count() == 1 and 'anthropic' not in sys.modules\n"
        "assert sorted(legacy.__all__) == ['LLMMessage', 'LLMResponse', 'SimpleLLMManager', 'SimpleLLMService',"
        " 'get_llm_manager', 'get_llm_service', 'llm_manager', 'simple_llm_service']\n"
        "namespace = {}\n"
        "exec('from llmcomm.legacy import *', namespace)\n"
        "namespace.pop('__builtins__')\n"
        "assert sorted(namespace) == sorted(legacy.__all__), sorted(namespace)\n"
        "assert namespace['llm_manager'] is legacy.get_llm_manager() is legacy.llm_manager\n"
        "assert namespace['simple_llm_service'] is legacy.get_llm_service()\n"
        "assert namespace['llm_manager'].simple_llm_service is namespace['simple_llm_service']\n"
        "assert namespace['LLMResponse'] is __import__('llmcomm').LLMResponse\n"
        "assert threading.active_count() == 1, 'nothing configured: no thread'\n"
        "print(namespace['simple_llm_service'].simple_llm('hi'))\n"
    )
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "ENABLE_LLM_SPECIAL_LOG": "false"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("调用失败: ")
    assert "ANTHROPIC_API_KEY" in result.stdout


def test_legacy_instances_are_made_lazily() -> None:
    import llmcomm.legacy as legacy
    from llmcomm.legacy._singletons import current_legacy_singletons

    assert current_legacy_singletons() == (None, None)
    manager = legacy.llm_manager
    assert current_legacy_singletons() == (legacy.simple_llm_service, manager)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        legacy.nope  # noqa: B018
    assert {"llm_manager", "simple_llm_service"} <= set(dir(legacy))
