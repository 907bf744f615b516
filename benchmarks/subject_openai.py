"""The official openai SDK used directly: `chat.completions.create(stream=True)`."""

from __future__ import annotations

import time

from .common import API_KEY, PROMPT, Api, Client, Hold, Subject, base_url, model_for


class OpenAIClient:
    def __init__(self, origin: str) -> None:
        import openai

        self._client = openai.AsyncOpenAI(base_url=base_url("openai", origin), api_key=API_KEY, max_retries=0)

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        count = 0
        first = 0.0
        stream = await self._client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        if hold is not None:
                            await hold()
        return count, first

    async def complete(self) -> None:
        await self._client.chat.completions.create(model=model_for(3), messages=[{"role": "user", "content": PROMPT}])

    async def aclose(self) -> None:
        await self._client.close()


async def open_client(api: Api, origin: str) -> Client:
    return OpenAIClient(origin)


SUBJECT = Subject(
    name="openai-sdk",
    apis=("openai",),
    imports=("openai",),
    open=open_client,
    description="openai.AsyncOpenAI().chat.completions.create(stream=True), max_retries=0",
)
