"""Request bodies for parts, tools, reasoning and cache hints, on both wires, without sockets."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from llmcomm import DocumentPart, ImagePart, InvalidRequestError, Message, ReasoningPart, TextPart, Tool, ToolCall
from llmcomm._model_facts import anthropic_takes_effort, anthropic_thinking
from llmcomm._request import build_request
from llmcomm._wire._anthropic_body import anthropic_body
from llmcomm._wire._openai_body import openai_fields, openai_messages
from llmcomm._wire._parts import portable_id

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
PNG64 = base64.b64encode(PNG).decode()
PDF = b"%PDF-1.4 tiny"
PDF64 = base64.b64encode(PDF).decode()
WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
CALL = ToolCall("call_1", "get_weather", {"city": "Paris"})
EPHEMERAL = {"type": "ephemeral"}


def anthropic(
    messages: Any, model: str = "claude-sonnet-5-5", provider: str = "anthropic", **options: Any
) -> dict[str, Any]:
    return anthropic_body(build_request(messages, options), model=model, max_tokens=1000, provider=provider)


def openai(messages: Any, provider: str = "openai", **options: Any) -> dict[str, Any]:
    request = build_request(messages, options)
    return {"messages": openai_messages(request, provider), **openai_fields(request)}


TOOL_TURNS = [Message("user", "Weather in Paris?"), Message("assistant", "Looking.", tool_calls=(CALL,)),
              Message("tool", "18 C", tool_call_id="call_1")]  # fmt: skip


def test_text_only_requests_keep_their_plain_shape() -> None:
    body = anthropic([Message("user", "hi")], system="Be brief.")
    assert body == {"model": "claude-sonnet-5-5", "max_tokens": 1000, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    assert openai("hi", system="Be brief.") == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    }


def test_images_and_documents_on_both_wires() -> None:
    parts = (TextPart("What is this?"), ImagePart(data=PNG), ImagePart(url="https://x.test/a.jpg"),
             DocumentPart(data=PDF, title="Spec"))  # fmt: skip
    assert anthropic([Message("user", parts)])["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG64}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF64},
         "title": "Spec"},
    ]  # fmt: skip
    assert openai([Message("user", parts)])["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
        {"type": "file", "file": {"filename": "Spec", "file_data": f"data:application/pdf;base64,{PDF64}"}},
    ]


def test_a_document_by_url_is_refused_by_chat_completions() -> None:
    with pytest.raises(InvalidRequestError, match="DocumentPart\\(data="):
        openai([Message("user", (DocumentPart(url="https://x.test/a.pdf"),))])


def test_a_tool_conversation_on_anthropic() -> None:
    body = anthropic([*TOOL_TURNS, Message("user", "And tomorrow?")], tools=[WEATHER])
    assert body["tools"] == [{"name": "get_weather", "description": "Weather in a city",
                              "input_schema": WEATHER.parameters}]  # fmt: skip
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
            {"type": "text", "text": "And tomorrow?"}]},
    ]  # fmt: skip


def test_parallel_tool_results_share_one_user_turn() -> None:
    calls = (ToolCall("a", "get_weather", {"city": "Paris"}), ToolCall("b", "get_weather", {"city": "Rome"}))
    turns = [Message("user", "Both?"), Message("assistant", "", tool_calls=calls),
             Message("tool", "18 C", tool_call_id="a"), Message("tool", "failed", tool_call_id="b", is_error=True)]  # fmt: skip
    messages = anthropic(turns, tools=[WEATHER])["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "18 C"},
        {"type": "tool_result", "tool_use_id": "b", "content": "failed", "is_error": True},
    ]
    assert [m["role"] for m in openai(turns, tools=[WEATHER])["messages"]] == ["user", "assistant", "tool", "tool"]


def test_a_tool_conversation_on_openai() -> None:
    body = openai(TOOL_TURNS, tools=[WEATHER], tool_choice="get_weather", parallel_tool_calls=False)
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]  # fmt: skip
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER.parameters,
                                                               "description": "Weather in a city"}}]  # fmt: skip
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_a_tool_results_images_follow_it_as_a_user_message_on_openai() -> None:
    turns = [*TOOL_TURNS[:2], Message("tool", (TextPart("chart:"), ImagePart(data=PNG)), tool_call_id="call_1")]
    messages = openai(turns, tools=[WEATHER])["messages"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "chart:"}
    assert messages[3]["role"] == "user"
    assert messages[3]["content"][1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}}
    result = anthropic(turns, tools=[WEATHER])["messages"][2]["content"][0]
    assert result["content"][1]["type"] == "image"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        pytest.param("auto", None, {"type": "auto"}, id="auto"),
        pytest.param("none", None, {"type": "none"}, id="none"),
        pytest.param("required", None, {"type": "any"}, id="required-is-any"),
        pytest.param("get_weather", None, {"type": "tool", "name": "get_weather"}, id="by-name"),
        pytest.param(None, False, {"type": "auto", "disable_parallel_tool_use": True}, id="no-parallel"),
        pytest.param("required", False, {"type": "any", "disable_parallel_tool_use": True}, id="any-no-parallel"),
        pytest.param(None, True, None, id="parallel-is-the-default"),
    ],
)
def test_anthropic_tool_choice(choice: str | None, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body = anthropic("q", tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel)
    assert body.get("tool_choice") == expected


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "output_config"),
    [
        pytest.param("claude-sonnet-5-5", "high", {"type": "adaptive", "display": "summarized"}, {"effort": "high"},
                     id="adaptive"),
        pytest.param("claude-opus-4-6", "minimal", {"type": "adaptive", "display": "summarized"}, {"effort": "low"},
                     id="minimal-is-low"),
        pytest.param("claude-sonnet-5-5", "none", {"type": "disabled"}, None, id="none-disables"),
        pytest.param("claude-sonnet-4-20250514", "medium", {"type": "enabled", "budget_tokens": 1024}, None,
                     id="budget-only-model"),
        pytest.param("claude-3-7-sonnet-20250219", "low", {"type": "enabled", "budget_tokens": 1024}, None,
                     id="old-naming"),
        pytest.param("claude-opus-4-5", "max", {"type": "enabled", "budget_tokens": 1024}, {"effort": "max"},
                     id="opus-4-5-takes-effort"),
    ],
)  # fmt: skip
def test_anthropic_reasoning(model: str, effort: str, thinking: dict[str, Any], output_config: Any) -> None:
    body = anthropic("q", model=model, reasoning_effort=effort)
    assert body["thinking"] == thinking
    assert body.get("output_config") == output_config
    assert body["max_tokens"] == (2024 if thinking["type"] == "enabled" else 1000)


def test_a_thinking_budget_fits_under_a_large_max_tokens() -> None:
    request = build_request("q", {"reasoning_effort": "medium"})
    body = anthropic_body(request, model="claude-sonnet-4-5", max_tokens=20000, provider="a")
    assert (body["thinking"]["budget_tokens"], body["max_tokens"]) == (8192, 20000)


def test_model_facts() -> None:
    assert anthropic_thinking("claude-opus-4-1-20250805") == "enabled"
    assert anthropic_thinking("claude-haiku-4-5") == "enabled"
    assert anthropic_thinking("claude-opus-4-7") == "adaptive"
    assert anthropic_thinking("my-gateway-model") == "adaptive"
    assert not anthropic_takes_effort("claude-sonnet-4-5")


def test_a_forced_tool_choice_is_never_sent_with_thinking() -> None:
    body = anthropic("q", tools=[WEATHER], tool_choice="required", reasoning_effort="high")
    assert "thinking" not in body
    assert body["tool_choice"] == {"type": "any"}


def test_openai_sends_reasoning_effort_as_is() -> None:
    assert openai("q", reasoning_effort="xhigh")["reasoning_effort"] == "xhigh"
    assert "reasoning_effort" not in openai("q")


def test_reasoning_goes_back_only_to_the_provider_that_made_it() -> None:
    thought = ReasoningPart("I should look it up.", signature="sig-1", provider="claude")
    redacted = ReasoningPart("", redacted="opaque", provider="claude")
    turns = [Message("user", "q"), Message("assistant", (thought, redacted, TextPart("Looking.")), tool_calls=(CALL,)),
             Message("tool", "18 C", tool_call_id="call_1")]  # fmt: skip
    mine = anthropic(turns, provider="claude", tools=[WEATHER])["messages"][1]["content"]
    assert mine[:2] == [
        {"type": "thinking", "thinking": "I should look it up.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    other = anthropic(turns, provider="other", tools=[WEATHER])["messages"][1]["content"]
    assert [b["type"] for b in other] == ["text", "tool_use"]
    assert "reasoning_content" not in openai(turns, tools=[WEATHER])["messages"][1]
    compatible = [Message("user", "q"), Message("assistant", (ReasoningPart("hmm", provider="ds"), TextPart("A"))),
                  Message("user", "more")]  # fmt: skip
    assert openai(compatible, provider="ds")["messages"][1] == {"role": "assistant", "content": "A",
                                                                "reasoning_content": "hmm"}  # fmt: skip


def test_cache_breakpoints_are_the_last_four() -> None:
    turns = [Message("user", tuple(TextPart(f"doc {i}", cache=True) for i in range(5)))]
    body = anthropic(turns, system="sys", cache=True)
    blocks = body["messages"][0]["content"]
    marked = [b["text"] for b in blocks if "cache_control" in b]
    assert marked == ["doc 2", "doc 3", "doc 4"]
    assert "cache_control" not in body["system"][0]  # five earlier breakpoints pushed it out
    small = anthropic("q", system="sys", cache=True)
    assert small["system"] == [{"type": "text", "text": "sys", "cache_control": EPHEMERAL}]
    assert small["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": EPHEMERAL}]}
    ]
    tool = Tool("t", "", {"type": "object"}, cache=True)
    assert anthropic("q", tools=[tool])["tools"][0]["cache_control"] == EPHEMERAL


@pytest.mark.parametrize(
    ("call_id", "kept"),
    [("call_1", True), ("toolu_01ABCxyz", True), ("functions.get_weather:0", False), ("a" * 65, False),
     ("id with space", False)],
)  # fmt: skip
def test_ids_other_wires_cannot_take_are_rewritten_the_same_way_every_time(call_id: str, kept: bool) -> None:
    rewritten = portable_id(call_id)
    assert (rewritten == call_id) is kept
    assert rewritten == portable_id(call_id)
    turns = [Message("user", "q"), Message("assistant", "", tool_calls=(ToolCall(call_id, "get_weather", {}),)),
             Message("tool", "r", tool_call_id=call_id)]  # fmt: skip
    messages = anthropic(turns, tools=[WEATHER])["messages"]
    assert messages[1]["content"][0]["id"] == messages[2]["content"][0]["tool_use_id"] == rewritten
    assert openai(turns, tools=[WEATHER])["messages"][2]["tool_call_id"] == call_id  # the wire that made it
