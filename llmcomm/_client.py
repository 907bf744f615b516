"""`LLMCommunication`: the async facade, one pooled HTTP client and one race task group."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, final

import anyio
from anyio.abc import TaskGroup

from ._config import Configuration, ProviderConfig
from ._errors import LLMException
from ._events import Observer
from ._manager import Call, ProviderManager
from ._request import build_request, check_timeout
from ._retry import CooldownTracker, RetryHandler
from ._stream import LLMStream
from ._types import LLMResponse, Message
from .providers._base import BaseProvider

_SDK_MODULES = {"anthropic": "anthropic", "openai": "openai"}

MessagesLike = Iterable[Message | Mapping[str, Any] | Any]


@final
class LLMCommunication:
    """Talk to the configured LLM providers, with fallback, through one interface.

    Use it as an async context manager; it owns its connections::

        async with LLMCommunication() as llm:
            print(await llm.generate_text("Say hi"))
            async with llm.generate_stream("Tell a story") as stream:
                async for chunk in stream:
                    print(chunk.text, end="")

    `config=None` reads the environment (`Configuration.from_env()`).
    """

    def __init__(self, config: Configuration | None = None, *, observer: Observer | None = None) -> None:
        self.config = config if config is not None else Configuration.from_env()
        self.config.require_providers()
        self._observer = observer
        self._stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self._manager: ProviderManager | None = None

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.config.providers)
        state = "open" if self._task_group is not None else "closed"
        return f"<LLMCommunication {state} providers=[{names}]>"

    @property
    def manager(self) -> ProviderManager:
        """The `ProviderManager` serving this client's calls (while open)."""
        if self._manager is None:
            raise LLMException("LLMCommunication is not open; use `async with LLMCommunication() as llm:`")
        return self._manager

    async def __aenter__(self) -> LLMCommunication:
        if self._stack is not None:
            raise LLMException("this LLMCommunication is already open; enter it once")
        async with AsyncExitStack() as stack:
            providers = await self._build_providers(stack)
            config = self.config
            self._manager = ProviderManager(
                providers,
                fallback_timeout=config.fallback_timeout,
                stream_idle_timeout=config.stream_idle_timeout,
                retry=RetryHandler(config.max_retries, config.retry_base_delay, config.retry_max_delay),
                cooldown=CooldownTracker(
                    config.cooldown_failures, config.cooldown_seconds, config.auth_cooldown_seconds
                ),
                observer=self._observer,
            )
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
            self._task_group = task_group
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every running call and close the connections (idempotent)."""
        stack, self._stack = self._stack, None
        task_group, self._task_group = self._task_group, None
        if stack is None:
            return
        try:
            if task_group is not None:
                # The race tasks close their upstream connections as they are cancelled.
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await stack.aclose()

    async def _build_providers(self, stack: AsyncExitStack) -> list[BaseProvider]:
        kinds = {p.kind for p in self.config.providers if isinstance(p, ProviderConfig)}
        http_client = None
        if kinds & {"anthropic", "openai"}:
            from .providers._http import new_http_client

            http_client = new_http_client()
            stack.push_async_callback(http_client.aclose)
            for kind in sorted(kinds & _SDK_MODULES.keys()):
                # A cold SDK import takes a second or two: do it off the event loop.
                await anyio.to_thread.run_sync(importlib.import_module, _SDK_MODULES[kind])
        providers: list[BaseProvider] = []
        for entry in self.config.providers:
            if not isinstance(entry, ProviderConfig):
                providers.append(entry)
                continue
            provider: BaseProvider
            if entry.kind == "anthropic":
                from .providers._anthropic import AnthropicProvider

                provider = AnthropicProvider(entry, http_client)
            elif entry.kind == "openai":
                from .providers._openai import OpenAIProvider

                provider = OpenAIProvider(entry, http_client)
            else:
                from .providers._claude_cli import ClaudeCLIProvider

                provider = ClaudeCLIProvider(entry)
            stack.push_async_callback(provider.aclose)
            providers.append(provider)
        return providers

    # -- calls -------------------------------------------------------------------------

    def generate_stream(self, prompt_or_messages: str | MessagesLike, **options: Any) -> LLMStream:
        """Stream a reply: an `LLMStream` of `StreamChunk`s.

        Options: `model`, `max_tokens`, `temperature`, `system`, `provider` (force one
        by name), `timeout` (seconds for the whole call), `request_id`, `extra`
        (provider-specific request fields). Bad input raises `InvalidRequestError`
        here, before any network I/O.
        """
        request = build_request(prompt_or_messages, options)
        timeout = check_timeout(options.get("timeout")) or self.config.timeout
        manager = self.manager
        providers = manager.select(options.get("provider"))
        task_group = self._task_group
        assert task_group is not None

        def start() -> Call:
            if self._task_group is None:
                raise LLMException("the LLMCommunication was closed; open a new one to make calls")
            call = Call(request, providers, timeout)
            manager.start(task_group, call)
            return call

        return LLMStream(start)

    async def generate_response(self, messages: str | MessagesLike, **options: Any) -> LLMResponse:
        """The whole reply as an `LLMResponse` (streamed underneath, so fallback applies)."""
        async with self.generate_stream(messages, **options) as stream:
            async for _ in stream:
                pass
        assert stream.response is not None
        return stream.response

    async def generate_text(self, prompt: str | MessagesLike, **options: Any) -> str:
        """The reply's text."""
        return (await self.generate_response(prompt, **options)).content

    async def llm_call(self, prompt: str) -> str:
        """The reply's text, with the configured defaults (the legacy name)."""
        return await self.generate_text(prompt)
