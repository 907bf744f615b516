"""Capability planning: providers that cannot serve a call are skipped; none can -> InvalidRequestError before I/O."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import pytest

from llmcomm import (
    ConfigurationError,
    DocumentPart,
    ImagePart,
    InvalidRequestError,
    LLMCommunication,
    Message,
    ProviderConfig,
    Tool,
    ToolCall,
)
from llmcomm._capabilities import capabilities_of, plan, requirements
from llmcomm._request import build_request
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
WEATHER = Tool("get_weather", "", {"type": "object"})
CALL = ToolCall("c1", "get_weather", {})


@pytest.mark.parametrize(
    ("messages", "options", "needs"),
    [
        pytest.param("hi", {}, set(), id="text"),
        pytest.param("hi", {"tools": [WEATHER]}, {"tools"}, id="tools"),
        pytest.param([Message("user", (ImagePart(data=PNG),))], {}, {"images"}, id="image"),
        pytest.param([Message("user", (DocumentPart(data=b"%PDF"),))], {}, {"documents"}, id="document"),
        pytest.param("hi", {"reasoning_effort": "low"}, {"reasoning"}, id="reasoning"),
        pytest.param("hi", {"reasoning_effort": "none"}, set(), id="no-reasoning"),
        pytest.param([Message("user", "q"), Message("assistant", "", tool_calls=(CALL,)),
                      Message("tool", "r", tool_call_id="c1")], {}, {"tools"}, id="tool-history"),
    ],
)  # fmt: skip
def test_a_calls_requirements(messages: Any, options: dict[str, Any], needs: set[str]) -> None:
    assert requirements(build_request(messages, options)) == needs


@dataclass
class Fake:
    name: str
    kind: str = "openai"
    capabilities: AbstractSet[str] | None = None


def test_plan_keeps_the_order_and_names_what_each_skipped_provider_lacks() -> None:
    text_only = Fake("local", capabilities=frozenset())
    vision = Fake("gpt")
    cli = Fake("cli", kind="claude_cli")
    usable, skipped = plan(frozenset({"documents"}), [text_only, vision, cli])
    assert usable == (vision,)
    assert skipped == ((text_only, frozenset({"documents"})), (cli, frozenset({"documents"})))
    assert plan(frozenset(), [text_only]) == ((text_only,), ())


def test_when_no_provider_can_the_error_names_the_gap() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(
            frozenset({"documents", "tools"}),
            [Fake("local", capabilities=frozenset({"tools"})), Fake("cli", "claude_cli")],
        )
    message = str(caught.value)
    assert "'local' lacks documents" in message
    assert "'cli' lacks documents, tools" in message
    assert "ProviderConfig(capabilities=" in message


def test_a_configuration_replaces_the_kinds_default() -> None:
    plain = ProviderConfig(name="p", kind="openai")
    blind = ProviderConfig(name="b", kind="openai", capabilities={"tools"})
    assert "images" in capabilities_of(Fake("x", capabilities=plain.capabilities))
    assert blind.capabilities == frozenset({"tools"})
    with pytest.raises(ConfigurationError, match="unknown capabilities \\['vision'\\]"):
        ProviderConfig(name="b", kind="openai", capabilities={"vision"})
    with pytest.raises(ConfigurationError, match="not a str"):
        ProviderConfig(name="b", kind="openai", capabilities="tools")  # type: ignore[arg-type]


pytestmark = pytest.mark.anyio


async def test_a_provider_without_vision_is_skipped_and_shown_in_attempts(server: FakeServer) -> None:
    server.enqueue(Script(text="A square."))
    blind = provider(server, "openai", name="blind", capabilities={"tools"})
    async with LLMCommunication(config(blind, provider(server, "anthropic", name="claude"))) as llm:
        response = await llm.generate_response([Message("user", (ImagePart(data=PNG),))])
    assert (response.provider, response.content) == ("claude", "A square.")
    assert [(a.provider, a.outcome) for a in response.attempts] == [("blind", "skipped-unsupported"), ("claude", "won")]
    assert server.request_count == 1
    assert server.requests[0].path == "/v1/messages"


async def test_when_none_can_serve_nothing_is_sent(server: FakeServer) -> None:
    blind = provider(server, "openai", name="blind", capabilities=set())
    async with LLMCommunication(config(blind)) as llm:
        with pytest.raises(InvalidRequestError, match="needs tools: 'blind' lacks tools"):
            await llm.generate_response("hi", tools=[WEATHER])
    assert server.request_count == 0
