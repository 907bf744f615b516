"""Structured output on the Claude CLI provider: `--json-schema` in argv, the result's `structured_output` read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import orjson
import pydantic
import pytest

from llmcomm import Configuration, LLMCommunication, ProviderConfig
from llmcomm.providers._claude_cli_events import CLIStream

pytestmark = pytest.mark.anyio

FAKE = Path(__file__).parent / "claude_cli" / "fake_claude.py"


class City(pydantic.BaseModel):
    name: str
    population: int


def cli(record: Path, text: str) -> ProviderConfig:
    mode = FAKE.stat().st_mode
    if not mode & stat.S_IXUSR:
        FAKE.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = {"FAKE_CLAUDE_SCENARIO": "success", "FAKE_CLAUDE_RECORD": str(record), "FAKE_CLAUDE_TEXT": text}
    return ProviderConfig(name="cli", kind="claude_cli", cli_path=str(FAKE), timeout=30.0, env=env)


async def test_the_schema_goes_in_argv_and_the_reply_is_parsed(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    text = '{"name": "Oslo", "population": 709000}'
    async with LLMCommunication(Configuration(providers=[cli(record, text)], max_retries=0)) as llm:
        response = await llm.generate_response("City?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
    argv = json.loads(record.read_text())["argv"]
    schema = json.loads(argv[argv.index("--json-schema") + 1])
    assert schema["additionalProperties"] is False and set(schema["properties"]) == {"name", "population"}


async def test_without_response_format_no_schema_is_sent(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    async with LLMCommunication(Configuration(providers=[cli(record, "plain words")], max_retries=0)) as llm:
        response = await llm.generate_response("hi")
    assert response.parsed is None and response.content == "plain words"
    assert "--json-schema" not in json.loads(record.read_text())["argv"]


def test_structured_output_in_the_result_line_becomes_the_text() -> None:
    stream = CLIStream("cli", "m")
    value = {"name": "Oslo", "population": 1}
    result = {"type": "result", "is_error": False, "result": "", "structured_output": value, "stop_reason": "end_turn"}
    assert stream.handle(orjson.dumps(result)) is None
    chunks = list(stream.finish([]))
    assert json.loads("".join(c.text for c in chunks)) == value
    assert chunks[-1].finish_reason is not None


def test_streamed_text_is_not_repeated_by_structured_output() -> None:
    stream = CLIStream("cli", "m")
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": '{"a": 1}'}}
    first = stream.handle(orjson.dumps({"type": "stream_event", "event": delta}))
    assert first is not None and first.text == '{"a": 1}'
    result = {"type": "result", "is_error": False, "result": '{"a": 1}', "structured_output": {"a": 1}}
    stream.handle(orjson.dumps(result))
    assert "".join(c.text for c in stream.finish([])) == ""


def test_a_structured_output_tool_call_in_the_assistant_line_is_the_reply() -> None:
    stream = CLIStream("cli", "m")
    block = {"type": "tool_use", "id": "t1", "name": "StructuredOutput", "input": {"name": "Oslo", "population": 1}}
    stream.handle(orjson.dumps({"type": "assistant", "message": {"content": [block]}}))
    stop = {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}
    stream.handle(orjson.dumps({"type": "stream_event", "event": stop}))
    # the one-response spending cap stops the CLI before it runs the tool: no structured_output in the result
    result = {"type": "result", "subtype": "error_max_budget_usd", "is_error": True, "stop_reason": None}
    stream.handle(orjson.dumps(result))
    chunks = list(stream.finish([]))
    assert json.loads("".join(c.text for c in chunks)) == {"name": "Oslo", "population": 1}
    assert chunks[-1].finish_reason == "stop"
