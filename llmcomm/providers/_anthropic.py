"""Anthropic Messages API, sent by llmcomm itself over the shared `httpx2.AsyncClient`.

The endpoint and headers are derived once (`llmcomm._wire._requests`, held equal to
what the official SDK sends by the parity test); the event stream is decoded by
`llmcomm._wire._anthropic`. The SDK is not imported: its per-request machinery and
its import cost more than the whole request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar, final

import httpx2

from .._config import ProviderConfig
from .._types import ChunkBatch, Request, StreamChunk
from .._wire._anthropic import AnthropicDecoder
from .._wire._anthropic_body import anthropic_body
from .._wire._options import apply_options
from .._wire._requests import encode_body
from ._base import flatten
from ._send import HTTPTarget
from ._streaming import read_reply

_WIRE = "the Messages API"


@final
class AnthropicProvider:
    """A `BaseProvider` for the Anthropic Messages API (and servers that speak it)."""

    kind = "anthropic"
    #: its batches come straight from one response read as it arrives (`providers._watch`)
    watchable: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig, http_client: httpx2.AsyncClient | None = None) -> None:
        self.config = config
        self.name = config.name
        self.model = config.model
        self._target = HTTPTarget(config, http_client, os.environ)

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.config!r})"

    async def aclose(self) -> None:
        """Close the HTTP client, when this provider made its own."""
        await self._target.aclose()

    def build_body(self, request: Request) -> dict[str, Any]:
        """The Messages API body for `request`."""
        body = anthropic_body(
            request,
            model=request.model or self.model,
            max_tokens=request.max_tokens or self.config.max_tokens,
            provider=self.name,
        )
        body["stream"] = True
        return apply_options(body, request, kind=self.kind, name=self.name)

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        return flatten(self.stream_batches(request))

    async def stream_batches(self, request: Request) -> AsyncIterator[ChunkBatch]:
        """The reply's chunks, one batch per network read (what the race forwards)."""
        body = self.build_body(request)
        model = str(body["model"])
        async with self._target.send(encode_body(body), model, _WIRE, request.extra_headers) as response:
            reply = read_reply(response, AnthropicDecoder(self.name, model), self.config, _WIRE)
            async with aclosing(reply) as batches:  # type: ignore[type-var]
                async for batch in batches:
                    yield batch
