"""Sending one request over llmcomm's own `httpx2.AsyncClient`: no SDK on the path.

`send()` POSTs the bytes `_wire._requests` built to the provider's endpoint and
hands the streaming response to the decoder; an error status, a transport
failure on the way in or while the body is read, a reply the decoder cannot
make sense of, and the end of the block on any path (end, break, error,
cancellation) are handled here, once. Each response's headers (2xx or not) are handed
to the sink in `REPLY_HEADERS`, when the caller set one, so routing can read the
provider's rate-limit headers without providers knowing of routing state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import final
from urllib.parse import urlsplit

import anyio
import httpx2

from .._config import ProviderConfig
from .._errors import ConfigurationError, LLMException, ProviderUnavailableError
from .._wire._requests import Endpoint, endpoint
from .._wire._status import error_for_response
from ._http import map_transport_error, new_http_client, request_timeout
from ._watch import attach, detach

#: the most of an error body read to describe the error (the rest is not read)
MAX_ERROR_BODY = 64 * 1024

#: where `send()` hands each response's headers (set by whoever runs an attempt; None: nowhere)
REPLY_HEADERS: ContextVar[Callable[[Mapping[str, str]], None] | None] = ContextVar(
    "llmcomm_reply_headers", default=None
)


@asynccontextmanager
async def send(
    client: httpx2.AsyncClient,
    endpoint: Endpoint,
    body: bytes,
    *,
    config: ProviderConfig,
    model: str,
    wire: str = "the provider's API",
    timeout: httpx2.Timeout | None = None,
) -> AsyncIterator[httpx2.Response]:
    """POST `body` to `endpoint`; yield the 2xx response, its body not yet read.

    `timeout` bounds this request (the client's own when None); `model` is named
    in a 404's hint. Raises the llmcomm error an error status stands for
    (`_wire._status.error_for_response`; `provider_request_id` set, the key
    masked), `ConfigurationError` for a base URL that is no URL, and
    `ProviderUnavailableError` for a transport failure: refused,
    reset, timed out, no free connection. In the block, a transport failure while
    the body is read is mapped the same way, and a decoder's `ValueError`
    (malformed JSON, an oversized event), `KeyError` or `TypeError` becomes a
    `ProviderUnavailableError` that is not retryable, naming `wire` (the
    protocol the server failed to speak); `LLMException`s pass through. The
    response is closed when the block ends, however it ends.
    """
    try:
        request = client.build_request(
            "POST",
            endpoint.url,
            content=body,
            headers=endpoint.headers,
            timeout=timeout if timeout is not None else client.timeout,
        )
    except httpx2.InvalidURL:
        raise ConfigurationError(
            f"the base URL of provider {config.name!r} is not a valid URL; set it like http://host:port",
            provider=config.name,
        ) from None
    try:
        response = await client.send(request, stream=True)
    except httpx2.HTTPError as exc:
        raise map_transport_error(exc, config.name, config) from exc
    watched = attach(response)
    try:
        if (sink := REPLY_HEADERS.get()) is not None:
            sink(response.headers)
        if not 200 <= response.status_code < 300:
            raise error_for_response(
                response.status_code,
                response.headers,
                await _read_bounded(response),
                provider=config.name,
                secret=config.api_key,
                key_hint=endpoint.key_hint,
                model=model,
                reason=response.reason_phrase,
            )
        yield response
    except LLMException:
        raise
    except httpx2.HTTPError as exc:
        raise map_transport_error(exc, config.name, config) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProviderUnavailableError(
            f"malformed event stream ({type(exc).__name__}); the server did not speak {wire}",
            provider=config.name,
            retryable=False,
        ) from exc
    finally:
        if watched is not None:
            detach(watched)
        # Shielded: a cancelled caller must still give the connection back (or close it).
        with anyio.CancelScope(shield=True):
            await response.aclose()


async def _read_bounded(response: httpx2.Response) -> bytes:
    """Up to `MAX_ERROR_BODY` bytes of an error body; a longer one is cut there."""
    parts: list[bytes] = []
    size = 0
    # aclosing: an abandoned body iterator is a ResourceWarning on trio.
    async with aclosing(response.aiter_bytes()) as chunks:
        async for data in chunks:
            parts.append(data)
            size += len(data)
            if size >= MAX_ERROR_BODY:
                break
    return b"".join(parts)[:MAX_ERROR_BODY]


@final
class HTTPTarget:
    """One HTTP provider's way out: its endpoint, its timeouts and the client that sends.

    Built once per provider. A configuration that cannot make an endpoint (a header
    HTTP cannot carry) is kept and raised on the first request, so building a client
    never fails for one bad provider among several. `http_client=None` makes a client
    of this target's own, closed by `aclose()`.
    """

    __slots__ = ("_endpoint", "_endpoint_error", "_http", "_owns_http", "_timeout", "config")

    def __init__(
        self, config: ProviderConfig, http_client: httpx2.AsyncClient | None, environ: Mapping[str, str]
    ) -> None:
        self.config = config
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else new_http_client()
        self._timeout = request_timeout(config.timeout, self._http.timeout.pool)
        self._endpoint: Endpoint | None = None
        self._endpoint_error: ConfigurationError | None = None
        try:
            self._endpoint = endpoint(config, environ)
        except ConfigurationError as exc:
            self._endpoint_error = exc

    @property
    def host(self) -> str | None:
        """The host requests go to (None when the configuration made no endpoint)."""
        return urlsplit(self._endpoint.url).hostname if self._endpoint is not None else None

    def send(
        self, body: bytes, model: str, wire: str, extra_headers: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[httpx2.Response]:
        """`send()` this body to the target: the 2xx response, closed when the block ends.

        `extra_headers` (a call's own, already checked) go with this request only and
        win over the provider's headers.
        """
        target = self._endpoint
        if target is None:
            assert self._endpoint_error is not None
            raise self._endpoint_error
        if extra_headers:
            target = replace(target, headers={**target.headers, **{k.lower(): v for k, v in extra_headers.items()}})
        return send(self._http, target, body, config=self.config, model=model, wire=wire, timeout=self._timeout)

    async def aclose(self) -> None:
        """Close the HTTP client, when this target made its own."""
        if self._owns_http:
            await self._http.aclose()
