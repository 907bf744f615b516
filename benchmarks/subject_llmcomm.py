"""llmcomm: `LLMCommunication.generate_stream` (and `generate_text` for the tiny request)."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from .common import API_KEY, PROMPT, Api, Client, Hold, Subject, base_url, model_for

if TYPE_CHECKING:
    from llmcomm import LLMCommunication


class LLMCommClient:
    def __init__(self, stack: AsyncExitStack, llm: LLMCommunication) -> None:
        self._stack = stack
        self._llm = llm

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        count = 0
        first = 0.0
        async with self._llm.generate_stream(PROMPT, model=model) as stream:
            async for chunk in stream:
                if chunk.text:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        if hold is not None:
                            await hold()
        return count, first

    async def complete(self) -> None:
        await self._llm.generate_text(PROMPT, model=model_for(3))

    async def aclose(self) -> None:
        await self._stack.aclose()


async def open_client(api: Api, origin: str) -> Client:
    from llmcomm import Configuration, LLMCommunication, ProviderConfig

    provider = ProviderConfig(name=api, kind=api, base_url=base_url(api, origin), api_key=API_KEY)
    stack = AsyncExitStack()
    llm = await stack.enter_async_context(LLMCommunication(Configuration(providers=[provider])))
    return LLMCommClient(stack, llm)


SUBJECT = Subject(
    name="llmcomm",
    apis=("anthropic", "openai"),
    imports=("llmcomm",),
    open=open_client,
    description="LLMCommunication.generate_stream / generate_text (asyncio)",
)
TRIO = Subject(
    name="llmcomm-trio",
    apis=("anthropic", "openai"),
    imports=("llmcomm",),
    open=open_client,
    description="the same on trio",
    backend="trio",
)
