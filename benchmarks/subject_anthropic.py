"""The official anthropic SDK used directly: `messages.create(stream=True)` and the `messages.stream()` helper."""

from __future__ import annotations

import time

from .common import API_KEY, PROMPT, Api, Client, Hold, Subject, model_for


class AnthropicClient:
    def __init__(self, origin: str, helper: bool) -> None:
        import anthropic

        self._client = anthropic.AsyncAnthropic(base_url=origin, api_key=API_KEY, max_retries=0)
        self._helper = helper

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        if self._helper:
            return await self._stream_helper(model, hold)
        count = 0
        first = 0.0
        stream = await self._client.messages.create(
            model=model, max_tokens=4096, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        async with stream:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta" and event.delta.text:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        if hold is not None:
                            await hold()
        return count, first

    async def _stream_helper(self, model: str, hold: Hold | None) -> tuple[int, float]:
        count = 0
        first = 0.0
        async with self._client.messages.stream(
            model=model, max_tokens=4096, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            async for text in stream.text_stream:
                if text:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        if hold is not None:
                            await hold()
        return count, first

    async def complete(self) -> None:
        await self._client.messages.create(
            model=model_for(3), max_tokens=4096, messages=[{"role": "user", "content": PROMPT}]
        )

    async def aclose(self) -> None:
        await self._client.close()


async def open_create(api: Api, origin: str) -> Client:
    return AnthropicClient(origin, helper=False)


async def open_helper(api: Api, origin: str) -> Client:
    return AnthropicClient(origin, helper=True)


SUBJECT = Subject(
    name="anthropic-sdk",
    apis=("anthropic",),
    imports=("anthropic",),
    open=open_create,
    description="anthropic.AsyncAnthropic().messages.create(stream=True), max_retries=0",
)
HELPER = Subject(
    name="anthropic-sdk-helper",
    apis=("anthropic",),
    imports=("anthropic",),
    open=open_helper,
    description="anthropic.AsyncAnthropic().messages.stream() and its text_stream",
)
