"""`SimpleLLMService` and `LLMMessage`: the legacy sync service, backed by every configured provider.

The legacy methods never raise for an LLM failure: they return a string (or an
`LLMResponse` whose `content` is that string) starting with a fixed prefix
(`_failures`), which callers test with `startswith`. New code that wants
exceptions uses `SyncLLMCommunication` or `LLMCommunication`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from .._config import Configuration
from .._config_env import merged_environment
from .._errors import ConfigurationError
from .._observability import enable_legacy_log_file
from .._request import new_request_id
from .._sync import SyncLLMCommunication
from .._types import LLMResponse
from ._failures import (
    ANTHROPIC_API_ERROR,
    API_ERROR,
    CALL_FAILED,
    NO_VALID_RESPONSE,
    failed_response,
    is_api_error,
)

#: the model the legacy service names when no provider is configured
LEGACY_DEFAULT_MODEL: Final = "claude-3-5-sonnet-20241022"
LEGACY_DEFAULT_MAX_TOKENS: Final = 12288
#: what the legacy `generate_response` always sent, whatever the caller passed
LEGACY_RESPONSE_MAX_TOKENS: Final = 40960
QUICK_TEST_PROMPT: Final = "Reply with the single word OK."

#: `generate_response` keyword arguments that are llmcomm call options; the rest go to the provider
_PASSED_OPTIONS: Final = frozenset({"temperature", "system", "timeout"})

log = logging.getLogger("llmcomm.legacy")


def log_line(level: int, request_id: str, layer: str, message: str) -> None:
    """Log a legacy-layer line; the legacy log file shows it as `[LLM-REQ-ID: <id>] <LAYER>_LAYER - <message>`."""
    log.log(level, message, extra={"request_id": request_id, "layer": layer})


def legacy_environment() -> dict[str, str]:
    """The process environment over `./.env`, as the legacy application's `load_dotenv()` saw it."""
    with contextlib.suppress(ConfigurationError):  # Configuration.from_env() reports it where it matters
        return merged_environment()
    return dict(os.environ)


def positive_int(env: Mapping[str, str], name: str) -> int | None:
    """`env[name]` as a positive whole number, or None when unset or not one."""
    try:
        value = int(env.get(name, "").strip())
    except ValueError:
        return None
    return value if value > 0 else None


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
        env = legacy_environment()
        env["ANTHROPIC_API_KEY"] = api_key
        order = [kind.strip() for kind in env.get("LLM_PROVIDERS", "").split(",") if kind.strip()]
        if order and "anthropic" not in order:
            env["LLM_PROVIDERS"] = ",".join(["anthropic", *order])
        return Configuration.from_env(environ=env), ""
    except ConfigurationError as exc:
        return None, str(exc)


def _warm_up(client: SyncLLMCommunication) -> None:
    """Start the portal and open the client's connections pool, so the first call need not."""
    try:
        client._open()
    except Exception:  # closed meanwhile, or the portal is gone: the first call reports it
        log.debug("warming up the LLM client failed", exc_info=True)


@final
class SimpleLLMService:
    """The legacy synchronous LLM service, now with every configured provider and fallback.

    `SimpleLLMService()` reads the environment like `Configuration.from_env()`;
    `SimpleLLMService(api_key=...)` adds an Anthropic provider with that key. It
    never raises when nothing is configured: its methods then return their legacy
    failure strings, naming the variables to set. Creating it touches no network;
    when a provider is configured, a background thread starts llmcomm's portal and
    builds the client, so that the first call does not wait for that.

    Attributes: `api_key` (the explicit key, else `ANTHROPIC_API_KEY`), `default_model`
    (the first configured provider's model; the legacy name when nothing is
    configured), `default_max_tokens` (12288, sent by `llm_call`, `simple_llm` and
    `llm_call_with_history` when they are not given `max_tokens`), and `client`: the
    `SyncLLMCommunication` serving the calls, or None when nothing is configured (it
    is not an `anthropic.Anthropic` client). `generate_response` sends the caller's
    `max_tokens`, else `ANTHROPIC_MAX_TOKENS` when set, else 40960 (what the legacy
    service always sent). A `model` passed to a call, or a changed `default_model`,
    is sent to whichever provider serves the call. It writes the legacy dedicated LLM
    log file (`LLM_LOG_FILE`, default `logs/llm_requests.log`) only when
    `ENABLE_LLM_SPECIAL_LOG` is set to a true value: creating files in the working
    directory is the application's decision, never a side effect of a library.
    """

    def __init__(self, api_key: str | None = None) -> None:
        env = legacy_environment()
        if env.get("ENABLE_LLM_SPECIAL_LOG", "").strip().lower() in {"1", "true", "yes", "on"}:
            try:  # the legacy dedicated log file, when the application asks for it
                enable_legacy_log_file(environ=env)
            except OSError as exc:  # an unwritable log directory must not break the service
                log.warning("cannot open the LLM log file (LLM_LOG_FILE): %s", exc)
        self.api_key = api_key or env.get("ANTHROPIC_API_KEY") or None
        config, self._config_problem = legacy_configuration(api_key)
        self.default_model: str = config.providers[0].model if config else LEGACY_DEFAULT_MODEL
        self._configured_model = self.default_model
        self.default_max_tokens: int = LEGACY_DEFAULT_MAX_TOKENS
        #: `generate_response`'s max_tokens when the caller gives none
        self.response_max_tokens: int = positive_int(env, "ANTHROPIC_MAX_TOKENS") or LEGACY_RESPONSE_MAX_TOKENS
        self.client: SyncLLMCommunication | None = SyncLLMCommunication(config) if config else None
        self._provider_names: tuple[str, ...] = tuple(p.name for p in config.providers) if config else ()
        self._provider_kinds: tuple[str, ...] = tuple(p.kind for p in config.providers) if config else ()
        if self.client is not None:
            threading.Thread(target=_warm_up, args=(self.client,), name="llmcomm-warm-up", daemon=True).start()

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
        default_max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """llmcomm call options for a legacy call.

        A `max_tokens` the caller gives goes to every provider. The legacy default
        (`default_max_tokens`, else 12288) was the Anthropic service's own: it goes to
        Anthropic providers only, and every other provider keeps its configured limit
        (`OPENAI_MAX_TOKENS`), which an OpenAI model can actually serve.
        """
        options: dict[str, Any] = {"request_id": request_id}
        if max_tokens:
            options["max_tokens"] = max_tokens
        # The configured model stays per provider, so a fallback provider keeps its own.
        chosen = model or (self.default_model if self.default_model != self._configured_model else None)
        if chosen:
            options["model"] = chosen
        extra: dict[str, Any] = {}
        for key, value in (provider_kwargs or {}).items():
            if key in _PASSED_OPTIONS:
                options[key] = value
            elif key == "provider":
                if value is not None and self._forced_provider(value, request_id):
                    options["provider"] = value
            elif key == "extra" and isinstance(value, Mapping):
                extra.update(value)
            elif key != "stream":  # the call streams underneath anyway
                extra[key] = value
        if not max_tokens:
            aimed = extra.get("anthropic")
            legacy_limit = {"max_tokens": default_max_tokens or self.default_max_tokens}
            extra["anthropic"] = {**legacy_limit, **aimed} if isinstance(aimed, Mapping) else legacy_limit
        if extra:
            options["extra"] = extra
        return options

    def _forced_provider(self, name: object, request_id: str) -> bool:
        """Whether `name` is a configured provider's; any other name is ignored, with one log line."""
        if isinstance(name, str) and name in self._provider_names:
            return True
        log_line(
            logging.WARNING,
            request_id,
            "SERVICE",
            f"provider {name!r} is not configured and is ignored; configured providers are "
            f"{list(self._provider_names)}",
        )
        return False

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

    def _response_options(
        self, model: str | None, max_tokens: int | None, request_id: str, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._call_options(model, max_tokens, request_id, kwargs, self.response_max_tokens)

    def _failed(self, exc: Exception, model: str | None, started: float, request_id: str, layer: str) -> LLMResponse:
        log_line(logging.WARNING, request_id, layer, f"generate_response failed: {type(exc).__name__}: {exc}")
        prefix = ANTHROPIC_API_ERROR if is_api_error(exc) else CALL_FAILED
        return failed_response(prefix, exc, model or self.default_model, started, request_id)

    async def _agenerate_response(
        self,
        messages: Sequence[Any],
        model: str | None,
        max_tokens: int | None,
        request_id: str,
        kwargs: Mapping[str, Any],
        layer: str,
    ) -> LLMResponse:
        """`generate_response`, awaitable from any event loop (the call runs on the portal)."""
        started = time.monotonic()
        try:
            options = self._response_options(model, max_tokens, request_id, kwargs)
            response = await self._require_client().agenerate_response(messages, **options)
        except Exception as exc:
            return self._failed(exc, model, started, request_id, layer)
        log_line(logging.DEBUG, request_id, layer, f"generate_response finished on {response.provider}")
        return response

    # -- the legacy methods -----------------------------------------------------------

    def llm_call(self, prompt: str) -> str:
        """The reply to `prompt`; on failure `"调用失败: <error>"`."""
        try:
            return self._text(prompt, None, None, "SERVICE")
        except Exception as exc:
            return f"{CALL_FAILED}{exc}"

    def simple_llm(self, prompt: str, model: str | None = None, max_tokens: int | None = None) -> str:
        """The reply to `prompt`; `"未收到有效响应"` when it is empty.

        On failure `"API错误: <error>"` when the provider answered with an error or
        could not be reached, else `"调用失败: <error>"`.
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
        `timeout` as llmcomm options, `provider` when it names a configured provider
        (other names are ignored), anything else as provider request fields). On
        failure `content` is `"Anthropic API错误: <error>"` when a provider answered
        with an error or could not be reached (the text names that provider), else
        `"调用失败: <error>"`, and the usage counts are 0.
        """
        started = time.monotonic()
        request_id = request_id or new_request_id()
        log_line(logging.DEBUG, request_id, "SERVICE", "generate_response started")
        try:
            options = self._response_options(model, max_tokens, request_id, kwargs)
            response = self._require_client().generate_response(messages, **options)
        except Exception as exc:
            return self._failed(exc, model, started, request_id, "SERVICE")
        log_line(logging.DEBUG, request_id, "SERVICE", f"generate_response finished on {response.provider}")
        return response

    def quick_test(self) -> bool:
        """Whether a one-line prompt gets a reply (uses the network; never raises)."""
        try:
            return bool(self._text(QUICK_TEST_PROMPT, None, None, "SERVICE"))
        except Exception:
            return False
