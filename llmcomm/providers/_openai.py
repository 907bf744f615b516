"""OpenAI Chat Completions (and every compatible server) over `openai.AsyncOpenAI`.

As for Anthropic, the SDK sends the request and maps statuses; the event stream
is decoded here with orjson, one dict per chunk instead of one pydantic model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing
from typing import Any, final

import httpx2
import orjson

from .._config import ProviderConfig
from .._decoders import SSEDecoder
from .._errors import LLMException, ProviderUnavailableError
from .._types import ChunkBatch, Request, StreamChunk, UsageInfo, content_chunk
from ._base import error_for_status, flatten, scrub
from ._http import drain, map_sdk_errors, sdk_arguments, sdk_client_options

_DONE = b"[DONE]"
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
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.config.max_tokens,
            "stream": True,
        }
        if self._include_usage:
            body["stream_options"] = {"include_usage": True}
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
                state = _ChunkState(self, model)
                feed = SSEDecoder().feed_data
                handle = state.handle
                loads = orjson.loads
                name = self.name
                # aclosing: an abandoned body iterator is a ResourceWarning on trio.
                async with aclosing(response.http_response.aiter_bytes()) as body_bytes:
                    async for data in body_bytes:
                        batch: ChunkBatch = []
                        try:
                            for payload in feed(data):
                                if payload == _DONE:
                                    state.done = True
                                    break
                                event = loads(payload)
                                # The hot path inline: one choice with text and nothing else to note.
                                # Anything else goes through handle(), which decides the same way.
                                if not event.get("error") and not event.get("usage"):
                                    choices = event.get("choices")
                                    if choices.__class__ is list and len(choices) == 1:
                                        choice = choices[0]
                                        delta = choice.get("delta")
                                        if delta and (text := delta.get("content")) and not choice.get("finish_reason"):
                                            batch.append(content_chunk(text, name, state.model, state.index))
                                            state.index += 1
                                            continue
                                if batch:  # hand on the text before an event that may end the stream
                                    yield batch
                                    batch = []
                                chunk = handle(event)
                                if chunk is not None:
                                    yield [chunk]
                        except Exception:
                            if batch:  # what came before a bad event still reaches the consumer
                                yield batch
                            raise
                        if batch:
                            yield batch
                        if state.done:
                            await drain(body_bytes)
                            break
                if not state.done:
                    raise ProviderUnavailableError(
                        "the stream ended before [DONE]; the reply is incomplete, try again", provider=self.name
                    )
                yield [StreamChunk("", self.name, state.model, state.index, state.finish_reason, state.usage)]

    def stream_error(self, error: Any, model: str) -> LLMException:
        """The error an `error` object inside a 200 stream stands for."""
        if not isinstance(error, dict):
            error = {"message": str(error)}
        detail = scrub(str(error.get("message") or "error"), self.config.api_key)
        status = error.get("code") if isinstance(error.get("code"), int) else None
        if status is None:
            status = 429 if "rate" in str(error.get("type", "")) else 500
        return error_for_status(
            status,
            f"error event in the stream: {detail}",
            provider=self.name,
            key_hint="OPENAI_API_KEY",
            model=model,
        )


@final
class _ChunkState:
    """Position, finish reason and usage while one Chat Completions stream is decoded."""

    __slots__ = ("done", "finish_reason", "index", "model", "name", "provider", "usage")

    def __init__(self, provider: OpenAIProvider, model: str) -> None:
        self.provider = provider
        self.name = provider.name
        self.model = model
        self.index = 0
        self.finish_reason: str | None = None
        self.usage: UsageInfo | None = None
        self.done = False

    def handle(self, obj: dict[str, Any]) -> StreamChunk | None:
        get = obj.get
        if get("error"):
            raise self.provider.stream_error(obj["error"], self.model)
        chunk = None
        for choice in get("choices") or ():
            delta = choice.get("delta")
            if delta and (text := delta.get("content")):
                chunk = content_chunk(text, self.name, self.model, self.index)
                self.index += 1
            if reason := choice.get("finish_reason"):
                self.finish_reason = reason
        if raw_usage := get("usage"):
            prompt = raw_usage.get("prompt_tokens") or 0
            completion = raw_usage.get("completion_tokens") or 0
            self.usage = UsageInfo(prompt, completion, raw_usage.get("total_tokens") or prompt + completion)
        return chunk
