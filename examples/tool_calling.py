"""Tool calling: the model asks for a tool, the program runs it and sends the result back.

    python examples/tool_calling.py

Runs on llmcomm's loopback simulator (`llmcomm.testing.FakeServer`), which is
scripted to ask for `get_weather` and then answer; point the `ProviderConfig`
at a real provider to talk to a real model. The same conversation works on
every provider with the `tools` capability: tool calls and results are plain
`Message`s, mapped to each wire by llmcomm.
"""

from __future__ import annotations

import anyio

from llmcomm import Configuration, LLMCommunication, Message, ProviderConfig
from llmcomm.testing import FakeServer, Script

#: a model may ask for tools again after seeing a result; a conversation ends within this many rounds
MAX_ROUNDS = 4


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Paris": "18 C and sunny", "Rome": "21 C and clear"}.get(city, "unknown")


TOOLS = {"get_weather": get_weather}


async def main() -> None:
    async with FakeServer() as server:
        server.enqueue(
            Script(
                blocks=(
                    ("tool_use", "get_weather", '{"city": "Paris"}'),
                    ("tool_use", "get_weather", '{"city": "Rome"}'),
                )
            ),
            Script(text="Paris: 18 C and sunny. Rome: 21 C and clear."),
        )
        claude = ProviderConfig(name="claude", kind="anthropic", base_url=server.anthropic_base_url, api_key="sk-sim")
        async with LLMCommunication(Configuration(providers=[claude])) as llm:
            messages = [Message("user", "What is the weather in Paris and in Rome?")]
            reply = await llm.generate_response(messages, tools=[get_weather])
            for _ in range(MAX_ROUNDS):
                if not reply.tool_calls:
                    break
                messages.append(reply.to_message())
                for call in reply.tool_calls:
                    print(f"the model calls {call.name}({call.arguments})")
                    messages.append(Message("tool", TOOLS[call.name](**call.arguments), tool_call_id=call.id))
                reply = await llm.generate_response(messages, tools=[get_weather])
            print(f"answer ({reply.finish_reason}): {reply.content}")


if __name__ == "__main__":
    anyio.run(main)
