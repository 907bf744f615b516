"""Structured output through the real `claude` binary against the simulator: the model answers by calling the
CLI's StructuredOutput tool, and the value reaches `parsed` (the binary is installed by tests/claude_cli/install.py)."""

from __future__ import annotations

import anyio
import pydantic
import pytest

from llmcomm import Configuration, LLMCommunication
from llmcomm.testing import FakeServer, Script

from .test_claude_cli_real import BOUND, config, real_cli

pytestmark = [pytest.mark.anyio, pytest.mark.real_cli]

__all__ = ["real_cli"]  # the fixture, used by name


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_the_structured_output_tool_call_is_the_reply(real_cli: str, server: FakeServer) -> None:
    value = '{"name": "Oslo", "population": 709000}'
    server.enqueue(Script(blocks=(("tool_use", "StructuredOutput", value),)))
    with anyio.fail_after(BOUND):
        async with LLMCommunication(Configuration(providers=[config(real_cli, server)], max_retries=0)) as llm:
            response = await llm.generate_response("The biggest city in Norway?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
    assert response.finish_reason == "stop"
    sent = server.requests[-1].body
    assert [tool["name"] for tool in sent["tools"]] == ["StructuredOutput"]
    assert sent["tools"][0]["input_schema"]["properties"].keys() == {"name", "population"}


async def test_json_text_without_the_tool_is_read_too(real_cli: str, server: FakeServer) -> None:
    server.enqueue(Script(text='{"name": "Oslo", "population": 709000}'))
    with anyio.fail_after(BOUND):
        async with LLMCommunication(Configuration(providers=[config(real_cli, server)], max_retries=0)) as llm:
            response = await llm.generate_response("City?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
