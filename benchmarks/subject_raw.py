"""The floor: raw httpx2 streaming, line splitting and `orjson.loads` per event.

This is the least a program can do to read an LLM stream with httpx2, the HTTP
stack the official SDKs and llmcomm share: no objects per event beyond the
parsed dict, no validation, no fallback.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2
import orjson

from .common import API_KEY, PROMPT, Api, Client, Hold, Subject, model_for


class RawClient:
    def __init__(self, api: Api, origin: str) -> None:
        self._api = api
        self._client = httpx2.AsyncClient(
            # The same pool as llmcomm's, so 1000 concurrent streams fit.
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
            timeout=httpx2.Timeout(600.0, connect=10.0, pool=10.0),
        )
        if api == "openai":
            self._url = f"{origin}/v1/chat/completions"
            self._headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
        else:
            self._url = f"{origin}/v1/messages"
            self._headers = {
                "x-api-key": API_KEY,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            }

    def _body(self, model: str, stream: bool) -> bytes:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": PROMPT}],
        }
        if stream:
            body["stream"] = True
        return orjson.dumps(body)

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        count = 0
        first = 0.0
        openai = self._api == "openai"
        request = self._client.build_request("POST", self._url, content=self._body(model, True), headers=self._headers)
        response = await self._client.send(request, stream=True)
        try:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    continue  # read on to the end of the body, so the connection goes back to the pool
                event = orjson.loads(data)
                if openai:
                    choices = event.get("choices")
                    text = choices[0]["delta"].get("content") if choices else None
                else:
                    text = event["delta"].get("text") if event.get("type") == "content_block_delta" else None
                if text:
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        if hold is not None:
                            await hold()
        finally:
            await response.aclose()
        return count, first

    async def complete(self) -> None:
        response = await self._client.post(self._url, content=self._body(model_for(3), False), headers=self._headers)
        response.raise_for_status()
        orjson.loads(response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


async def open_client(api: Api, origin: str) -> Client:
    return RawClient(api, origin)


SUBJECT = Subject(
    name="raw-httpx2",
    apis=("anthropic", "openai"),
    imports=("httpx2", "orjson"),
    open=open_client,
    description="httpx2.AsyncClient.stream + aiter_lines + orjson.loads per event (the floor)",
)
