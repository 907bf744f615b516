"""An HTTP error status, its headers and its body → the llmcomm error, in one place.

Pure: the sender reads the (bounded) body and hands it here. Both wires put the
error object under `error` (Anthropic: `{"type": "error", "error": {"type",
"message"}}`; OpenAI: `{"error": {"message", "type", "code", "param"}}`); a body
that is not JSON (a proxy's HTML page) is described by the status's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, final

import orjson

from .._errors import LLMException
from ..providers._base import error_for_status, parse_retry_after, scrub

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
