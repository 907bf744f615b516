"""The errors a call ends with when no provider error says it all: closes and timeouts."""

from __future__ import annotations

from .._errors import LLMException, LLMTimeoutError, StreamInterruptedError


def closed_error(request_id: str | None) -> LLMException:
    """The error of a call whose client (or stream) was closed while it ran."""
    return LLMException(
        "the stream was closed while the call was running (its LLMCommunication or the stream itself "
        "was closed from another task); start a new call on an open client",
        request_id=request_id,
    )


def call_timeout(timeout: float, request_id: str | None, provider: str | None = None) -> LLMTimeoutError:
    """The call's deadline passed (`timeout` seconds after it started)."""
    what = "no complete reply" if provider else "no reply"
    return LLMTimeoutError(
        f"{what} within the call's timeout of {timeout:g} s; raise timeout= or LLM_TIMEOUT, or check the providers",
        request_id=request_id,
        provider=provider,
    )


def idle_timeout(idle: float, provider: str, partial_text: str, request_id: str | None) -> StreamInterruptedError:
    """The started stream stayed silent for `idle` seconds."""
    return StreamInterruptedError(
        f"no content for {idle:g} s after the stream started; the partial reply is in partial_text, try again",
        provider=provider,
        partial_text=partial_text,
        request_id=request_id,
    )


def interrupted(
    event: LLMException, provider: str, partial_text: str, request_id: str | None
) -> StreamInterruptedError:
    """The started stream failed with `event`."""
    error = StreamInterruptedError(
        f"the stream broke after it started: {event.message}; the partial reply is in partial_text",
        provider=provider,
        status_code=event.status_code,
        partial_text=partial_text,
        request_id=request_id,
        retryable=event.retryable,
    )
    error.__cause__ = event
    return error
