"""The provider protocol, and the failure classification every provider shares."""

from __future__ import annotations

import datetime
import email.utils
import math
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
from .._secrets import redact
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


#: a wait longer than this is not a plausible Retry-After: the header is ignored
MAX_RETRY_AFTER = 86_400.0


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait as the provider asked: `retry-after-ms`, then `retry-after`.

    `retry-after` is seconds or an HTTP date. A value that is neither, negative,
    not finite, or more than a day away is ignored (None); this never raises, so a
    bad header cannot change which error a status stands for.
    """
    if not headers:
        return None
    try:
        milliseconds = _seconds(headers.get("retry-after-ms"))
        if milliseconds is not None and (wait := _plausible(milliseconds / 1000.0)) is not None:
            return wait
        value = headers.get("retry-after")
        seconds = _seconds(value)
        if seconds is not None:
            return _plausible(seconds)
        return _plausible(_until_date(value)) if value else None
    except Exception:  # a header is the server's text: nothing in it may fail the caller
        return None


def _seconds(value: str | None) -> float | None:
    if not value or not value.strip() or not value.isascii():  # float() also reads non-ASCII digits
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _until_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC too
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


def _plausible(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RETRY_AFTER:
        return None
    return seconds


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
    """`text` with `secret` and anything else secret-looking masked (`_secrets.redact`),
    for messages a server may echo a key or a URL into."""
    return redact(text, (secret,))


def scrub_exception(error: BaseException, secret: str | None) -> None:
    """Mask `secret` (and URL credentials) in an error and every error in its
    `__cause__`/`__context__` chain, before llmcomm chains it under its own.

    The errors stay in the chain; only secrets are masked, in their messages, args,
    parsed bodies, and the text a `UnicodeError` keeps (which is the whole value).
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:  # chains are short; a cycle must not loop forever
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _scrub_one(current, secret)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def _scrub_one(error: BaseException, secret: str | None) -> None:
    if isinstance(error, UnicodeEncodeError):  # it keeps the whole text it could not encode
        error.object = scrub(error.object, secret)
        error.args = (error.encoding, error.object, error.start, error.end, error.reason)
    error.args = tuple(scrub(a, secret) if isinstance(a, str) else a for a in error.args)
    message = getattr(error, "message", None)
    if isinstance(message, str):
        error.message = scrub(message, secret)  # type: ignore[attr-defined]
    body = getattr(error, "body", None)
    if body is not None:
        raw = orjson.dumps(body, default=str).decode()
        masked_body = scrub(raw, secret)
        if masked_body != raw:
            error.body = orjson.loads(masked_body)  # type: ignore[attr-defined]
