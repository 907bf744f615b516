"""An HTTP error status, its headers and its body → the llmcomm error, in one place.

Pure: the sender reads the (bounded) body and hands it here. Both wires put the
error object under `error` (Anthropic: `{"type": "error", "error": {"type",
"message"}}`; OpenAI: `{"error": {"message", "type", "code", "param"}}`); a body
that is not JSON (a proxy's HTML page) is described by the status's reason.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, final

import orjson

from .._errors import (
    AuthenticationError,
    InvalidRequestError,
    LLMException,
    ProviderUnavailableError,
    RateLimitError,
)
from .._secrets import scrub

#: statuses worth trying again when the server does not say (`x-should-retry`)
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@final
class HTTPStatusFailure(Exception):
    """An HTTP error status as received: the `__cause__` of the llmcomm error it maps to.

    `body` is the response body as text, with the key masked; a provider looks
    into it to tell rejections apart (e.g. a server refusing `stream_options`).
    """

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.body = body


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    secret: str | None,
    key_hint: str,
    model: str,
    reason: str | None = None,
) -> LLMException:
    """The llmcomm error an HTTP error response stands for, with its cause attached.

    `headers` is looked up by lower-case name (an `httpx2.Headers` or a plain
    dict of lower-case names). `secret` (the API key) is masked in the message and
    in the cause. Retryability follows `x-should-retry` when the server sends it,
    else the status (408, 409, 429 and >= 500 are retryable; a 429 for an
    exhausted quota is not). The provider's request id is kept as
    `provider_request_id`. `reason` is the status line's phrase (the standard one
    when None), the detail when the body names none.
    """
    text = scrub(body.decode("utf-8", "replace"), secret)
    reason = scrub(reason, secret) if reason is not None else _reason(status)
    error = _error_object(text)
    message = error.get("message")
    detail = message if isinstance(message, str) and message else reason or f"HTTP {status}"
    code = error.get("code") or error.get("type")
    if 300 <= status < 400:
        location = scrub(headers.get("location") or "", secret)
        detail = f"the server redirected to {location or 'another address'}; set base_url to the final address"
    exc = error_for_status(
        status,
        scrub(detail, secret),
        provider=provider,
        key_hint=key_hint,
        model=model,
        retry_after=parse_retry_after(headers),
        code=str(code) if code else None,
    )
    should_retry = (headers.get("x-should-retry") or "").strip().lower()
    if should_retry in ("true", "false"):
        exc.retryable = should_retry == "true"
    exc.provider_request_id = headers.get("request-id") or headers.get("x-request-id") or None
    exc.__cause__ = HTTPStatusFailure(status, reason, text)
    return exc


def is_retryable_status(status: int) -> bool:
    """Whether a status is worth trying again when the server does not say (`x-should-retry`)."""
    return status in RETRYABLE_STATUSES or status >= 500


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "overloaded" if status == 529 else ""


def _error_object(text: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    inner = parsed.get("error")
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, str):  # some compatible servers send the message bare
        return {"message": inner}
    return parsed


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
