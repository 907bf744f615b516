"""LiteLLM, the peer users would otherwise pick: `litellm.acompletion(stream=True)`.

A bench-only dependency (the `bench` extra). Its remote cost-map fetch and
telemetry are turned off (`common.QUIET_ENV`), so it never leaves loopback.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

from .common import API_KEY, PROMPT, QUIET_ENV, Api, Client, Hold, Subject, base_url, model_for


class LiteLLMClient:
    def __init__(self, api: Api, origin: str) -> None:
        os.environ.update(QUIET_ENV)
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        self._litellm: Any = litellm
        self._api = api
        self._base = base_url(api, origin)

    def _arguments(self, model: str) -> dict[str, Any]:
        return {
            "model": f"{self._api}/{model}",
            "api_base": self._base,
            "api_key": API_KEY,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 4096,
            "max_retries": 0,
        }

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        count = 0
        first = 0.0
        response = await self._litellm.acompletion(stream=True, **self._arguments(model))
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
                if count == 1:
                    first = time.perf_counter()
                    if hold is not None:
                        await hold()
        return count, first

    async def complete(self) -> None:
        await self._litellm.acompletion(**self._arguments(model_for(3)))

    async def aclose(self) -> None:
        await self._litellm.close_litellm_async_clients()


def available() -> bool:
    """Whether LiteLLM is installed (`pip install -e .[bench]`)."""
    return importlib.util.find_spec("litellm") is not None


async def open_client(api: Api, origin: str) -> Client:
    return LiteLLMClient(api, origin)


SUBJECT = Subject(
    name="litellm",
    apis=("anthropic", "openai"),
    imports=("litellm",),
    open=open_client,
    description="litellm.acompletion(stream=True) with openai/ and anthropic/ models",
)
