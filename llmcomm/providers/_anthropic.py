"""Anthropic Messages API over the official `anthropic.AsyncAnthropic` client.

The SDK does what it is good at (auth headers, base URLs, status errors); the
event stream is read raw and decoded here, because building a pydantic object
per delta is what makes SDK streaming slow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import httpx2
import orjson

from .._config import ProviderConfig
from .._decoders import SSEDecoder
from .._errors import LLMException, ProviderUnavailableError
from .._types import ChunkBatch, Request, StreamChunk, UsageInfo, content_chunk
from ._base import ERROR_TYPE_STATUS, error_for_status, flatten, scrub
from ._http import drain, map_sdk_errors, sdk_arguments, sdk_client_options

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
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens or self.config.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
        }
        if request.system:
            body["system"] = request.system
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
                feed = SSEDecoder().feed_data
                state = _StreamState(model)
                handle = state.handle
                loads = orjson.loads
                name = self.name
                # aclosing: an abandoned body iterator is a ResourceWarning on trio.
                async with aclosing(response.http_response.aiter_bytes()) as body_bytes:
                    async for data in body_bytes:
                        batch: ChunkBatch = []
                        try:
                            for payload in feed(data):
                                event = loads(payload)
                                # The hot path, a text delta, inline; every other event through handle().
                                if event.get("type") == "content_block_delta" and (text := event["delta"].get("text")):
                                    batch.append(content_chunk(text, name, state.model, state.index))
                                    state.index += 1
                                    continue
                                if batch:  # hand on the text before an event that may end the stream
                                    yield batch
                                    batch = []
                                chunk = handle(event, self)
                                if chunk is not None:
                                    yield [chunk]
                        except Exception:
                            if batch:  # what came before a bad event still reaches the consumer
                                yield batch
                            raise
                        if batch:
                            yield batch
                        if state.stopped:
                            await drain(body_bytes)
                            break
                if not state.stopped:
                    raise ProviderUnavailableError(
                        "the stream ended before message_stop; the reply is incomplete, try again",
                        provider=self.name,
                    )
                yield [StreamChunk("", self.name, state.model, state.index, state.stop_reason, state.usage())]

    def stream_error(self, payload: dict[str, Any]) -> LLMException:
        """The error an SSE `error` event inside a 200 stream stands for."""
        error = payload.get("error") or {}
        kind = str(error.get("type", "api_error"))
        detail = scrub(str(error.get("message", kind)), self.config.api_key)
        return error_for_status(
            ERROR_TYPE_STATUS.get(kind, 500),
            f"error event in the stream: {detail}",
            provider=self.name,
            key_hint="ANTHROPIC_API_KEY",
            model=self.model,
        )


@final
class _StreamState:
    """Usage and position while one Messages stream is decoded."""

    __slots__ = ("index", "input_tokens", "model", "output_tokens", "stop_reason", "stopped")

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False

    def usage(self) -> UsageInfo:
        return UsageInfo.of(self.input_tokens, self.output_tokens)

    def handle(self, payload: dict[str, Any], provider: AnthropicProvider) -> StreamChunk | None:
        kind = payload.get("type")
        if kind == "content_block_delta":
            delta = payload["delta"]
            text = delta.get("text")
            if text:
                chunk = content_chunk(text, provider.name, self.model, self.index)
                self.index += 1
                return chunk
        elif kind == "message_start":
            message = payload["message"]
            self.model = message.get("model") or self.model
            usage = message.get("usage") or {}
            self.input_tokens = (
                (usage.get("input_tokens") or 0)
                + (usage.get("cache_creation_input_tokens") or 0)
                + (usage.get("cache_read_input_tokens") or 0)
            )
            self.output_tokens = usage.get("output_tokens") or 0
        elif kind == "message_delta":
            self.stop_reason = payload.get("delta", {}).get("stop_reason") or self.stop_reason
            usage = payload.get("usage") or {}
            # message_delta carries cumulative output tokens.
            self.output_tokens = usage.get("output_tokens") or self.output_tokens
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            raise provider.stream_error(payload)
        return None
