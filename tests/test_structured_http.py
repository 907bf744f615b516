"""Structured output over real HTTP to the fake server: both wires, asyncio and trio."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pydantic
import pytest

from llmcomm import (
    InvalidRequestError,
    LLMCommunication,
    OutputValidationError,
    ProviderConfig,
    StreamInterruptedError,
    SyncLLMCommunication,
)
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider, refused_url

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]


class City(pydantic.BaseModel):
    name: str
    population: int


GOOD = '{"name": "Oslo", "population": 709000}'


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


def sent_schema(body: dict[str, Any], kind: Kind) -> Any:
    if kind == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
        return body["output_config"]["format"]["schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    return body["response_format"]["json_schema"]["schema"]


async def test_a_model_comes_back_parsed_and_the_schema_went_natively(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text=GOOD))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.generate_response("Biggest city in Norway?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
    assert response.content == GOOD
    schema = sent_schema(server.requests[-1].body, kind)
    assert schema["additionalProperties"] is False and schema["required"] == ["name", "population"]
    if kind == "openai":
        assert server.requests[-1].body["response_format"]["json_schema"]["name"] == "City"


async def test_a_schema_dict_is_decoded_and_a_list_is_unwrapped(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text='{"result": [1, 2, 3]}'), Script(text='{"free": "form", "n": 1}'))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        numbers = await llm.generate_response("Three numbers", response_format=list[int])
        decoded = await llm.generate_response("Anything", response_format={"type": "object", "properties": {}})
    assert numbers.parsed == [1, 2, 3]
    assert sent_schema(server.requests[0].body, kind)["properties"]["result"]["type"] == "array"
    assert decoded.parsed == {"free": "form", "n": 1}


async def test_invalid_json_then_valid_on_the_retry(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text="Sure! Oslo, about 700k."), Script(text=GOOD))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        response = await llm.generate_response("Biggest city in Norway?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
    assert len(server.requests) == 2
    retry = server.requests[1].body["messages"]
    assert retry[-2]["role"] == "assistant" and "Sure! Oslo" in str(retry[-2]["content"])
    assert retry[-1]["role"] == "user" and "not valid JSON" in str(retry[-1]["content"])


async def test_failing_validation_on_every_turn_raises_with_the_raw_reply(server: FakeServer, kind: Kind) -> None:
    bad = '{"name": "Oslo", "population": "many"}'
    server.enqueue(Script(text=bad), Script(text=bad), Script(text=bad))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(OutputValidationError) as info:
            await llm.generate_response("Biggest city?", response_format=City, output_retries=2)
    err = info.value
    assert (err.content, err.attempts, err.provider) == (bad, 3, kind)
    assert err.errors[0]["loc"] == ["population"] and err.errors[0]["type"] == "int_parsing"
    assert "3 replies did not match" in str(err) and err.request_id
    assert len(server.requests) == 3


async def test_a_length_stop_raises_at_once(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text='{"name": "Os', stop_reason="max_tokens"), Script(text=GOOD))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(OutputValidationError) as info:
            await llm.generate_response("Biggest city?", response_format=City)
    assert (info.value.finish_reason, info.value.attempts, len(server.requests)) == ("length", 1, 1)


async def test_retries_exhausted_then_the_next_provider(server: FakeServer) -> None:
    server.enqueue(Script(text="nope"), Script(text="still nope"), Script(text=GOOD))
    providers = (provider(server, "anthropic"), provider(server, "openai"))
    async with LLMCommunication(config(*providers)) as llm:
        response = await llm.generate_response("Biggest city?", response_format=City)
    assert response.provider == "openai" and response.parsed == City(name="Oslo", population=709000)
    assert [r.path for r in server.requests] == ["/v1/messages", "/v1/messages", "/v1/chat/completions"]
    # the next provider gets the conversation as the caller gave it, not the failed turns
    assert [m["role"] for m in server.requests[2].body["messages"]] == ["user"]


async def test_a_provider_without_response_format_is_skipped(server: FakeServer) -> None:
    server.enqueue(Script(text=GOOD))
    providers = (
        provider(server, "openai", name="plain", capabilities=set()),
        provider(server, "anthropic", name="native"),
    )
    async with LLMCommunication(config(*providers)) as llm:
        response = await llm.generate_response("Biggest city?", response_format=City)
        assert response.provider == "native"
        assert [(a.provider, a.outcome) for a in response.attempts] == [
            ("plain", "skipped-unsupported"),
            ("native", "won"),
        ]
        assert len(server.requests) == 1
        with pytest.raises(InvalidRequestError, match="response_format"):
            await llm.generate_response("x", response_format=City, provider="plain")
    assert len(server.requests) == 1


async def test_none_can_is_refused_before_io(server: FakeServer) -> None:
    only = provider(server, "openai", capabilities={"tools"})
    async with LLMCommunication(config(only)) as llm:
        with pytest.raises(InvalidRequestError, match="needs response_format"):
            await llm.generate_response("x", response_format=City)
        with pytest.raises(InvalidRequestError, match="output_retries"):
            await llm.generate_response("x", output_retries=2)
        with pytest.raises(InvalidRequestError, match="output_retries must be"):
            await llm.generate_response("x", response_format={"type": "object"}, output_retries=-1)
        with pytest.raises(InvalidRequestError, match="response_format must be"):
            await llm.generate_response("x", response_format="json")
    assert server.requests == []


async def test_a_stream_yields_the_json_and_validates_at_its_end(server: FakeServer, kind: Kind) -> None:
    server.enqueue(Script(text=GOOD), Script(text="not json at all"))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        async with llm.generate_stream("City?", response_format=City) as stream:
            texts = [chunk.text async for chunk in stream]
        assert len(texts) > 1 and "".join(texts) == GOOD
        assert stream.response is not None and stream.response.parsed == City(name="Oslo", population=709000)
        got: list[str] = []
        with pytest.raises(OutputValidationError) as info:
            async with llm.generate_stream("City?", response_format=City) as bad:
                async for chunk in bad:
                    got.append(chunk.text)
        assert "".join(got) == "not json at all" == info.value.content
    assert len(server.requests) == 2  # a stream is not asked again


async def test_tool_calls_and_a_refusal_give_parsed_none(server: FakeServer) -> None:
    server.enqueue(Script(blocks=(("tool_use", "lookup", '{"q": "oslo"}'),)), Script(text="", stop_reason="refusal"))
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    async with LLMCommunication(config(provider(server, "anthropic"))) as llm:
        called = await llm.generate_response("City?", response_format=City, tools=[lookup])
        refused = await llm.generate_response("City?", response_format=City)
    assert called.parsed is None and called.tool_calls
    assert refused.parsed is None and refused.finish_reason == "refusal"


async def test_effort_and_format_share_output_config(server: FakeServer) -> None:
    server.enqueue(Script(text=GOOD))
    anthropic = provider(server, "anthropic", model="claude-opus-4-7")
    async with LLMCommunication(config(anthropic)) as llm:
        await llm.generate_response("City?", response_format=City, reasoning_effort="low")
    output_config = server.requests[-1].body["output_config"]
    assert output_config["effort"] == "low" and output_config["format"]["type"] == "json_schema"


def test_the_blocking_facade_parses_too() -> None:
    with FakeServer() as fake:
        fake.enqueue(Script(text="oops"), Script(text=GOOD))
        with SyncLLMCommunication(config(provider(fake, "openai"))) as llm:
            response = llm.generate_response("City?", response_format=City)
        assert response.parsed == City(name="Oslo", population=709000)
        assert len(fake.requests) == 2


def test_cli_provider_takes_response_format_by_default() -> None:
    cli = ProviderConfig(name="cli", kind="claude_cli", cli_path="/bin/true")
    from llmcomm._capabilities import capabilities_of

    class Stub:
        config = cli
        kind = "claude_cli"

    assert "response_format" in capabilities_of(Stub())


async def test_an_openai_refusal_gives_parsed_none_without_a_retry(server: FakeServer) -> None:
    refusal = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": refusal, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
    server.enqueue(Script(body_override=orjson.dumps(body), content_type="application/json"))
    async with LLMCommunication(config(provider(server, "openai"))) as llm:
        response = await llm.generate_response("City?", response_format=City)
    assert (response.parsed, response.refusal) == (None, "I can't help with that.")
    assert len(server.requests) == 1


async def test_a_failing_retry_moves_on_and_earlier_failed_providers_are_not_asked(server: FakeServer) -> None:
    server.enqueue(Script(text="nope"), Script(status=500), Script(text=GOOD))
    down = ProviderConfig(name="down", kind="openai", base_url=refused_url("openai"), api_key="sk-x")
    providers = (down, provider(server, "anthropic", name="b"), provider(server, "openai", name="c"))
    async with LLMCommunication(config(*providers)) as llm:
        response = await llm.generate_response("City?", response_format=City)
    assert response.provider == "c" and response.parsed == City(name="Oslo", population=709000)
    assert [r.path for r in server.requests] == ["/v1/messages", "/v1/messages", "/v1/chat/completions"]


async def test_a_stream_refuses_output_retries_before_io(server: FakeServer) -> None:
    async with LLMCommunication(config(provider(server, "openai"))) as llm:
        with pytest.raises(InvalidRequestError, match="a stream is validated once"):
            llm.generate_stream("x", response_format=City, output_retries=1)
    assert server.requests == []


def test_a_blocking_stream_validates_at_its_end() -> None:
    with FakeServer() as fake:
        fake.enqueue(Script(text=GOOD), Script(text="nope"))
        with SyncLLMCommunication(config(provider(fake, "anthropic"))) as llm:
            with llm.generate_stream("City?", response_format=City) as stream:
                assert "".join(chunk.text for chunk in stream) == GOOD
            assert stream.response is not None
            assert stream.response.parsed == City(name="Oslo", population=709000)
            with pytest.raises(OutputValidationError), llm.generate_stream("City?", response_format=City) as bad:
                for _ in bad:
                    pass


async def test_a_broken_structured_stream_is_not_continued(server: FakeServer) -> None:
    server.enqueue(Script(text=GOOD, reset_after=2), Script(text="population: 709000}"))
    providers = (
        provider(server, "anthropic", name="first"),
        provider(server, "openai", name="prefill", capabilities={"prefill", "response_format"}),
    )
    async with LLMCommunication(config(*providers, continue_on_interrupt=True)) as llm:
        with pytest.raises(StreamInterruptedError):
            await llm.generate_response("City?", response_format=City)
    assert len(server.requests) == 1
