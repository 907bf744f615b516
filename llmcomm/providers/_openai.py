"""OpenAI Chat Completions (and every compatible server) over `openai.AsyncOpenAI`.

As for Anthropic, the SDK sends the request and maps statuses; the event stream
is decoded here with orjson, one dict per chunk instead of one pydantic model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, aclosing, contextmanager
from typing import Any, final

import httpx2
import orjson

from .._config import ProviderConfig
from .._decoders import OversizedMessageError, SSEDecoder
from .._errors import LLMException, ProviderUnavailableError
from .._types import Request, StreamChunk, UsageInfo
from ._base import error_for_status, parse_retry_after, scrub
from ._http import drain, map_transport_error, sdk_arguments, sdk_timeout

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
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or "unused",
            base_url=config.base_url,
            max_retries=0,  # llmcomm owns retries: a hidden SDK sleep would break the fallback race
            timeout=sdk_timeout(config.timeout),
            http_client=http_client,
            default_headers=dict(config.headers) or None,
        )
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

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        body = self.build_body(request)
        model = str(body["model"])
        create = self._client.chat.completions.with_streaming_response.create
        with self._map_errors(model):
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
                decoder = SSEDecoder()
                # aclosing: an abandoned body iterator is a ResourceWarning on trio.
                async with aclosing(response.http_response.aiter_bytes()) as body_bytes:
                    async for data in body_bytes:
                        for _event, payload in decoder.feed(data):
                            if payload == _DONE:
                                state.done = True
                                break
                            chunk = state.handle(orjson.loads(payload))
                            if chunk is not None:
                                yield chunk
                        if state.done:
                            await drain(body_bytes)
                            break
                if not state.done:
                    raise ProviderUnavailableError(
                        "the stream ended before [DONE]; the reply is incomplete, try again", provider=self.name
                    )
                yield StreamChunk("", self.name, state.model, state.index, state.finish_reason, state.usage)

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

    @contextmanager
    def _map_errors(self, model: str) -> Iterator[None]:
        # The one place where SDK, transport and decoding failures become llmcomm errors.
        sdk = self._sdk
        try:
            yield
        except LLMException:
            raise
        except sdk.APIStatusError as exc:
            error: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
            detail = str(error.get("message") or exc.response.reason_phrase or "error")
            code = error.get("code") or error.get("type")
            raise error_for_status(
                exc.status_code,
                scrub(detail, self.config.api_key),
                provider=self.name,
                key_hint="OPENAI_API_KEY",
                model=model,
                retry_after=parse_retry_after(exc.response.headers),
                code=str(code) if code else None,
            ) from exc
        except (sdk.APIConnectionError, httpx2.HTTPError) as exc:
            raise map_transport_error(exc, self.name, self.config) from exc
        except (orjson.JSONDecodeError, OversizedMessageError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailableError(
                f"malformed event stream ({type(exc).__name__}); the server did not speak Chat Completions",
                provider=self.name,
                retryable=False,
            ) from exc


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
        if obj.get("error"):
            raise self.provider.stream_error(obj["error"], self.model)
        chunk = None
        for choice in obj.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                chunk = StreamChunk(text, self.name, self.model, self.index)
                self.index += 1
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if raw_usage := obj.get("usage"):
            prompt = raw_usage.get("prompt_tokens") or 0
            completion = raw_usage.get("completion_tokens") or 0
            self.usage = UsageInfo(prompt, completion, raw_usage.get("total_tokens") or prompt + completion)
        return chunk
