"""The one read loop of the HTTP providers: a response in, batches of chunks out.

The wire decoder (`llmcomm._wire`) does the translation; this loop does the
reading, hands each network read's chunks on as one batch, stops reading at the
terminal event (draining the rest so the connection can be reused) and maps the
wire's own failures to llmcomm errors.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import cast

import httpx2

from .._config import ProviderConfig
from .._errors import LLMException, ProviderUnavailableError
from .._secrets import scrub
from .._types import ChunkBatch
from .._wire._decoder import IncompleteStreamError, MalformedEventError, StreamDecoder, WireError
from .._wire._sse import DEFAULT_MAX_EVENT_BYTES, OversizedMessageError
from .._wire._status import ERROR_TYPE_STATUS, error_for_status
from ._http import drain

#: what may precede a JSON document: whitespace and a byte-order mark
_BLANK = b" \t\r\n\xef\xbb\xbf"


async def read_reply(
    response: httpx2.Response, decoder: StreamDecoder, config: ProviderConfig, wire: str
) -> AsyncIterator[ChunkBatch]:
    """Batches of chunks from `response`, the last batch closing the reply.

    A 200 `application/json` body answering a stream request (some gateways send
    one) is decoded as the whole reply; events sent under that label are read as
    events. Raises `LLMException`s for what the wire reports (an error event, an
    incomplete or empty stream, a malformed event); the transport's and JSON's own
    errors pass through to the caller's mapping.
    """
    decoder.provider_request_id = response.headers.get("request-id") or response.headers.get("x-request-id")
    try:
        # aclosing: an abandoned body iterator is a ResourceWarning on trio.
        async with aclosing(body_bytes(response)) as body:
            head = b""
            if _is_json(response.headers.get("content-type", "")):
                async for head in body:
                    if head.strip():
                        break
                # Events under a wrong label are still events: only a JSON document is a whole reply.
                if head.lstrip(_BLANK)[:1] in (b"{", b"["):
                    yield decoder.message(await _read_rest(head, body))
                    yield decoder.end()
                    return
            feed = decoder.feed
            batch = feed(head) if head else []
            while True:
                if batch or decoder.thinking_alive:
                    # An empty batch after a ping inside a thinking block: the reader comes back
                    # for the next one, and its idle deadline starts again.
                    decoder.thinking_alive = False
                    yield batch
                if decoder.failure is not None:
                    raise decoder.failure
                if decoder.finished:
                    await drain(body)
                    break
                try:
                    data = await body.__anext__()
                except StopAsyncIteration:
                    break
                batch = feed(data)
        yield decoder.end()
    except WireError as exc:
        raise _server_error(exc, config, decoder.model) from exc
    except IncompleteStreamError as exc:
        raise ProviderUnavailableError(str(exc), provider=config.name) from exc
    except MalformedEventError as exc:
        raise ProviderUnavailableError(
            f"malformed event stream ({exc}); the server did not speak {wire}", provider=config.name, retryable=False
        ) from exc


def body_bytes(response: httpx2.Response) -> AsyncGenerator[bytes]:
    """The body of `response`, each piece as the transport hands it on.

    A body with no content coding is read from httpx2's own stream, one generator
    layer under `aiter_bytes` (which only counts, decodes and re-chunks): about
    0.8 us less per event at one event per HTTP chunk (benchmarks/README.md). A
    coded body (gzip, deflate, br, zstd) is decoded by `aiter_bytes`. Transport
    errors are httpx2's either way.
    """
    stream = response.stream
    coding = response.headers.get("content-encoding", "").strip().lower()
    if isinstance(stream, httpx2.AsyncByteStream) and coding in ("", "identity"):
        return cast("AsyncGenerator[bytes]", stream.__aiter__())  # both are async generators
    return response.aiter_bytes()


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _read_rest(head: bytes, body: AsyncIterator[bytes]) -> bytes:
    parts = [head]
    size = len(head)
    async for data in body:
        size += len(data)
        if size > DEFAULT_MAX_EVENT_BYTES:
            raise OversizedMessageError(f"a JSON reply over the bound of {DEFAULT_MAX_EVENT_BYTES} bytes")
        parts.append(data)
    return b"".join(parts)


def _server_error(error: WireError, config: ProviderConfig, model: str) -> LLMException:
    """The error for what the server reported in a 200 body, mapped as the same HTTP status would be."""
    kind = error.kind or ""
    code = error.code or kind
    limited = "rate" in kind or "quota" in code
    status = error.status or ERROR_TYPE_STATUS.get(kind) or (429 if limited else 500)
    return error_for_status(
        status,
        scrub(error.detail, config.api_key),
        provider=config.name,
        key_hint=f"{config.kind.upper()}_API_KEY",
        model=model,
        code=code or None,
    )
