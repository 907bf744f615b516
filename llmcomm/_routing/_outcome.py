"""How a call ends: the response of a served reply, and the errors no provider error says all of.

The errors are closes and timeouts; `served_response` gathers what the call saw
(text, the closing chunk's usage and reason, every attempt) into the `LLMResponse`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._cost import cost_of
from .._errors import LLMException, LLMTimeoutError, ProviderUnavailableError, StreamInterruptedError
from .._messages import assemble
from .._types import LLMResponse, UsageInfo
from ..providers._base import config_of

if TYPE_CHECKING:
    from ._attempt import AttemptState
    from ._call import Call


def served_response(call: Call, winner: AttemptState, now: float) -> LLMResponse:
    """The response of `call`, whose `winner` read its reply to the end at `now` (the race's clock).

    The time to first token is the earliest of every attempt's (a continued reply
    counts its first provider's); usage, model and finish reason are the closing
    chunk's; the cost is the winner's provider's prices applied to that usage.
    """
    closing = call.closing
    first_at = min((a.first_at for a in call.attempts if a.first_at is not None), default=now)
    usage = closing.usage if closing and closing.usage else UsageInfo()
    return LLMResponse(
        content=call.text(),
        model=closing.model if closing else winner.provider.model,
        usage=usage,
        response_time=now - call.started,
        provider=winner.provider.name,
        request_id=call.request.request_id,
        finish_reason=closing.finish_reason if closing else None,
        time_to_first_token=first_at - call.started,
        attempts=call.attempt_records(now),
        cost=cost_of(usage, config_of(winner.provider)),
        **assemble(call.chunks).response_fields(),
        continued=call.continued,
    )


def closed_error(request_id: str | None) -> LLMException:
    """The error of a call whose client (or stream) was closed while it ran."""
    return LLMException(
        "the stream was closed while the call was running (its LLMCommunication or the stream itself "
        "was closed from another task); start a new call on an open client",
        request_id=request_id,
    )


def cancelled_error(request_id: str | None) -> LLMException:
    """What a read raises after the call was cancelled from outside it (a caller's scope, a cancelled task).

    The provider's stream was closed with the cancellation, so the reply cannot go on.
    """
    return LLMException(
        "the call was cancelled while it waited for its provider (by an enclosing cancel scope or a "
        "cancelled task) and its upstream is closed; start a new call to get a reply",
        request_id=request_id,
    )


def attempt_timed_out(provider: str, seconds: float) -> ProviderUnavailableError:
    """The attempt on `provider` ran past its own timeout (`seconds` after it started)."""
    return ProviderUnavailableError(
        f"the attempt took longer than the provider's timeout ({seconds:g} s); raise it "
        "(ProviderConfig.timeout, or the timeout of your own provider), or check the provider",
        provider=provider,
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
