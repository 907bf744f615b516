"""Anthropic Messages API over the official `anthropic.AsyncAnthropic` client.

The SDK does what it is good at (auth headers, base URLs, status errors); the
event stream is read raw and decoded here, because building a pydantic object
per delta is what makes SDK streaming slow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any, final

import httpx2
import orjson

from .._config import ProviderConfig
from .._decoders import OversizedMessageError, SSEDecoder
from .._errors import LLMException, ProviderUnavailableError
from .._types import Request, StreamChunk, UsageInfo
from ._base import ERROR_TYPE_STATUS, error_for_status, parse_retry_after, scrub
from ._http import drain, map_transport_error, sdk_arguments, sdk_timeout

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
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,  # llmcomm owns retries: a hidden SDK sleep would break the fallback race
            timeout=sdk_timeout(config.timeout),
            http_client=http_client,
            default_headers=dict(config.headers) or None,
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

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`, decoding the SSE body directly."""
        body = self.build_body(request)
        model = str(body["model"])
        with self._map_errors(model):
            async with self._client.messages.with_streaming_response.create(
                **sdk_arguments(body, _SDK_FIELDS)
            ) as response:
                decoder = SSEDecoder()
                state = _StreamState(model)
                # aclosing: an abandoned body iterator is a ResourceWarning on trio.
                async with aclosing(response.http_response.aiter_bytes()) as body_bytes:
                    async for data in body_bytes:
                        for _event, payload in decoder.feed(data):
                            chunk = state.handle(orjson.loads(payload), self)
                            if chunk is not None:
                                yield chunk
                        if state.stopped:
                            await drain(body_bytes)
                            break
                if not state.stopped:
                    raise ProviderUnavailableError(
                        "the stream ended before message_stop; the reply is incomplete, try again",
                        provider=self.name,
                    )
                yield StreamChunk("", self.name, state.model, state.index, state.stop_reason, state.usage())

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

    @contextmanager
    def _map_errors(self, model: str) -> Iterator[None]:
        # The one place where SDK, transport and decoding failures become llmcomm errors.
        sdk = self._sdk
        try:
            yield
        except LLMException:
            raise
        except sdk.APIStatusError as exc:
            body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
            inner = body.get("error")
            error: dict[str, Any] = inner if isinstance(inner, dict) else body
            detail = str(error.get("message") or exc.response.reason_phrase or "error")
            raise error_for_status(
                exc.status_code,
                scrub(detail, self.config.api_key),
                provider=self.name,
                key_hint="ANTHROPIC_API_KEY",
                model=model,
                retry_after=parse_retry_after(exc.response.headers),
                code=str(error.get("type") or "") or None,
            ) from exc
        except (sdk.APIConnectionError, httpx2.HTTPError) as exc:
            raise map_transport_error(exc, self.name, self.config) from exc
        except (orjson.JSONDecodeError, OversizedMessageError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailableError(
                f"malformed event stream ({type(exc).__name__}); the server did not speak the Messages API",
                provider=self.name,
                retryable=False,
            ) from exc


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
                chunk = StreamChunk(text, provider.name, self.model, self.index)
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
