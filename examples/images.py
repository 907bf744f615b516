"""Sending an image: a `Message` whose content is a list of parts.

    python examples/images.py

Runs on llmcomm's loopback simulator (`llmcomm.testing.FakeServer`) and shows
the image as each wire received it: an Anthropic `image` block and an OpenAI
`image_url` part, from the same `ImagePart`.
"""

from __future__ import annotations

import anyio

from llmcomm import Configuration, ImagePart, LLMCommunication, Message, ProviderConfig, TextPart
from llmcomm.testing import FakeServer, Script

#: a 1x1 PNG; `ImagePart(url="https://...")` sends a link instead
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def main() -> None:
    question = Message("user", (TextPart("What is in this picture?"), ImagePart(data=PIXEL)))
    async with FakeServer() as server:
        server.default = Script(text="A single transparent pixel.")
        providers = [
            ProviderConfig(name="claude", kind="anthropic", base_url=server.anthropic_base_url, api_key="sk-sim"),
            ProviderConfig(name="gpt", kind="openai", base_url=server.openai_base_url, api_key="sk-sim"),
        ]
        async with LLMCommunication(Configuration(providers=providers)) as llm:
            for name in ("claude", "gpt"):
                async with llm.generate_stream([question], provider=name) as stream:
                    text = "".join([chunk.text async for chunk in stream])
                image = server.requests[-1].body["messages"][-1]["content"][1]
                print(f"{name}: {text}  (sent as {image['type']!r})")


if __name__ == "__main__":
    anyio.run(main)
