"""Tool calls, reasoning and images over real HTTP to the fake server: both wires, asyncio and trio."""

from __future__ import annotations

import base64
from typing import Any, Literal

import pytest

from llmcomm import (
    ImagePart,
    LLMCommunication,
    LLMResponse,
    Message,
    ReasoningPart,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
)
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]
WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
TWO_CALLS = Script(
    blocks=(
        ("text", "Let me check both."),
        ("tool_use", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
        ("tool_use", "get_weather", '{"city": "Rome", "unit": "celsius"}'),
    )
)
RAW_FINISH = {"anthropic": ("end_turn", "tool_use"), "openai": ("stop", "tool_calls")}


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


async def stream(
    server: FakeServer, kind: Kind, messages: Any, **options: Any
) -> tuple[LLMResponse, list[StreamChunk]]:
    async with LLMCommunication(config(provider(server, kind))) as llm:
        async with llm.generate_stream(messages, **options) as s:
            chunks = [chunk async for chunk in s]
        assert s.response is not None
        return s.response, chunks


async def test_parallel_tool_calls_stream_in_pieces_and_add_up(server: FakeServer, kind: Kind) -> None:
    server.enqueue(TWO_CALLS)
    response, chunks = await stream(server, kind, "Weather in Paris and Rome?", tools=[WEATHER])
    deltas = [c.tool_call for c in chunks if c.tool_call is not None]
    assert len([d for d in deltas if not d.done]) > 6  # the JSON came in many pieces
    assert [d.index for d in deltas if d.done] == [0, 1]
    assert [d.name for d in deltas if d.name] == ["get_weather", "get_weather"]
    assert "".join(d.arguments for d in deltas if d.index == 1) == '{"city": "Rome", "unit": "celsius"}'
    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_weather", {"city": "Rome", "unit": "celsius"}),
    ]
    assert response.tool_calls[0].id != response.tool_calls[1].id
    assert response.content == "Let me check both."
    assert (response.finish_reason, response.raw_finish_reason) == ("tool_calls", RAW_FINISH[kind][1])
    assert response.provider_request_id is not None and response.provider_request_id.startswith("req_fake")
    sent = server.requests[-1].body
    assert sent["tools"][0]["name" if kind == "anthropic" else "function"] in ("get_weather", {
        "name": "get_weather", "description": "Weather in a city", "parameters": WEATHER.parameters})  # fmt: skip
    message = response.to_message()
    assert (message.role, message.tool_calls) == ("assistant", response.tool_calls)


async def test_a_tool_call_without_streaming_reads_the_same(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(blocks=TWO_CALLS.blocks, stream_as_json=True))
    response, _ = await stream(server, kind, "Weather?", tools=[WEATHER])
    assert [c.arguments["city"] for c in response.tool_calls] == ["Paris", "Rome"]
    assert response.finish_reason == "tool_calls"


async def test_thinking_then_text(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(blocks=(("thinking", "The user wants a greeting."), ("text", "Hello there."))))
    response, chunks = await stream(server, kind, "hi", reasoning_effort="high")
    reasoning = [c for c in chunks if c.reasoning]
    assert len(reasoning) > 1
    assert all(not c.text for c in reasoning)
    assert response.reasoning == "The user wants a greeting."
    assert response.content == "Hello there."
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", RAW_FINISH[kind][0])
    sent = server.requests[-1].body
    if kind == "anthropic":
        assert sent["thinking"] == {"type": "adaptive", "display": "summarized"}
        assert sent["output_config"] == {"effort": "high"}
        first = response.to_message().content[0]
        assert first == ReasoningPart("The user wants a greeting.", "fake-signature", None, "anthropic")
    else:
        assert sent["reasoning_effort"] == "high"


async def test_interleaved_thinking_keeps_each_block(server: FakeServer) -> None:
    server.enqueue(
        Script(
            blocks=(
                ("thinking", "First I look it up."),
                ("tool_use", "get_weather", '{"city": "Paris"}'),
                ("redacted_thinking", "opaque-bytes"),
                ("thinking", "Then I answer."),
                ("text", "Done."),
            )
        )
    )
    response, _ = await stream(server, "anthropic", "Weather?", tools=[WEATHER], reasoning_effort="low")
    assert [(p.text, p.signature, p.redacted) for p in response.reasoning_parts] == [
        ("First I look it up.", "fake-signature", None),
        ("", None, "opaque-bytes"),
        ("Then I answer.", "fake-signature", None),
    ]
    assert response.tool_calls == (ToolCall(response.tool_calls[0].id, "get_weather", {"city": "Paris"}),)
    assert response.reasoning == "First I look it up.Then I answer."


async def test_an_image_reaches_the_server_in_the_wires_own_form(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text="A black square."))
    message = Message("user", (TextPart("What is this?"), ImagePart(data=PNG)))
    response, _ = await stream(server, kind, [message])
    assert response.content == "A black square."
    content = server.requests[-1].body["messages"][-1]["content"]
    encoded = base64.b64encode(PNG).decode()
    if kind == "anthropic":
        assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}}
    else:
        assert content[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


async def test_a_tool_conversation_goes_anthropic_then_openai_then_anthropic(server: FakeServer) -> None:
    """Each step falls back to the other provider; the conversation carries across the wires."""
    providers = (provider(server, "anthropic", name="claude"), provider(server, "openai", name="gpt"))
    server.enqueue(
        Script(blocks=(("thinking", "Need the weather."), ("tool_use", "get_weather", '{"city": "Paris"}'))),
        Script(status=503),  # step 2: claude fails, gpt answers
        Script(blocks=(("tool_use", "get_weather", '{"city": "Rome"}'),)),
        Script(text="Paris 18 C, Rome 21 C."),  # step 3: claude again
    )
    messages: list[Message] = [Message("user", "Weather in Paris, then Rome?")]
    async with LLMCommunication(config(*providers)) as llm:
        first = await llm.generate_response(messages, tools=[WEATHER])
        assert first.provider == "claude"
        messages += [first.to_message(), Message("tool", "18 C", tool_call_id=first.tool_calls[0].id)]
        second = await llm.generate_response(messages, tools=[WEATHER])
        assert second.provider == "gpt"
        messages += [second.to_message(), Message("tool", "21 C", tool_call_id=second.tool_calls[0].id)]
        third = await llm.generate_response(messages, tools=[WEATHER], provider="claude")
    assert third.content == "Paris 18 C, Rome 21 C."
    to_gpt = server.requests[2].body["messages"]
    assert [m["role"] for m in to_gpt] == ["user", "assistant", "tool"]
    assert "reasoning_content" not in to_gpt[1]  # claude's thinking stays with claude
    assert to_gpt[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    to_claude = server.requests[3].body["messages"]
    assert [m["role"] for m in to_claude] == ["user", "assistant", "user", "assistant", "user"]
    assert [b["type"] for b in to_claude[1]["content"]] == ["thinking", "tool_use"]  # its own thinking, signed
    assert to_claude[3]["content"] == [
        {"type": "tool_use", "id": second.tool_calls[0].id, "name": "get_weather", "input": {"city": "Rome"}}
    ]
    assert to_claude[4]["content"] == [
        {"type": "tool_result", "tool_use_id": second.tool_calls[0].id, "content": "21 C"}
    ]


def test_the_blocking_facade_takes_the_same_options(kind: Kind) -> None:
    from llmcomm import SyncLLMCommunication

    with FakeServer() as server:
        server.enqueue(TWO_CALLS)
        with SyncLLMCommunication(config(provider(server, kind))) as llm:
            response = llm.generate_response("Weather?", tools=[WEATHER], tool_choice="required")
    assert [c.arguments["city"] for c in response.tool_calls] == ["Paris", "Rome"]
    choice = server.requests[-1].body["tool_choice"]
    assert choice == ({"type": "any"} if kind == "anthropic" else "required")
