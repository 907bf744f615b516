"""The error tree of llmcomm.

    LLMException                      provider, status_code, request_id, retryable, retry_after
    ├── ConfigurationError            nothing usable configured, or a bad setting
    ├── InvalidRequestError           bad input, refused before any network I/O (also 400/404/413)
    ├── AuthenticationError           401, 403: a key is missing, wrong or not allowed
    ├── RateLimitError                429 (retry_after when the provider says)
    ├── ProviderUnavailableError      5xx, 529 overloaded, refused or dropped connections
    ├── LLMTimeoutError               the call's deadline passed (also a builtin TimeoutError)
    ├── StreamInterruptedError        failure after the first chunk: partial_text
    ├── AllProvidersFailedError       every provider failed: errors, one per attempt
    ├── OutputValidationError         a reply does not match response_format: content, errors, attempts
    └── ToolLoopError                 run_tools went past max_steps: messages (the conversation so far)

No `ExceptionGroup` and no raw SDK, httpx2 or OS exception reaches a caller: each
provider maps its failures once, and the original is kept as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class LLMException(Exception):
    """Base class of every error llmcomm raises."""

    #: whether trying the same provider again later can succeed
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        #: seconds the provider asked to wait before trying again, when it said so
        self.retry_after = retry_after
        #: the id the provider gave the failed HTTP request (`request-id`, `x-request-id`), for its support
        self.provider_request_id: str | None = None

    def __str__(self) -> str:
        where = f"[{self.provider}] " if self.provider else ""
        status = f" (HTTP {self.status_code})" if self.status_code else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        return f"{where}{self.message}{status}{rid}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(LLMException):
    """No usable provider is configured, or a setting is malformed.

    `nothing_configured` is True only when no provider is set up at all (no key,
    no base URL, no CLI); every other `ConfigurationError` is a mistake to fix.
    `notes` says why variables that were set configured nothing (a placeholder key).
    """

    def __init__(
        self,
        message: str,
        *,
        nothing_configured: bool = False,
        provider: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, provider=provider)
        self.nothing_configured = nothing_configured
        #: why variables that were set did not configure a provider (a placeholder key, say)
        self.notes = notes


class InvalidRequestError(LLMException):
    """The request is malformed: fix the input, retrying cannot help."""


class AuthenticationError(LLMException):
    """The provider refused the credentials (401) or the permission (403)."""


class RateLimitError(LLMException):
    """The provider asked us to slow down (429)."""

    default_retryable = True


class ProviderUnavailableError(LLMException):
    """The provider could not serve the request now: 5xx, 529, or no connection."""

    default_retryable = True


class LLMTimeoutError(LLMException, TimeoutError):
    """The call's deadline passed before the reply was complete."""

    default_retryable = True


class StreamInterruptedError(LLMException):
    """The stream failed after its first chunk; `partial_text` is what arrived."""

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, status_code=status_code, request_id=request_id, retryable=retryable
        )
        self.partial_text = partial_text


class AllProvidersFailedError(LLMException):
    """Every provider tried failed; `errors` holds one error per attempt, in order."""

    def __init__(self, errors: Sequence[LLMException], *, request_id: str | None = None) -> None:
        self.errors = tuple(errors)
        summary = "; ".join(f"{type(e).__name__}: {e}" for e in self.errors)
        super().__init__(
            f"all {len(self.errors)} provider attempts failed: {summary}",
            request_id=request_id,
            retryable=any(e.retryable for e in self.errors),
        )


class OutputValidationError(LLMException):
    """A reply did not match the call's `response_format`, on every turn tried.

    `content` is the raw text of the last reply, `errors` the validation errors
    (dicts with `loc`, `msg`, `type`), `attempts` how many replies were tried,
    `finish_reason` the last reply's (normalised) finish reason.
    """

    def __init__(
        self,
        message: str,
        *,
        content: str = "",
        errors: Sequence[Mapping[str, Any]] = (),
        attempts: int = 1,
        finish_reason: str | None = None,
        provider: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, request_id=request_id)
        self.content = content
        self.errors = [dict(e) for e in errors]
        self.attempts = attempts
        self.finish_reason = finish_reason


class ToolLoopError(LLMException):
    """`run_tools` asked the model more than `max_steps` times without a final answer.

    `messages` holds the conversation so far (the tool calls and results
    included), to inspect or to continue with a higher `max_steps`.
    """

    def __init__(self, message: str, *, messages: Sequence[Any] = (), request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.messages = tuple(messages)
