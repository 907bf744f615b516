"""`SimpleLLMManager`: the legacy async manager over the process-wide `SimpleLLMService`.

Its async `generate_response` runs the call on llmcomm's shared portal and only
waits for it in the caller's event loop, so it works from any loop: asyncio or
trio, long-lived or made for one request and closed right after (the legacy
`asyncio.new_event_loop()` … `run_until_complete()` … `loop.close()` pattern).
No connection is ever bound to the caller's loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final, final

from .._errors import InvalidRequestError
from .._request import new_request_id
from .._types import LLMResponse
from ._failures import LEGACY_PROVIDER, MANAGER_FAILED, failed_response, is_failure
from ._prompts import context_messages, system_prompt
from ._service import (
    QUICK_TEST_PROMPT,
    LLMMessage,
    SimpleLLMService,
    legacy_environment,
    log,
    log_line,
    positive_int,
)

#: `max_tokens` attribute when `ANTHROPIC_MAX_TOKENS` is not set
DEFAULT_MANAGER_MAX_TOKENS: Final = 4096
#: `get_provider_info()["type"]` of the Anthropic provider
ANTHROPIC_TYPE: Final = "simplified_anthropic"


def _info(name: str, model: str, service: SimpleLLMService, index: int) -> dict[str, Any]:
    kind = service._provider_kinds[index] if service._provider_kinds else "anthropic"
    return {
        "provider": name,
        "model": model,
        "status": "available" if service.configured else "not_configured",
        "type": ANTHROPIC_TYPE if kind == "anthropic" else kind,
    }


def _required(messages: Sequence[Any] | None) -> Sequence[Any]:
    if messages is None:
        raise InvalidRequestError("messages is None; pass a list of role/content messages")
    return messages


@final
class SimpleLLMManager:
    """The legacy async manager: the default service, named ones, and prompt builders.

    Reads `ANTHROPIC_API_KEY`, `ANTHROPIC_MODEL` and `ANTHROPIC_MAX_TOKENS`.
    Attributes: `api_key`, `default_model` (`ANTHROPIC_MODEL`, else the configured
    provider's model), `max_tokens` (`ANTHROPIC_MAX_TOKENS`, default 4096) and
    `simple_llm_service`, the process-wide `SimpleLLMService` (`get_llm_service()`),
    served under the legacy name "anthropic" and backed by every configured provider
    with fallback. `generate_response` passes the service's reply through, its
    failure strings included (`"Anthropic API错误: ..."`, `"调用失败: ..."`); only
    when the manager itself fails does the text start with `"LLM调用失败: "`.
    """

    def __init__(self) -> None:
        from ._singletons import get_llm_service  # the singletons module builds managers

        env = legacy_environment()
        self.api_key: str | None = env.get("ANTHROPIC_API_KEY") or None
        self.simple_llm_service: SimpleLLMService = get_llm_service()
        self.default_model: str = env.get("ANTHROPIC_MODEL", "").strip() or self.simple_llm_service.default_model
        self._configured_model = self.default_model
        chosen = positive_int(env, "ANTHROPIC_MAX_TOKENS")
        self.max_tokens: int = chosen or DEFAULT_MANAGER_MAX_TOKENS
        self.default_provider: str = LEGACY_PROVIDER
        self._services: dict[str, SimpleLLMService] = {}

    def __repr__(self) -> str:
        return f"<SimpleLLMManager providers={self.list_available_providers()} default={self.default_provider!r}>"

    def close(self) -> None:
        """Nothing to close: the manager owns no connections (its services' owners close them)."""

    def _route(self, provider: str | None, request_id: str) -> tuple[SimpleLLMService, str | None]:
        """The service for `provider`, and the configured provider it forces (None: all, with fallback)."""
        name = provider or self.default_provider
        registered = self._services.get(name) if isinstance(name, str) else None
        if registered is not None:
            return registered, None
        service = self.simple_llm_service
        if name == LEGACY_PROVIDER:
            return service, None
        if name in service._provider_names:
            return service, name  # that provider alone, from the shared connections
        log_line(
            logging.WARNING,
            request_id,
            "MANAGER",
            f"provider {name!r} is not configured and is ignored; available providers are "
            f"{self.list_available_providers()}",
        )
        return self._route(None, request_id) if provider else (service, None)

    async def generate_response(
        self,
        provider: str | None = None,
        messages: Sequence[Any] | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """An `LLMResponse` for `messages` (`LLMMessage`s, dicts or objects with `.role`/`.content`).

        `provider` names a configured provider or a registered service; any other
        name is ignored (one warning line). `kwargs` may carry `model` and
        `max_tokens` (default `ANTHROPIC_MAX_TOKENS` when set, else 40960); other
        keywords go to the provider call. On failure `content` is the service's
        failure string, or `"LLM调用失败: <error>"` when the manager itself failed.
        """
        started = time.monotonic()
        request_id = request_id or new_request_id()
        model: str | None = kwargs.pop("model", None)
        if not model and self.default_model != self._configured_model:
            model = self.default_model  # the application changed the attribute: send it, as the original did
        # None: the service sends the legacy default (ANTHROPIC_MAX_TOKENS, else 40960) to Anthropic only.
        max_tokens: int | None = kwargs.pop("max_tokens", None) or None
        log_line(logging.DEBUG, request_id, "MANAGER", f"generate_response via {provider or self.default_provider}")
        try:
            service, forced = self._route(provider, request_id)
            if forced is not None:
                kwargs["provider"] = forced
            response = await service._agenerate_response(
                _required(messages), model, max_tokens, request_id, kwargs, "MANAGER"
            )
        except Exception as exc:
            log_line(logging.WARNING, request_id, "MANAGER", f"generate_response failed: {type(exc).__name__}: {exc}")
            return failed_response(MANAGER_FAILED, exc, model or self.default_model, started, request_id)
        if not is_failure(response.content):  # a failure was logged where it was turned into text
            log_line(logging.DEBUG, request_id, "MANAGER", f"generate_response finished on {response.provider}")
        return response

    def list_available_providers(self) -> list[str]:
        """ "anthropic" (the default service), the other configured providers, then registered services."""
        names = [LEGACY_PROVIDER]
        names += [name for name in self.simple_llm_service._provider_names if name not in names]
        names += [name for name in self._services if name not in names]
        return names

    def get_provider_info(self, provider: str | None = None) -> dict[str, Any]:
        """`provider`, `model`, `status` ("available" or "not_configured") and `type`.

        `type` is "simplified_anthropic" for the Anthropic provider, else the kind of
        provider ("openai", "claude_cli"). A name that is neither configured nor
        registered is ignored, as calls ignore it: the default's information is returned.
        """
        name = provider or self.default_provider
        default = self.simple_llm_service
        registered = self._services.get(name) if isinstance(name, str) else None
        if registered is not None:
            return _info(name, registered.default_model, registered, 0)
        if isinstance(name, str) and name != LEGACY_PROVIDER and name in default._provider_names:
            index = default._provider_names.index(name)
            return _info(name, default._require_client().config.providers[index].model, default, index)
        return _info(LEGACY_PROVIDER, self.default_model, default, 0)

    def set_default_provider(self, provider: str) -> None:
        """Make `provider` the default; a name that is not available is ignored with a warning."""
        available = self.list_available_providers()
        if provider in available:
            self.default_provider = provider
            log.info("default LLM provider: %s", provider)
        else:
            log.warning("provider %r is not available and is ignored; available providers are %s", provider, available)

    async def test_connection(self, provider: str | None = None) -> bool:
        """Whether `provider` answers a one-line prompt (uses the network; never raises)."""
        response = await self.generate_response(provider, [{"role": "user", "content": QUICK_TEST_PROMPT}])
        return bool(response.content) and not is_failure(response.content)

    def health_check(self) -> bool:
        """Whether the default service answers a one-line prompt (`quick_test()`; uses the network)."""
        return self.get_service().quick_test()

    def get_service(self, provider: str | None = None) -> SimpleLLMService:
        """The `SimpleLLMService` registered for `provider`, else `simple_llm_service` (for any name)."""
        name = provider or self.default_provider
        registered = self._services.get(name) if isinstance(name, str) else None
        return registered or self.simple_llm_service

    def register_service(self, provider: str, service: SimpleLLMService) -> None:
        """Serve calls for `provider` with `service` (the caller keeps ownership of it)."""
        self._services[provider] = service

    def build_system_prompt(self, role_info: dict[str, Any]) -> str:
        """The legacy system prompt for a role (`name`, `description`, `style`, `focus_points`)."""
        return system_prompt(role_info)

    def build_context_messages(
        self,
        role_info: dict[str, Any],
        task_info: dict[str, Any],
        history_messages: list[Any] | None = None,
    ) -> list[LLMMessage]:
        """The system prompt, the task as a user turn, then the last 5 history items.

        `task_info` keys: `task_type`, `description`, `session_topic`, `current_round`,
        `step_count`. A history item spoken by the role itself (`speaker_role` equal to
        `role_info["name"]`) is an assistant turn; any other is a user turn
        `"<speaker_role>: <content>"`.
        """
        return context_messages(role_info, task_info, history_messages)
