"""`SimpleLLMManager`: the legacy async manager over `SimpleLLMService`s.

Its async `generate_response` runs the call on llmcomm's shared portal and only
waits for it in the caller's event loop, so it works from any loop: asyncio or
trio, long-lived or made for one request and closed right after (the legacy
`asyncio.new_event_loop()` … `run_until_complete()` … `loop.close()` pattern).
No connection is ever bound to the caller's loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

from ._errors import InvalidRequestError
from ._legacy_service import QUICK_TEST_PROMPT, LLMMessage, SimpleLLMService, failed_response, log_line
from ._request import new_request_id
from ._types import LLMResponse

MANAGER_FAILED: Final = "LLM调用失败: "
#: the name the legacy application uses for its one service
LEGACY_PROVIDER: Final = "anthropic"
DEFAULT_MANAGER_MAX_TOKENS: Final = 4096

#: role_info keys `build_system_prompt` knows, in the order it writes them
_ROLE_FIELDS: Final = (
    ("role", "角色"),
    ("description", "描述"),
    ("personality", "性格"),
    ("background", "背景"),
    ("skills", "技能"),
    ("goals", "目标"),
    ("style", "风格"),
    ("constraints", "约束"),
)
_NAME_KEYS: Final = ("name", "role_name")
_TASK_KEYS: Final = ("prompt", "content", "task", "description")


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _format(value: object) -> str:
    if isinstance(value, list | tuple | set):
        return "、".join(str(item) for item in value)
    return str(value)


def _required(messages: Sequence[Any] | None) -> Sequence[Any]:
    if messages is None:
        raise InvalidRequestError("messages is None; pass a list of role/content messages")
    return messages


def _as_message(item: object) -> LLMMessage:
    if isinstance(item, LLMMessage):
        return item
    if isinstance(item, Mapping):
        return LLMMessage(str(item.get("role", "user")), str(item.get("content", "")), item.get("name"))
    return LLMMessage(
        str(getattr(item, "role", "user")), str(getattr(item, "content", "")), getattr(item, "name", None)
    )


@final
class SimpleLLMManager:
    """The legacy async manager: named services, a default one, and prompt builders.

    Reads `ANTHROPIC_API_KEY`, `ANTHROPIC_MODEL` and `ANTHROPIC_MAX_TOKENS` (default
    4096, sent with every call that does not name `max_tokens`). Its default service,
    named "anthropic" as in the legacy application, is backed by every configured
    provider with fallback; a configured provider's own name (e.g. "openai") serves
    a call from that provider alone. Failures never raise: the reply's `content`
    starts with `"LLM调用失败: "`.
    """

    def __init__(self) -> None:
        self.api_key: str | None = os.environ.get("ANTHROPIC_API_KEY") or None
        self.max_tokens: int = _env_int("ANTHROPIC_MAX_TOKENS", DEFAULT_MANAGER_MAX_TOKENS)
        self.default_provider: str = LEGACY_PROVIDER
        self._services: dict[str, SimpleLLMService] = {}
        self._owned: list[SimpleLLMService] = []
        self.model: str = os.environ.get("ANTHROPIC_MODEL", "").strip() or self._default_service().default_model

    def __repr__(self) -> str:
        return f"<SimpleLLMManager providers={self.list_available_providers()} default={self.default_provider!r}>"

    def _default_service(self) -> SimpleLLMService:
        service = self._services.get(LEGACY_PROVIDER)
        if service is None:  # made on first need; replaced by register_service("anthropic", ...)
            service = self._services[LEGACY_PROVIDER] = SimpleLLMService()
            self._owned.append(service)
        return service

    def close(self) -> None:
        """Close the services this manager created (not those given to `register_service`)."""
        owned, self._owned = self._owned, []
        for service in owned:
            service.close()

    def _route(self, provider: str | None) -> tuple[SimpleLLMService, dict[str, Any]]:
        name = provider or self.default_provider
        service = self._services.get(name)
        if service is not None:
            return service, {}
        default = self._default_service()
        if name in default._provider_names:
            return default, {"provider": name}  # that provider alone, from the shared connections
        raise InvalidRequestError(
            f"unknown provider {name!r}; available providers are {self.list_available_providers()}"
        )

    async def generate_response(
        self,
        provider: str | None = None,
        messages: Sequence[Any] | None = None,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """An `LLMResponse` for `messages`; on failure `content` starts with `"LLM调用失败: "`.

        `kwargs` may carry `model` and `max_tokens`; other keywords go to the provider call.
        """
        started = time.monotonic()
        request_id = request_id or new_request_id()
        model: str | None = kwargs.pop("model", None)
        max_tokens: int | None = kwargs.pop("max_tokens", None)
        log_line(logging.DEBUG, request_id, "MANAGER", f"generate_response via {provider or self.default_provider}")
        try:
            service, forced = self._route(provider)
            options = service._call_options(model, max_tokens or self.max_tokens, request_id, {**kwargs, **forced})
            response = await service._require_client()._agenerate_response(_required(messages), **options)
        except Exception as exc:
            log_line(logging.WARNING, request_id, "MANAGER", f"generate_response failed: {type(exc).__name__}: {exc}")
            return failed_response(MANAGER_FAILED, exc, model or self.model, started, request_id)
        log_line(logging.DEBUG, request_id, "MANAGER", f"generate_response finished on {response.provider}")
        return response

    def list_available_providers(self) -> list[str]:
        """The registered service names, then the configured providers' names."""
        names = list(self._services)
        names += [name for name in self._default_service()._provider_names if name not in names]
        return names

    def get_provider_info(self, provider: str | None = None) -> dict[str, Any]:
        """`provider`, `model`, `status` ("available", "not_configured" or "unknown") and `type`."""
        name = provider or self.default_provider
        service = self._services.get(name)
        default = self._default_service()
        if service is not None:
            kinds = service._provider_kinds
            return {
                "provider": name,
                "model": service.default_model,
                "status": "available" if service.configured else "not_configured",
                "type": kinds[0] if kinds else LEGACY_PROVIDER,
            }
        if name in default._provider_names:
            index = default._provider_names.index(name)
            client = default._require_client()
            return {
                "provider": name,
                "model": client.config.providers[index].model,
                "status": "available" if default.configured else "not_configured",
                "type": default._provider_kinds[index],
            }
        return {"provider": name, "model": None, "status": "unknown", "type": None}

    def set_default_provider(self, provider: str) -> None:
        """Make `provider` (one of `list_available_providers()`) the default; ValueError otherwise."""
        available = self.list_available_providers()
        if provider not in available:
            raise ValueError(f"unknown provider {provider!r}; available providers are {available}")
        self.default_provider = provider

    async def test_connection(self, provider: str | None = None) -> bool:
        """Whether `provider` answers a one-line prompt (uses the network; never raises)."""
        response = await self.generate_response(provider, [{"role": "user", "content": QUICK_TEST_PROMPT}])
        return bool(response.content) and not response.content.startswith(MANAGER_FAILED)

    def health_check(self) -> bool:
        """Whether the default service has a provider configured (no network is used)."""
        try:
            service, _ = self._route(None)
        except InvalidRequestError:
            return False
        return service.configured

    def get_service(self, provider: str | None = None) -> SimpleLLMService | None:
        """The `SimpleLLMService` serving `provider` (default: the default one), or None."""
        try:
            service, _ = self._route(provider)
        except InvalidRequestError:
            return None
        return service

    def register_service(self, provider: str, service: SimpleLLMService) -> None:
        """Serve calls for `provider` with `service` (the caller keeps ownership of it)."""
        old = self._services.get(provider)
        self._services[provider] = service
        if old is not None and old is not service and old in self._owned:
            self._owned.remove(old)
            old.close()

    def build_system_prompt(self, role_info: dict[str, Any]) -> str:
        """A system prompt describing the role in `role_info`.

        Known keys: `name` (or `role_name`), `role`, `description`, `personality`,
        `background`, `skills`, `goals`, `style`, `constraints`; other keys are listed
        after them as `key: value`.
        """
        name = next((str(role_info[k]) for k in _NAME_KEYS if role_info.get(k)), None)
        lines = [f"你是{name}。" if name else "你是一个AI助手。"]
        known = {*_NAME_KEYS}
        for key, label in _ROLE_FIELDS:
            known.add(key)
            if role_info.get(key):
                lines.append(f"{label}：{_format(role_info[key])}")
        lines += [f"{key}: {_format(value)}" for key, value in role_info.items() if key not in known and value]
        return "\n".join(lines)

    def build_context_messages(
        self,
        role_info: dict[str, Any],
        task_info: dict[str, Any],
        history_messages: list[Any] | None = None,
    ) -> list[LLMMessage]:
        """The system prompt, the history, then the task as the user's message."""
        messages = [LLMMessage("system", self.build_system_prompt(role_info))]
        messages += [_as_message(item) for item in history_messages or []]
        task = next((str(task_info[k]) for k in _TASK_KEYS if task_info.get(k)), None)
        if task is None:
            task = "\n".join(f"{key}: {_format(value)}" for key, value in task_info.items())
        messages.append(LLMMessage("user", task))
        return messages
