"""Structured output: a typed object back instead of text to parse.

    python examples/structured_output.py

Runs on llmcomm's loopback simulator (`llmcomm.testing.FakeServer`); point the
`ProviderConfig`s at real providers to talk to real models. The schema of
`response_format=` is sent natively (OpenAI `json_schema`, Anthropic
`output_config.format`, the CLI's `--json-schema`) and the reply is validated
into `response.parsed`. Here the first provider's reply does not validate: it is
asked once more with the validation error (`output_retries`, default 1) and then
the next provider answers.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from llmcomm import Configuration, LLMCommunication, OutputValidationError, ProviderConfig
from llmcomm.testing import FakeServer, Script


class City(BaseModel):
    name: str
    country: str
    population: int


async def main() -> None:
    async with FakeServer() as server:
        server.enqueue(
            Script(text='{"name": "Oslo", "country": "Norway", "population": "about 700k"}'),  # fails validation
            Script(text="Oslo, Norway: roughly 709,000 people."),  # the retry: not JSON at all
            Script(text='{"name": "Oslo", "country": "Norway", "population": 709037}'),  # the next provider
            Script(text='{"result": ["Oslo", "Bergen", "Trondheim"]}'),  # a list comes wrapped
            Script(text="no JSON here"),
        )
        claude = ProviderConfig(name="claude", kind="anthropic", base_url=server.anthropic_base_url, api_key="sk-sim")
        gpt = ProviderConfig(name="gpt", kind="openai", base_url=server.openai_base_url, api_key="sk-sim")
        async with LLMCommunication(Configuration(providers=[claude, gpt])) as llm:
            response = await llm.generate_response("The capital of Norway?", response_format=City)
            city = response.parsed
            print(f"{city.name}, {city.country}: {city.population} people (from {response.provider})")

            biggest = await llm.generate_response("Norway's three biggest cities", response_format=list[str])
            print("biggest:", ", ".join(biggest.parsed))

            try:
                await llm.generate_response("A city?", response_format=City, provider="claude", output_retries=0)
            except OutputValidationError as exc:
                print(f"invalid after {exc.attempts} reply: {exc.content!r} ({exc.errors[0]['type']})")


if __name__ == "__main__":
    anyio.run(main)
