"""The legacy failure strings: which prefix an error gets, and the failed `LLMResponse`.

The legacy methods never raise for an LLM failure; they return text that starts
with one of these prefixes, and callers test it with `startswith`. The prefixes
are the contract: detail may follow them, they never change.

- `"Anthropic API错误: "` (`generate_response`) and `"API错误: "` (`simple_llm`,
  `llm_call_with_history`): the provider answered with an error (an HTTP error
  status, an error event in the stream) or could not be connected to. The
  text names the provider that failed, whichever it was.
- `"调用失败: "`: anything else: a connection that broke mid-reply, a stall or
  a timeout, bad input refused before any I/O, nothing configured.
- `"LLM调用失败: "`: only when `SimpleLLMManager` itself raises.
"""

from __future__ import annotations

import time
from typing import Final

from .._errors import AllProvidersFailedError, InvalidRequestError, LLMException, ProviderUnavailableError
from .._secrets import CauseSummary
from .._types import LLMResponse, UsageInfo

CALL_FAILED: Final = "调用失败: "
API_ERROR: Final = "API错误: "
ANTHROPIC_API_ERROR: Final = "Anthropic API错误: "
MANAGER_FAILED: Final = "LLM调用失败: "
NO_VALID_RESPONSE: Final = "未收到有效响应"
#: every prefix a legacy failure text starts with
FAILURE_PREFIXES: Final = (CALL_FAILED, API_ERROR, ANTHROPIC_API_ERROR, MANAGER_FAILED)
#: the provider a legacy reply names when no provider was involved
LEGACY_PROVIDER: Final = "anthropic"

#: transport errors that mean "could not connect" (the SDK's APIConnectionError of the legacy code)
_CONNECT_FAILURES: Final = frozenset({"ConnectError", "ConnectTimeout", "ConnectionRefusedError"})
#: how far down a `__cause__` chain to look
_CHAIN_DEPTH: Final = 8


def _connect_failure(error: BaseException) -> bool:
    cause: BaseException | None = error
    for _ in range(_CHAIN_DEPTH):
        if cause is None:
            return False
        # A transport library's error reaches llmcomm's callers only as its summary (`CauseSummary`).
        kind = cause.kind.rpartition(".")[2] if isinstance(cause, CauseSummary) else type(cause).__name__
        if kind in _CONNECT_FAILURES:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def is_api_error(error: BaseException) -> bool:
    """Whether the legacy code would have seen an API error for `error`.

    True for an HTTP error status or an error event in the stream (anything the
    provider answered with a status, also after the first chunk) and for a
    connection that could not be made. False for a stream that broke or stalled,
    a timeout, and llmcomm's own refusals. Several providers failed: as the first
    one's error (the provider the legacy code had).
    """
    if isinstance(error, AllProvidersFailedError):
        return bool(error.errors) and is_api_error(error.errors[0])
    if not isinstance(error, LLMException):
        return False
    if isinstance(error, InvalidRequestError):
        return error.status_code is not None  # a 400/404 from the provider, not llmcomm's own check
    if error.status_code is not None:
        return True
    return isinstance(error, ProviderUnavailableError) and _connect_failure(error)


def failed_provider(error: BaseException) -> str:
    """The name of the provider `error` came from (the first one tried when several failed)."""
    if isinstance(error, AllProvidersFailedError) and error.errors:
        return error.errors[0].provider or LEGACY_PROVIDER
    return getattr(error, "provider", None) or LEGACY_PROVIDER


def failure_text(prefix: str, error: BaseException) -> str:
    """`prefix` then the error; the provider that failed is named in the error's text."""
    return f"{prefix}{error}"


def failed_response(prefix: str, error: BaseException, model: str, started: float, request_id: str) -> LLMResponse:
    """The legacy failure reply: the prefixed error as content, usage counts 0.

    `started` is a `time.monotonic()` value; `response_time` counts from it.
    """
    return LLMResponse(
        content=failure_text(prefix, error),
        model=model,
        usage=UsageInfo(),
        response_time=time.monotonic() - started,
        provider=failed_provider(error),
        request_id=request_id,
    )


def is_failure(text: str) -> bool:
    """Whether `text` is a legacy failure string (any of the prefixes)."""
    return text.startswith(FAILURE_PREFIXES)
