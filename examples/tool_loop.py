"""The tool loop: the model calls your Python functions until it has an answer.

    python examples/tool_loop.py

Runs on llmcomm's loopback simulator (`llmcomm.testing.FakeServer`), scripted
to ask for two tools at once, then one more, then answer; point the
`ProviderConfig` at a real provider to talk to a real model. `run_tools` runs
sync functions in worker threads and awaits async ones, the calls of one step
concurrently; a tool that raises is reported to the model as an error result.
"""

from __future__ import annotations

import anyio

from llmcomm import Configuration, LLMCommunication, ProviderConfig
from llmcomm.testing import FakeServer, Script


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Paris": "18 C and sunny", "Rome": "21 C and clear"}[city]


async def get_time(city: str) -> str:
    """The local time in a city."""
    await anyio.sleep(0.01)  # stands for an HTTP call
    return {"Paris": "14:05", "Rome": "14:05"}[city]


async def main() -> None:
    async with FakeServer() as server:
        server.enqueue(
            Script(
                blocks=(
                    ("tool_use", "get_weather", '{"city": "Paris"}'),
                    ("tool_use", "get_weather", '{"city": "Berlin"}'),  # raises KeyError: sent back as an error
                )
            ),
            Script(blocks=(("tool_use", "get_time", '{"city": "Paris"}'),)),
            Script(text="In Paris it is 14:05, 18 C and sunny. I have no weather for Berlin."),
        )
        claude = ProviderConfig(name="claude", kind="anthropic", base_url=server.anthropic_base_url, api_key="sk-sim")
        async with LLMCommunication(Configuration(providers=[claude])) as llm:
            response = await llm.run_tools(
                "Weather in Paris and Berlin, and the time in Paris?", tools=[get_weather, get_time], max_steps=5
            )
            for message in response.messages:
                if message.role == "tool":
                    print(f"tool result: {message.content}")
            print(f"answer after {len(server.requests)} calls: {response.content}")


if __name__ == "__main__":
    anyio.run(main)
