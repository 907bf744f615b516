"""`run_tools` over real HTTP to the fake server: both wires, asyncio and trio, and the blocking facade."""

from __future__ import annotations

import threading
from typing import Any, Literal

import anyio
import anyio.lowlevel
import pydantic
import pytest

from llmcomm import (
    HookEvent,
    InvalidRequestError,
    LLMCommunication,
    Message,
    SyncLLMCommunication,
    Tool,
    ToolLoopError,
)
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def population(city: str) -> int:
    """How many people live in a city."""
    await anyio.lowlevel.checkpoint()
    return {"Oslo": 709000}[city]


def broken(city: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"no data for {city}")


def tool_results(body: dict[str, Any], kind: Kind) -> list[tuple[str, bool]]:
    """(content, is_error) of each tool result the request carried."""
    if kind == "openai":
        return [(m["content"], m["content"].startswith("error:")) for m in body["messages"] if m["role"] == "tool"]
    return [
        (b["content"], bool(b.get("is_error")))
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]


async def test_three_steps_with_a_failing_tool(server: FakeServer, kind: Kind) -> None:
    server.enqueue(
        Script(blocks=(("tool_use", "weather", '{"city": "Oslo"}'), ("tool_use", "broken", '{"city": "Oslo"}'))),
        Script(blocks=(("text", "One more."), ("tool_use", "population", '{"city": "Oslo"}'))),
        Script(text="Oslo: sunny, 709000 people."),
    )
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.run_tools("Tell me about Oslo", tools=[weather, population, broken])
    assert response.content == "Oslo: sunny, 709000 people."
    assert response.tool_calls == () and response.finish_reason == "stop"
    roles = [m.role for m in response.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    first, failed, counted = (m for m in response.messages if m.role == "tool")
    assert (first.content, first.is_error) == ("sunny in Oslo", False)
    assert failed.is_error and failed.content == "error: RuntimeError: no data for Oslo"
    assert (counted.content, counted.is_error) == ("709000", False)
    assert len(server.requests) == 3
    assert tool_results(server.requests[1].body, kind) == [
        ("sunny in Oslo", False),
        ("error: RuntimeError: no data for Oslo", True),
    ]
    assert tool_results(server.requests[2].body, kind)[-1] == ("709000", False)
    names = {t["name"] if kind == "anthropic" else t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert names == {"weather", "population", "broken"}


async def test_the_step_limit_raises_with_the_conversation(server: FakeServer, kind: Kind) -> None:
    again = Script(blocks=(("tool_use", "weather", '{"city": "Oslo"}'),))
    server.enqueue(again, again, again)
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(ToolLoopError) as info:
            await llm.run_tools([Message("user", "Weather?")], tools=[weather], max_steps=2)
    assert len(server.requests) == 2
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert "max_steps=2" in str(info.value)


async def test_calls_of_one_step_run_concurrently_sync_ones_in_threads(server: FakeServer, kind: Kind) -> None:
    barrier = threading.Barrier(2, timeout=5)  # passes only when both calls run at once
    threads: list[int] = []

    def meet(name: str) -> str:
        """Wait for the other call."""
        threads.append(threading.get_ident())
        barrier.wait()
        return f"met {name}"

    server.enqueue(
        Script(blocks=(("tool_use", "meet", '{"name": "a"}'), ("tool_use", "meet", '{"name": "b"}'))),
        Script(text="done"),
    )
    loop_thread = threading.get_ident()
    with anyio.fail_after(10):
        async with LLMCommunication(config(provider(server, kind))) as llm:
            response = await llm.run_tools("meet", tools=[meet])
    assert [m.content for m in response.messages if m.role == "tool"] == ["met a", "met b"]  # in call order
    assert len(set(threads)) == 2 and loop_thread not in threads


async def test_unparseable_arguments_and_unknown_tools_are_error_results(server: FakeServer, kind: Kind) -> None:
    server.enqueue(
        Script(blocks=(("tool_use", "weather", '{"city": '), ("tool_use", "nowhere", "{}"))), Script(text="ok")
    )
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.run_tools("x", tools=[weather])
    bad_json, unknown = (m for m in response.messages if m.role == "tool")
    assert bad_json.is_error and "not a JSON object" in str(bad_json.content)
    assert unknown.is_error and "no tool named 'nowhere'" in str(unknown.content)


async def test_tools_given_as_tool_objects_are_offered_and_structured_answers_parse(server: FakeServer) -> None:
    class Answer(pydantic.BaseModel):
        city: str

    declared = Tool("lookup", "Look a thing up", {"type": "object", "properties": {"q": {"type": "string"}}})
    server.enqueue(Script(blocks=(("tool_use", "lookup", '{"q": "x"}'),)), Script(text='{"city": "Oslo"}'))
    async with LLMCommunication(config(provider(server, "openai"))) as llm:
        response = await llm.run_tools("x", tools=[declared, weather], response_format=Answer)
    assert response.parsed == Answer(city="Oslo")
    assert [m.is_error for m in response.messages if m.role == "tool"] == [True]  # no function to run


async def test_each_step_goes_first_to_the_provider_of_the_previous_one(server: FakeServer) -> None:
    server.enqueue(
        Script(status=500),  # the first provider fails the first step
        Script(blocks=(("tool_use", "weather", '{"city": "Oslo"}'),)),
        Script(text="sunny"),
    )
    providers = (provider(server, "openai", name="first"), provider(server, "anthropic", name="second"))
    steps: list[str] = []
    async with LLMCommunication(config(*providers)) as llm:

        @llm.hooks.on_request_end
        def ended(event: HookEvent) -> None:
            steps.append(str(event.provider))

        response = await llm.run_tools("Weather?", tools=[weather])
        snapshot = llm.metrics.snapshot()
    assert response.provider == "second" and response.content == "sunny"
    assert [r.path for r in server.requests] == ["/v1/chat/completions", "/v1/messages", "/v1/messages"]
    assert steps == ["second", "second"]
    assert snapshot["total"]["requests"] == 2


async def test_bad_input_is_refused_before_io(server: FakeServer) -> None:
    async with LLMCommunication(config(provider(server, "anthropic"))) as llm:
        bads: list[dict[str, Any]] = [{"max_steps": 0}, {"max_steps": True}, {"tools": []}, {"tools": "weather"}]
        for bad in bads:
            options: dict[str, Any] = {"tools": [weather], **bad}
            with pytest.raises(InvalidRequestError):
                await llm.run_tools("x", **options)
    assert server.requests == []


def test_the_blocking_facade_runs_the_loop() -> None:
    with FakeServer() as fake:
        fake.enqueue(Script(blocks=(("tool_use", "population", '{"city": "Oslo"}'),)), Script(text="709000"))
        with SyncLLMCommunication(config(provider(fake, "anthropic"))) as llm:
            response = llm.run_tools("How many?", tools=[population])
        assert response.content == "709000"
        assert [m.role for m in response.messages] == ["user", "assistant", "tool", "assistant"]


async def test_arguments_are_checked_against_the_type_hints(server: FakeServer, kind: Kind) -> None:
    class Spec(pydantic.BaseModel):
        size: int

    def scale(factor: int, label: str = "x") -> str:
        """Scale by an integer factor."""
        Spec.model_validate({"size": "not a number"} if factor == 7 else {"size": factor})
        return f"{label}*{factor * 2}"

    server.enqueue(
        Script(
            blocks=(
                ("tool_use", "scale", '{"factor": "3"}'),  # coerced to 3
                ("tool_use", "scale", '{"factor": "many", "extra": 1}'),  # refused before the call
                ("tool_use", "scale", '{"factor": 7}'),  # fails inside the tool
            )
        ),
        Script(text="done"),
    )
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.run_tools("scale", tools=[scale])
    coerced, refused, inner = (m for m in response.messages if m.role == "tool")
    assert (coerced.content, coerced.is_error) == ("x*6", False)
    assert refused.is_error and str(refused.content).startswith("error: invalid arguments: factor: Input should be")
    assert "extra: Unexpected keyword argument" in str(refused.content)
    assert inner.is_error and str(inner.content).startswith("error: ValidationError: 1 validation error for Spec")
