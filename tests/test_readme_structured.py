"""The README sections proposed for structured output and the tool loop run as written, on the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY, clear_provider_environment

STRUCTURED = """
import anyio
from pydantic import BaseModel

from llmcomm import LLMCommunication


class City(BaseModel):
    name: str
    population: int


async def main() -> None:
    async with LLMCommunication() as llm:
        response = await llm.generate_response("The biggest city in Norway?", response_format=City)
        city = response.parsed  # a City, validated; an invalid reply is asked again, then the next provider
        print(city.name, city.population)


anyio.run(main)
"""

TOOL_LOOP = '''
import anyio

from llmcomm import LLMCommunication


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return "18 C and sunny"


async def main() -> None:
    async with LLMCommunication() as llm:
        response = await llm.run_tools("Weather in Paris?", tools=[get_weather])
        print(response.content)
        print([m.role for m in response.messages])


anyio.run(main)
'''


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeServer]:
    clear_provider_environment(monkeypatch, tmp_path)
    with FakeServer() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        yield fake


def run(code: str) -> None:
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)


def test_structured_output_section(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.enqueue(Script(text="Oslo, about 700k"), Script(text='{"name": "Oslo", "population": 709037}'))
    run(STRUCTURED)
    assert capsys.readouterr().out == "Oslo 709037\n"
    assert len(server.requests) == 2


def test_tool_loop_section(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.enqueue(Script(blocks=(("tool_use", "get_weather", '{"city": "Paris"}'),)), Script(text="Sunny, 18 C."))
    run(TOOL_LOOP)
    assert capsys.readouterr().out == "Sunny, 18 C.\n['user', 'assistant', 'tool', 'assistant']\n"
    assert len(server.requests) == 2
