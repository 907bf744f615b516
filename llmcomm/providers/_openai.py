"""OpenAI Chat Completions (and every compatible server), sent by llmcomm itself.

As for Anthropic, the endpoint and headers come from `llmcomm._wire._requests`
(held equal to the official SDK's by the parity test) and the event stream is
decoded by `llmcomm._wire._openai` with orjson, one dict per chunk instead of one
pydantic model. The SDK is not imported.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar, final

import httpx2

from .._config import ProviderConfig
from .._errors import InvalidRequestError
from .._types import ChunkBatch, Request, StreamChunk
from .._wire._openai import OpenAIDecoder
from .._wire._openai_body import openai_fields, openai_messages
from .._wire._options import apply_options
from .._wire._requests import encode_body
from .._wire._status import HTTPStatusFailure
from ._base import flatten
from ._send import HTTPTarget
from ._streaming import read_reply

_WIRE = "Chat Completions"
#: the host of OpenAI's own API, where streams are asked to leave out obfuscation padding
OFFICIAL_HOST = "api.openai.com"


@final
class OpenAIProvider:
    """A `BaseProvider` for OpenAI Chat Completions and OpenAI-compatible servers."""

    kind = "openai"
    #: its batches come straight from one response read as it arrives (`providers._watch`)
    watchable: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig, http_client: httpx2.AsyncClient | None = None) -> None:
        self.config = config
        self.name = config.name
        self.model = config.model
        self._target = HTTPTarget(config, http_client, os.environ)
        # api.openai.com pads stream events for obfuscation unless asked not to: bandwidth and
        # parsing for nothing here (DESIGN Part 2). Compatible servers get only the usage request.
        self._stream_options: dict[str, bool] = {"include_usage": True}
        if self._target.host == OFFICIAL_HOST:
            self._stream_options["include_obfuscation"] = False
        # Some compatible servers reject `stream_options`; once seen, stop sending it.
        self._include_usage = True

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.config!r})"

    async def aclose(self) -> None:
        """Close the HTTP client, when this provider made its own."""
        await self._target.aclose()

    def build_body(self, request: Request) -> dict[str, Any]:
        """The Chat Completions body for `request`."""
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": openai_messages(request, self.name),
            "max_tokens": request.max_tokens or self.config.max_tokens,
            "stream": True,
        }
        if self._include_usage:
            body["stream_options"] = dict(self._stream_options)
        body.update(openai_fields(request))
        return apply_options(body, request, kind=self.kind, name=self.name)

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        return flatten(self.stream_batches(request))

    async def stream_batches(self, request: Request) -> AsyncIterator[ChunkBatch]:
        """The reply's chunks, one batch per network read (what the race forwards)."""
        body = self.build_body(request)
        model = str(body["model"])
        for attempt in range(2):
            try:
                async with self._target.send(encode_body(body), model, _WIRE, request.extra_headers) as response:
                    reply = read_reply(response, OpenAIDecoder(self.name, model), self.config, _WIRE)
                    async with aclosing(reply) as batches:  # type: ignore[type-var]
                        async for batch in batches:
                            yield batch
                return
            except InvalidRequestError as exc:
                # Some compatible servers reject `stream_options` with a 400: send once more
                # without it, and remember not to send it again.
                cause = exc.__cause__
                rejected = (
                    isinstance(cause, HTTPStatusFailure) and cause.status == 400 and "stream_options" in cause.body
                )
                if attempt or "stream_options" not in body or not rejected:
                    raise
                self._include_usage = False
                del body["stream_options"]
