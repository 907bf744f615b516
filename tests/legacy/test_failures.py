"""Which legacy prefix each llmcomm error gets: the table the application's `startswith` checks rely on."""

from __future__ import annotations

import json
import time

import httpx2
import pytest

from llmcomm import (
    AllProvidersFailedError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LLMException,
    LLMTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from llmcomm.legacy._failures import (
    ANTHROPIC_API_ERROR,
    CALL_FAILED,
    failed_provider,
    failed_response,
    is_api_error,
    is_failure,
)


def caused_by(error: LLMException, cause: BaseException) -> LLMException:
    error.__cause__ = cause
    return error


API_ERRORS = {
    "401": AuthenticationError("authentication failed", provider="anthropic", status_code=401),
    "403": AuthenticationError("permission denied", provider="anthropic", status_code=403),
    "429": RateLimitError("rate limited", provider="anthropic", status_code=429),
    "529": ProviderUnavailableError("overloaded", provider="anthropic", status_code=529),
    "400 from the provider": InvalidRequestError("rejected", provider="anthropic", status_code=400),
    "error event mid-stream": StreamInterruptedError("broke", provider="anthropic", status_code=529),
    "connection refused": caused_by(
        ProviderUnavailableError("cannot connect", provider="openai"), httpx2.ConnectError("refused")
    ),
    "connect timeout": caused_by(
        ProviderUnavailableError("connecting timed out", provider="anthropic"), httpx2.ConnectTimeout("slow")
    ),
    "first of several": AllProvidersFailedError(
        [
            ProviderUnavailableError("overloaded", provider="anthropic", status_code=529),
            StreamInterruptedError("reset", provider="openai"),
        ]
    ),
}
CALL_FAILURES = {
    "reset mid-stream": StreamInterruptedError("the stream broke", provider="anthropic"),
    "reset before content": caused_by(
        ProviderUnavailableError("broke mid-response", provider="anthropic"), httpx2.RemoteProtocolError("reset")
    ),
    "read timeout": caused_by(
        ProviderUnavailableError("sent nothing", provider="anthropic"), httpx2.ReadTimeout("silent")
    ),
    "call timeout": LLMTimeoutError("no complete reply within the call's timeout"),
    "bad input": InvalidRequestError("messages is empty"),
    "nothing configured": ConfigurationError("no LLM provider is configured"),
    "not an llmcomm error": RuntimeError("boom"),
    "first of several": AllProvidersFailedError(
        [
            StreamInterruptedError("reset", provider="anthropic"),
            ProviderUnavailableError("overloaded", provider="openai", status_code=529),
        ]
    ),
    "none at all": AllProvidersFailedError([]),
}


@pytest.mark.parametrize("name", list(API_ERRORS))
def test_api_errors(name: str) -> None:
    assert is_api_error(API_ERRORS[name])


@pytest.mark.parametrize("name", list(CALL_FAILURES))
def test_call_failures(name: str) -> None:
    assert not is_api_error(CALL_FAILURES[name])


def test_the_failed_response_names_the_provider_and_serialises() -> None:
    error = API_ERRORS["connection refused"]
    response = failed_response(ANTHROPIC_API_ERROR, error, "gpt-x", time.monotonic(), "LLM-1700000000000-00000000")
    assert response.content == "Anthropic API错误: [openai] cannot connect"
    assert (response.provider, response.model, response.request_id) == ("openai", "gpt-x", "LLM-1700000000000-00000000")
    assert json.loads(json.dumps(response.usage)) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert 0 <= response.response_time < 1
    assert failed_provider(API_ERRORS["first of several"]) == "anthropic"
    assert failed_provider(CALL_FAILURES["first of several"]) == "anthropic"
    assert failed_provider(CALL_FAILURES["call timeout"]) == "anthropic"  # no provider: the legacy default


def test_is_failure_knows_every_prefix() -> None:
    for text in ("调用失败: x", "API错误: x", "Anthropic API错误: x", "LLM调用失败: x"):
        assert is_failure(text)
    assert not is_failure("A reply that mentions 调用失败 later.")
    assert CALL_FAILED == "调用失败: "
