"""The provider protocol, and the failure classification every provider shares."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Protocol, runtime_checkable

import orjson

from .._errors import (
    AuthenticationError,
    InvalidRequestError,
    LLMException,
    ProviderUnavailableError,
    RateLimitError,
)
from .._types import ChunkBatch, Request, StreamChunk


@runtime_checkable
class BaseProvider(Protocol):
    """What llmcomm needs from a provider.

    `stream(request)` is an async generator of `StreamChunk`s: content chunks with
    non-empty text, then one closing chunk with `finish_reason` (and `usage` when
    known). It raises only `LLMException`s, and closes whatever it opened (an HTTP
    response, a process) when it is closed early. `aclose()` releases what the
    provider owns. A user's own provider (a local model, a test double) implements
    the same four members and can be placed in a `Configuration`.
    """

    name: str
    kind: str
    model: str

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`."""
        ...

    async def aclose(self) -> None:
        """Release the provider's resources."""
        ...


def stream_batches(provider: BaseProvider, request: Request) -> AsyncIterator[ChunkBatch]:
    """`provider`'s reply as batches of chunks, the form the race hands on.

    The built-in HTTP providers decode each network read into one batch
    (`stream_batches(request)`), so the per-token path costs no task hand-off; any
    other provider's chunks travel one per batch.
    """
    native = getattr(provider, "stream_batches", None)
    if native is not None:
        batches: AsyncIterator[ChunkBatch] = native(request)
        return batches
    return _one_per_batch(provider.stream(request))


async def _one_per_batch(chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[ChunkBatch]:
    async with aclosing(chunks):  # type: ignore[type-var]
        async for chunk in chunks:
            yield [chunk]


async def flatten(batches: AsyncIterator[ChunkBatch]) -> AsyncIterator[StreamChunk]:
    """The chunks of `batches`, one at a time: a built-in provider's `stream()`."""
    async with aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            for chunk in batch:
                yield chunk


_QUOTA_CODES = frozenset({"insufficient_quota", "quota_exceeded", "billing_hard_limit_reached"})


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait as the provider asked: `retry-after-ms`, then `retry-after`."""
    if not headers:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def error_for_status(
    status: int,
    detail: str,
    *,
    provider: str,
    key_hint: str,
    model: str,
    retry_after: float | None = None,
    code: str | None = None,
) -> LLMException:
    """The llmcomm error for an HTTP status (or an API error reported with one)."""
    if status in (401, 403):
        what = "authentication failed" if status == 401 else "permission denied"
        return AuthenticationError(f"{what}: {detail}; check {key_hint}", provider=provider, status_code=status)
    if status == 429:
        quota = code in _QUOTA_CODES or "quota" in (code or "")
        hint = "add credit or raise the quota" if quota else "wait, send fewer requests, or add a fallback provider"
        return RateLimitError(
            f"rate limited: {detail}; {hint}",
            retry_after=retry_after,
            retryable=not quota,
            provider=provider,
            status_code=status,
        )
    if status in (408, 409) or status >= 500:
        return ProviderUnavailableError(
            f"provider unavailable: {detail}; try again later or configure a fallback provider",
            retry_after=retry_after,
            provider=provider,
            status_code=status,
        )
    if status == 404:
        hint = f"check the model name {model!r} and the base URL"
    elif status == 413:
        hint = "shorten the prompt or the history"
    else:
        hint = "fix the request parameters"
    return InvalidRequestError(f"request rejected: {detail}; {hint}", provider=provider, status_code=status)


# Anthropic's error `type`s (also sent inside a 200 stream) and the status each stands for.
ERROR_TYPE_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
    "timeout_error": 504,
}


def scrub(text: str, secret: str | None) -> str:
    """`text` with `secret` masked, for messages a server may echo a key into."""
    if secret and len(secret) >= 8 and secret in text:
        return text.replace(secret, "****")
    return text


def scrub_exception(error: BaseException, secret: str | None) -> None:
    """Mask `secret` in an SDK error a server may have echoed it into, before it is chained.

    The error stays the `__cause__` of llmcomm's own; only the key is masked, in its
    message, its args and its parsed body.
    """
    if not secret or len(secret) < 8:
        return
    error.args = tuple(scrub(a, secret) if isinstance(a, str) else a for a in error.args)
    message = getattr(error, "message", None)
    if isinstance(message, str):
        error.message = scrub(message, secret)  # type: ignore[attr-defined]
    body = getattr(error, "body", None)
    if body is not None and secret in repr(body):
        masked = orjson.dumps(body, default=str).replace(secret.encode(), b"****")
        error.body = orjson.loads(masked)  # type: ignore[attr-defined]
