"""The log lines of a call's events, on the `llmcomm` logger.

DEBUG for a call's start, its attempts and its first token; INFO for retries,
fallbacks, the finished call and a cancelled one; WARNING for a failed call and
for a fallback away from a provider that rejected the request itself (every such
call pays for the doomed request). Each line carries its structured fields in
`extra` (listed in `_logging`); `prompt` and `reply` only with content logging on.
"""

from __future__ import annotations

import logging
from typing import Any, Final, final

from .._events import REJECTED
from .._types import Request
from ._event import (
    AttemptStart,
    CallState,
    Event,
    Fallback,
    FirstToken,
    RequestCancelled,
    RequestEnd,
    RequestError,
    RequestStart,
    Retry,
)
from ._logging import logger

_LEVELS: Final[dict[type[Any], int]] = {
    RequestStart: logging.DEBUG,
    AttemptStart: logging.DEBUG,
    FirstToken: logging.DEBUG,
    Retry: logging.INFO,
    Fallback: logging.INFO,
    RequestEnd: logging.INFO,
    RequestError: logging.WARNING,
    RequestCancelled: logging.INFO,
}

#: a line: its message, the message's arguments after the request id, and its fields
_Line = tuple[str, tuple[Any, ...], dict[str, Any]]


def _last_user_text(request: Request) -> str:
    return request.messages[-1].text if request.messages else ""


@final
class LogSink:
    """Logs each event of a call (`log_content`: with the prompt and the reply)."""

    __slots__ = ("log_content",)

    def __init__(self, log_content: bool) -> None:
        self.log_content = log_content

    def __repr__(self) -> str:
        return "llmcomm logging"

    def handle(self, call: CallState, event: Event) -> None:
        level = _LEVELS[type(event)]
        if isinstance(event, Fallback) and event.reason.startswith(REJECTED):
            level = logging.WARNING
        if not logger.isEnabledFor(level):
            return
        message, args, fields = self._line(call, event)
        request_id = call.request.request_id
        extra = {"event": event.name, "request_id": request_id, **fields}
        logger.log(level, message, request_id, *args, extra=extra)

    def _line(self, call: CallState, event: Event) -> _Line:
        match event:
            case RequestStart():
                fields: dict[str, Any] = {"providers": list(event.providers)}
                if self.log_content:
                    fields["prompt"] = _last_user_text(call.request)
                return "LLM request %s started; providers %s", (", ".join(event.providers),), fields
            case AttemptStart():
                attempt = call.attempts
                return (
                    "LLM request %s: attempt %d on %s (%s, %s)",
                    (attempt, event.provider, event.model, event.reason),
                    _fields(event.provider, event.model, attempt=attempt, reason=event.reason),
                )
            case FirstToken():
                return (
                    "LLM request %s: first token from %s after %.3f s",
                    (event.provider, event.seconds),
                    _fields(event.provider, event.model, time_to_first_token=event.seconds),
                )
            case Retry():
                error_type = type(event.error).__name__
                return (
                    "LLM request %s: retrying %s in %.2f s after %s",
                    (event.provider, event.delay, error_type),
                    _fields(
                        event.provider,
                        event.model,
                        attempt=call.attempts,
                        delay=event.delay,
                        error_type=error_type,
                        status_code=event.error.status_code,
                    ),
                )
            case Fallback():
                return (
                    "LLM request %s: falling back from %s to %s (%s)",
                    (event.provider, event.to_provider, event.reason),
                    _fields(
                        event.provider,
                        event.model,
                        to_provider=event.to_provider,
                        attempt=call.attempts,
                        reason=event.reason,
                    ),
                )
            case RequestEnd():
                return self._end(call, event)
            case RequestError():
                error = event.error
                error_type = type(error).__name__
                return (
                    "LLM request %s failed after %.3f s: %s: %s",
                    (event.seconds, error_type, error),
                    _fields(
                        event.provider,
                        event.model,
                        outcome="error",
                        attempt=call.attempts,
                        response_time=event.seconds,
                        error_type=error_type,
                        status_code=error.status_code,
                    ),
                )
            case RequestCancelled():
                return (
                    "LLM request %s cancelled after %.3f s",
                    (event.seconds,),
                    _fields(
                        event.provider,
                        event.model,
                        outcome="cancelled",
                        attempt=call.attempts,
                        response_time=event.seconds,
                    ),
                )

    def _end(self, call: CallState, event: RequestEnd) -> _Line:
        response = event.response
        usage = response.usage
        ttft = response.time_to_first_token
        fields = _fields(
            event.provider,
            event.model,
            outcome="success",
            attempt=call.attempts,
            response_time=response.response_time,
            time_to_first_token=ttft,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            finish_reason=response.finish_reason,
        )
        if self.log_content:
            fields["prompt"] = _last_user_text(call.request)
            fields["reply"] = response.content
        return (
            "LLM request %s finished: %s (%s) in %.3f s, first token after %s s, %d prompt + %d completion tokens",
            (
                event.provider,
                event.model,
                response.response_time,
                "-" if ttft is None else f"{ttft:.3f}",
                usage.prompt_tokens,
                usage.completion_tokens,
            ),
            fields,
        )


def _fields(provider: str, model: str, **more: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, **more}
