"""`SimpleLLMService` and `LLMMessage`: the legacy sync service, backed by every configured provider.

The legacy methods never raise for an LLM failure: they return a string (or an
`LLMResponse` whose `content` is that string) starting with a fixed prefix, which
callers test with `startswith`. The prefixes below are part of that contract.
New code that wants exceptions uses `SyncLLMCommunication` or `LLMCommunication`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, final

from ._config import Configuration, read_dotenv
from ._errors import (
    AllProvidersFailedError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LLMTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from ._observability import enable_legacy_log_file
from ._request import new_request_id
from ._sync import SyncLLMCommunication
from ._types import LLMResponse, UsageInfo

#: the model the legacy service names when no provider is configured
LEGACY_DEFAULT_MODEL: Final = "claude-3-5-sonnet-20241022"
LEGACY_DEFAULT_MAX_TOKENS: Final = 12288
CALL_FAILED: Final = "调用失败: "
API_ERROR: Final = "API错误: "
ANTHROPIC_API_ERROR: Final = "Anthropic API错误: "
NO_VALID_RESPONSE: Final = "未收到有效响应"
QUICK_TEST_PROMPT: Final = "Reply with the single word OK."

#: `generate_response` keyword arguments that are llmcomm call options; the rest go to the provider
_PASSED_OPTIONS: Final = frozenset({"temperature", "system", "provider", "timeout"})
_API_ERRORS: Final = (
    AuthenticationError,
    RateLimitError,
    ProviderUnavailableError,
    LLMTimeoutError,
    StreamInterruptedError,
    AllProvidersFailedError,
)

log = logging.getLogger("llmcomm.legacy")


def log_line(level: int, request_id: str, layer: str, message: str) -> None:
    """Log a legacy-layer line; the legacy log file shows it as `[LLM-REQ-ID: <id>] <LAYER>_LAYER - <message>`."""
    log.log(level, message, extra={"request_id": request_id, "layer": layer})


def is_api_error(error: BaseException) -> bool:
    """Whether the legacy code would have seen an SDK API error (the provider answered or failed)."""
    if isinstance(error, InvalidRequestError):
        return error.status_code is not None  # a 400/404 from the provider, not llmcomm's own check
    return isinstance(error, _API_ERRORS)


@dataclass
class LLMMessage:
    """One legacy message: `role` is "system", "user" or "assistant".

    A "system" message (callers put it first) reaches each provider as its own
    system field.
    """

    role: str
    content: str
    name: str | None = None


def legacy_configuration(api_key: str | None) -> tuple[Configuration | None, str]:
    """The configuration the legacy service uses, or None and the reason (which says what to set).

    An explicit `api_key` means an Anthropic provider with that key, first unless
    `LLM_PROVIDERS` places it; the rest of the environment still adds fallbacks.
    """
    try:
        if not api_key:
            return Configuration.from_env(), ""
        env: dict[str, str] = read_dotenv(Path(".env")) if Path(".env").is_file() else {}
        env.update(os.environ)
        env["ANTHROPIC_API_KEY"] = api_key
        order = [kind.strip() for kind in env.get("LLM_PROVIDERS", "").split(",") if kind.strip()]
        if order and "anthropic" not in order:
            env["LLM_PROVIDERS"] = ",".join(["anthropic", *order])
        return Configuration.from_env(environ=env), ""
    except ConfigurationError as exc:
        return None, str(exc)


def failed_response(prefix: str, error: BaseException, model: str, started: float, request_id: str) -> LLMResponse:
    """The legacy failure reply: the prefixed error as content, usage counts 0."""
    provider = getattr(error, "provider", None) or "anthropic"
    return LLMResponse(
        content=f"{prefix}{error}",
        model=model,
        usage=UsageInfo(),
        response_time=time.monotonic() - started,
        provider=provider,
        request_id=request_id,
    )


@final
class SimpleLLMService:
    """The legacy synchronous LLM service, now with every configured provider and fallback.

    `SimpleLLMService()` reads the environment like `Configuration.from_env()`;
    `SimpleLLMService(api_key=...)` adds an Anthropic provider with that key. It
    never raises when nothing is configured: its methods then return their legacy
    failure strings, naming the variables to set.

    Attributes: `api_key` (the explicit key, else `ANTHROPIC_API_KEY`), `default_model`
    (the first configured provider's model; the legacy name when nothing is
    configured), `default_max_tokens` (12288, sent with every call that does not
    name `max_tokens`), and `client`: the `SyncLLMCommunication` serving the calls,
    or None when nothing is configured (it is not an `anthropic.Anthropic` client).
    A `model` passed to a call, or a changed `default_model`, is sent to whichever
    provider serves the call. Like the legacy service, it writes the dedicated LLM
    log file unless `ENABLE_LLM_SPECIAL_LOG` is false (`LLM_LOG_FILE`, default
    `logs/llm_requests.log`).
    """

    def __init__(self, api_key: str | None = None) -> None:
        try:  # the legacy service kept its dedicated log file (ENABLE_LLM_SPECIAL_LOG, LLM_LOG_FILE)
            enable_legacy_log_file()
        except OSError as exc:  # an unwritable log directory must not break the service
            log.warning("cannot open the LLM log file (LLM_LOG_FILE): %s", exc)
        self.api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        config, self._config_problem = legacy_configuration(api_key)
        self.default_model: str = config.providers[0].model if config else LEGACY_DEFAULT_MODEL
        self._configured_model = self.default_model
        self.default_max_tokens: int = LEGACY_DEFAULT_MAX_TOKENS
        self.client: SyncLLMCommunication | None = SyncLLMCommunication(config) if config else None
        self._provider_names: tuple[str, ...] = tuple(p.name for p in config.providers) if config else ()
        self._provider_kinds: tuple[str, ...] = tuple(p.kind for p in config.providers) if config else ()

    def __repr__(self) -> str:
        return f"<SimpleLLMService providers={list(self._provider_names)} default_model={self.default_model!r}>"

    @property
    def configured(self) -> bool:
        """Whether a provider is configured (no network is used to tell)."""
        return self.client is not None and not self.client.closed

    def close(self) -> None:
        """Close the connections (idempotent); later calls return the legacy failure strings."""
        if self.client is not None:
            self.client.close()

    # -- helpers shared with SimpleLLMManager -----------------------------------------

    def _require_client(self) -> SyncLLMCommunication:
        """The client, or `ConfigurationError` saying what to set."""
        if self.client is None:
            raise ConfigurationError(self._config_problem)
        return self.client

    def _call_options(
        self,
        model: str | None,
        max_tokens: int | None,
        request_id: str,
        provider_kwargs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """llmcomm call options for a legacy call."""
        options: dict[str, Any] = {"max_tokens": max_tokens or self.default_max_tokens, "request_id": request_id}
        # The configured model stays per provider, so a fallback provider keeps its own.
        chosen = model or (self.default_model if self.default_model != self._configured_model else None)
        if chosen:
            options["model"] = chosen
        extra: dict[str, Any] = {}
        for key, value in (provider_kwargs or {}).items():
            if key in _PASSED_OPTIONS:
                options[key] = value
            elif key == "extra" and isinstance(value, Mapping):
                extra.update(value)
            elif key != "stream":  # the call streams underneath anyway
                extra[key] = value
        if extra:
            options["extra"] = extra
        return options

    def _text(self, prompt: str | Sequence[Any], model: str | None, max_tokens: int | None, layer: str) -> str:
        request_id = new_request_id()
        log_line(logging.DEBUG, request_id, layer, "call started")
        try:
            text = self._require_client().generate_text(prompt, **self._call_options(model, max_tokens, request_id))
        except Exception as exc:
            log_line(logging.WARNING, request_id, layer, f"call failed: {type(exc).__name__}: {exc}")
            raise
        log_line(logging.DEBUG, request_id, layer, f"call finished: {len(text)} characters")
        return text

    # -- the legacy methods -----------------------------------------------------------

    def llm_call(self, prompt: str) -> str:
        """The reply to `prompt`; on failure `"调用失败: <error>"`."""
        try:
            return self._text(prompt, None, None, "SERVICE")
        except Exception as exc:
            return f"{CALL_FAILED}{exc}"

    def simple_llm(self, prompt: str, model: str | None = None, max_tokens: int | None = None) -> str:
        """The reply to `prompt`; `"未收到有效响应"` when it is empty.

        On failure `"API错误: <error>"` when the provider failed, else `"调用失败: <error>"`.
        """
        try:
            text = self._text(prompt, model, max_tokens, "SERVICE")
        except Exception as exc:
            return f"{API_ERROR if is_api_error(exc) else CALL_FAILED}{exc}"
        return text or NO_VALID_RESPONSE

    def llm_call_with_history(
        self,
        prompt: str,
        history: list[dict[str, str]] | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """The reply to `history` (role/content dicts) followed by `prompt` as the user's turn.

        Failures and empty replies as `simple_llm`.
        """
        messages: list[Any] = [*(history or []), {"role": "user", "content": prompt}]
        try:
            text = self._text(messages, model, max_tokens, "SERVICE")
        except Exception as exc:
            return f"{API_ERROR if is_api_error(exc) else CALL_FAILED}{exc}"
        return text or NO_VALID_RESPONSE

    def generate_response(
        self,
        messages: Sequence[Any],
        model: str | None = None,
        max_tokens: int | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """An `LLMResponse` for `messages` (dicts or objects with `.role`/`.content`).

        Extra keyword arguments go to the provider call (`temperature`, `system` and
        `timeout` as llmcomm options, anything else as provider request fields). On
        failure `content` is `"Anthropic API错误: <error>"` when the provider failed,
        else `"调用失败: <error>"`, and the usage counts are 0.
        """
        started = time.monotonic()
        request_id = request_id or new_request_id()
        log_line(logging.DEBUG, request_id, "SERVICE", "generate_response started")
        try:
            options = self._call_options(model, max_tokens, request_id, kwargs)
            response = self._require_client().generate_response(messages, **options)
        except Exception as exc:
            log_line(logging.WARNING, request_id, "SERVICE", f"generate_response failed: {type(exc).__name__}: {exc}")
            prefix = ANTHROPIC_API_ERROR if is_api_error(exc) else CALL_FAILED
            return failed_response(prefix, exc, model or self.default_model, started, request_id)
        log_line(logging.DEBUG, request_id, "SERVICE", f"generate_response finished on {response.provider}")
        return response

    def quick_test(self) -> bool:
        """Whether a one-line prompt gets a reply (uses the network; never raises)."""
        try:
            return bool(self._text(QUICK_TEST_PROMPT, None, None, "SERVICE"))
        except Exception:
            return False
