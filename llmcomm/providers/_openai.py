"""OpenAI Chat Completions (and every compatible server) over `openai.AsyncOpenAI`.

As for Anthropic, the SDK sends the request and maps statuses; the event stream
is decoded by `llmcomm._wire._openai` with orjson, one dict per chunk instead of
one pydantic model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing
from typing import Any, final

import httpx2

from .._config import ProviderConfig
from .._types import ChunkBatch, Request, StreamChunk
from .._wire._openai import OpenAIDecoder
from .._wire._openai_body import openai_fields, openai_messages
from ._base import flatten
from ._http import map_sdk_errors, sdk_arguments, sdk_client_options
from ._streaming import read_reply

#: body fields passed to the SDK by name; the rest travel in `extra_body`, as sent
_SDK_FIELDS = frozenset({"model", "messages", "stream"})


@final
class OpenAIProvider:
    """A `BaseProvider` for OpenAI Chat Completions and OpenAI-compatible servers."""

    kind = "openai"

    def __init__(self, config: ProviderConfig, http_client: httpx2.AsyncClient | None = None) -> None:
        import openai  # imported here: users of other providers never pay for it

        self.config = config
        self.name = config.name
        self.model = config.model
        self._sdk = openai
        self._client = openai.AsyncOpenAI(api_key=config.api_key or "unused", **sdk_client_options(config, http_client))
        self._owns_http_client = http_client is None
        # Some compatible servers reject `stream_options`; once seen, stop sending it.
        self._include_usage = True

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.config!r})"

    async def aclose(self) -> None:
        """Close the SDK client (and its HTTP client, when it made its own)."""
        if self._owns_http_client:
            await self._client.close()

    def build_body(self, request: Request) -> dict[str, Any]:
        """The Chat Completions body for `request`."""
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": openai_messages(request, self.name),
            "max_tokens": request.max_tokens or self.config.max_tokens,
            "stream": True,
        }
        if self._include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        body.update(openai_fields(request))
        body.update(request.extra)
        return body

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        return flatten(self.stream_batches(request))

    async def stream_batches(self, request: Request) -> AsyncIterator[ChunkBatch]:
        """The reply's chunks, one batch per network read (what the race forwards)."""
        body = self.build_body(request)
        model = str(body["model"])
        create = self._client.chat.completions.with_streaming_response.create
        with map_sdk_errors(self._sdk, self.name, self.config, model, "Chat Completions"):
            async with AsyncExitStack() as stack:
                try:
                    response = await stack.enter_async_context(create(**sdk_arguments(body, _SDK_FIELDS)))
                except self._sdk.BadRequestError as exc:
                    if "stream_options" not in body or "stream_options" not in str(exc.body):
                        raise
                    self._include_usage = False
                    del body["stream_options"]
                    response = await stack.enter_async_context(create(**sdk_arguments(body, _SDK_FIELDS)))
                decoder = OpenAIDecoder(self.name, model)
                reply = read_reply(response.http_response, decoder, self.config, "Chat Completions")
                async with aclosing(reply) as batches:  # type: ignore[type-var]
                    async for batch in batches:
                        yield batch
