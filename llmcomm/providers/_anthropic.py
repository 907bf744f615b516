"""Anthropic Messages API over the official `anthropic.AsyncAnthropic` client.

The SDK does what it is good at (auth headers, base URLs, status errors); the
event stream is read raw and decoded by `llmcomm._wire._anthropic`, because
building a pydantic object per delta is what makes SDK streaming slow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import httpx2

from .._config import ProviderConfig
from .._types import ChunkBatch, Request, StreamChunk
from .._wire._anthropic import AnthropicDecoder
from .._wire._anthropic_body import anthropic_body
from ._base import flatten
from ._http import map_sdk_errors, sdk_arguments, sdk_client_options
from ._streaming import read_reply

if TYPE_CHECKING:
    import anthropic

#: body fields passed to the SDK by name; the rest travel in `extra_body`, as sent
_SDK_FIELDS = frozenset({"model", "max_tokens", "messages", "stream", "system"})


@final
class AnthropicProvider:
    """A `BaseProvider` for the Anthropic Messages API (and servers that speak it)."""

    kind = "anthropic"

    def __init__(self, config: ProviderConfig, http_client: httpx2.AsyncClient | None = None) -> None:
        import anthropic  # imported here: users of other providers never pay for it

        self.config = config
        self.name = config.name
        self.model = config.model
        self._sdk = anthropic
        self._client: anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=config.api_key, **sdk_client_options(config, http_client)
        )
        self._owns_http_client = http_client is None

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.config!r})"

    async def aclose(self) -> None:
        """Close the SDK client (and its HTTP client, when it made its own)."""
        if self._owns_http_client:
            await self._client.close()

    def build_body(self, request: Request) -> dict[str, Any]:
        """The Messages API body for `request`."""
        body = anthropic_body(
            request,
            model=request.model or self.model,
            max_tokens=request.max_tokens or self.config.max_tokens,
            provider=self.name,
        )
        body["stream"] = True
        if request.temperature is not None:
            body["temperature"] = request.temperature
        body.update(request.extra)
        return body

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        return flatten(self.stream_batches(request))

    async def stream_batches(self, request: Request) -> AsyncIterator[ChunkBatch]:
        """The reply's chunks, one batch per network read (what the race forwards)."""
        body = self.build_body(request)
        model = str(body["model"])
        with map_sdk_errors(self._sdk, self.name, self.config, model, "the Messages API"):
            async with self._client.messages.with_streaming_response.create(
                **sdk_arguments(body, _SDK_FIELDS)
            ) as response:
                decoder = AnthropicDecoder(self.name, model)
                reply = read_reply(response.http_response, decoder, self.config, "the Messages API")
                async with aclosing(reply) as batches:  # type: ignore[type-var]
                    async for batch in batches:
                        yield batch
