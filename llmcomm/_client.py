"""`LLMCommunication`: the async facade, one pooled HTTP client, and the calls it serves.

A client is a resource like an `httpx2.AsyncClient`: opening it enters no task group
and no cancel scope, so it may be closed from any task of its event loop; each
call's race runs inside the call (DESIGN Part 2, "Lifecycle").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Unpack, final

import anyio

from ._call_options import CallOptions
from ._config import Configuration, ProviderConfig
from ._errors import LLMException
from ._events import Observer
from ._observability import Hooks, Metrics, Observability, OpenTelemetry, request_id_scope
from ._request import build_request, check_timeout, new_request_id
from ._routing import Background, Call, CooldownTracker, ProviderManager, RetryHandler, hedge_policy, loop_token
from ._stream import LLMStream
from ._structured_call import with_parsed
from ._types import LLMResponse, Message, Request
from .providers._base import BaseProvider

MessagesLike = Iterable[Message | Mapping[str, Any] | Any]

#: how long closing a client waits for async hooks still queued or running
HOOK_GRACE = 1.0


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

    Observability: every call gets a request id (`request_id=` or a new
    `LLM-<epoch ms>-<8 hex>`), logs to the `llmcomm` logger, and is counted in
    `metrics` (`llm.metrics.snapshot()`, `llm.metrics.prometheus()`). `hooks` (or
    `llm.hooks`) holds callables told of each call's start, first token, retries,
    fallbacks, end and failure. `otel=OpenTelemetry()` (or `otel=True`) adds
    OpenTelemetry spans and metrics. `observer` receives the raw manager events.
    """

    def __init__(
        self,
        config: Configuration | None = None,
        *,
        observer: Observer | None = None,
        hooks: Hooks | None = None,
        otel: OpenTelemetry | bool = False,
    ) -> None:
        self.config = config if config is not None else Configuration.from_env()
        self.config.require_providers()
        #: what a key of `extra` may name to aim its fields at one provider (or kind) only
        self._extra_targets = frozenset(str(getattr(p, "name", "")) for p in self.config.providers) - {""}
        #: counters and percentiles of this client's calls
        self.metrics = Metrics()
        #: the hooks told of this client's calls
        self.hooks = hooks if hooks is not None else Hooks()
        otel_recorder = None
        if otel:
            from ._observability._otel import OTelRecorder

            otel_recorder = OTelRecorder(otel if isinstance(otel, OpenTelemetry) else OpenTelemetry())
        self._observability = Observability(self.metrics, self.hooks, otel=otel_recorder, observer=observer)
        self._stack: AsyncExitStack | None = None
        self._background: Background | None = None
        self._manager: ProviderManager | None = None
        self._loop: object | None = None
        self._closed = False

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.config.providers)
        state = "open" if self._stack is not None else "closed"
        return f"<LLMCommunication {state} providers=[{names}]>"

    @property
    def manager(self) -> ProviderManager:
        """The `ProviderManager` serving this client's calls (while open)."""
        manager = self._manager
        if manager is None or manager.closed:
            raise LLMException(self._not_open())
        return manager

    def _not_open(self) -> str:
        if self._closed:
            return "this LLMCommunication is closed; open a new one (`async with LLMCommunication() as llm:`) for more calls"
        return "LLMCommunication is not open; use `async with LLMCommunication() as llm:`"

    async def __aenter__(self) -> LLMCommunication:
        if self._stack is not None or self._closed:
            raise LLMException("an LLMCommunication can be opened once; create a new one")
        async with AsyncExitStack() as stack:
            providers = await self._build_providers(stack)
            self._observability.bind_providers(providers)
            config = self.config
            manager = ProviderManager(
                providers,
                fallback_timeout=config.fallback_timeout,
                stream_idle_timeout=config.stream_idle_timeout,
                retry=config.retry or RetryHandler(config.max_retries, config.retry_base_delay, config.retry_max_delay),
                cooldown=config.cooldown
                or CooldownTracker(config.cooldown_failures, config.cooldown_seconds, config.auth_cooldown_seconds),
                observer=self._observability,
                hedge=hedge_policy(config.hedge),
                continue_on_interrupt=config.continue_on_interrupt,
                reasoning_fallback_timeout=config.reasoning_fallback_timeout,
            )
            if config.shared_state:
                _share_state(manager, config.shared_state, stack)
            self._background = manager.background = Background()
            self._observability.open(self._background)
            self._loop = loop_token()
            self._manager = manager
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End every running call and stream (each with its upstream closed), then close the
        connections. Safe from any task of the event loop that opened the client; idempotent."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                if self._manager is not None:
                    await self._manager.aclose()
                await self._observability.aclose(HOOK_GRACE)
                if self._background is not None:
                    await self._background.aclose(HOOK_GRACE)
            finally:
                await stack.aclose()

    async def _build_providers(self, stack: AsyncExitStack) -> list[BaseProvider]:
        from .providers._factory import HTTP_KINDS, build_provider

        config = self.config
        http_client = None
        if any(isinstance(p, ProviderConfig) and p.kind in HTTP_KINDS for p in config.providers):
            from .providers._http import new_http_client

            http_client = new_http_client(
                config.max_connections, config.pool_timeout, proxy=config.proxy, verify=config.verify
            )
            stack.push_async_callback(http_client.aclose)
        providers: list[BaseProvider] = []
        for entry in config.providers:
            if not isinstance(entry, ProviderConfig):
                providers.append(entry)
                continue
            provider = build_provider(entry, http_client, config.extra_headers)
            stack.push_async_callback(provider.aclose)
            providers.append(provider)
        return providers

    # -- calls -------------------------------------------------------------------------

    def generate_stream(self, prompt_or_messages: str | MessagesLike, **options: Unpack[CallOptions]) -> LLMStream:
        """Stream a reply: an `LLMStream` of `StreamChunk`s.

        Options: `model`, `max_tokens`, `temperature`, `system`, `provider` (force one
        by name), `timeout` (seconds for the whole call), `request_id`, `extra`
        (provider-specific request fields). Bad input raises `InvalidRequestError`
        here, before any network I/O.
        """
        request = self._request(prompt_or_messages, options)
        call = self._call(request, options)
        return LLMStream(lambda: call)

    def _call(self, request: Request, options: Mapping[str, Any]) -> Call:
        try:
            timeout = check_timeout(options.get("timeout")) or self.config.timeout
        except LLMException as exc:  # refused before any I/O, and traceable by its id like every refusal
            exc.request_id = exc.request_id or request.request_id
            raise
        manager = self._manager
        if manager is None or manager.closed:
            raise LLMException(self._not_open(), request_id=request.request_id)
        if loop_token() is not self._loop:
            raise LLMException(
                "this LLMCommunication was opened in another event loop (or thread); use it only from the "
                "loop that opened it: open one per event loop, or use SyncLLMCommunication from threads",
                request_id=request.request_id,
            )
        try:
            return manager.call(request, options.get("provider"), timeout)
        except LLMException as exc:  # an unknown provider=, say
            exc.request_id = exc.request_id or request.request_id
            raise

    async def generate_response(self, messages: str | MessagesLike, **options: Unpack[CallOptions]) -> LLMResponse:
        """The whole reply as an `LLMResponse` (streamed underneath, so fallback applies).

        Options and errors as for `generate_stream`. With `response_format=` (a
        pydantic model, a `TypeAdapter`-able type or a JSON Schema dict) the reply
        is validated into `parsed`; an invalid one is asked again of the same
        provider `output_retries` times (default 1), then of the next provider,
        and in the end raises `OutputValidationError`.
        """
        if options.get("response_format") is not None or "output_retries" in options:
            from ._structured_call import structured_response

            return await structured_response(self._one_response, messages, dict(options), self._provider_order)
        return await self._one_response(messages, **options)

    def _provider_order(self, messages: object, options: dict[str, Any]) -> tuple[str, ...]:
        from ._capabilities import plan, requirements

        usable, _ = plan(requirements(self._request(messages, options)), self.manager.providers)
        return tuple(p.name for p in usable)

    async def run_tools(
        self, messages: str | MessagesLike, *, tools: Iterable[Any], max_steps: int = 8, **options: Any
    ) -> LLMResponse:
        """Call the model and run the Python functions it asks for until it answers without tool calls.

        Each step is a normal call (fallback, hooks and metrics see it); sync
        functions run in a worker thread, async ones are awaited, the calls of
        one step run concurrently; a tool's exception goes back to the model as
        an error result. The reply's `messages` holds the whole exchange. Raises
        `ToolLoopError` after `max_steps` rounds of tool calls.
        """
        from ._tools import run_tools

        return await run_tools(self.generate_response, messages, tools=tools, max_steps=max_steps, **options)

    async def _one_response(self, messages: str | MessagesLike, **options: Unpack[CallOptions]) -> LLMResponse:
        request = self._request(messages, options)
        call = self._call(request, options)
        with request_id_scope(request.request_id):  # log lines of the caller's task carry it too
            try:
                while await call.next_batch() is not None:
                    pass
            finally:
                if not call.finished:
                    await call.aclose()
        response = with_parsed(request, call.response)  # a response_format is checked at the end
        assert response is not None
        return response

    def _request(self, prompt_or_messages: object, options: Mapping[str, Any]) -> Request:
        try:
            return build_request(prompt_or_messages, options, self._extra_targets)
        except LLMException as exc:  # refused before any I/O, but still traceable by its id
            given = options.get("request_id")
            exc.request_id = exc.request_id or (given if isinstance(given, str) and given.strip() else new_request_id())
            raise

    async def generate_text(self, prompt: str | MessagesLike, **options: Unpack[CallOptions]) -> str:
        """The reply's text."""
        return (await self.generate_response(prompt, **options)).content

    async def llm_call(self, prompt: str) -> str:
        """The reply's text, with the configured defaults (the legacy name)."""
        return await self.generate_text(prompt)


def _share_state(manager: ProviderManager, url: str, stack: AsyncExitStack) -> None:
    """Keep the breakers and budgets of `manager`'s providers on the Redis server at `url` while the
    client is open. The connection lives on the state's own thread (never in a task of the caller)
    and starts now, learning the fleet's view of these providers, without being awaited; it is
    closed with the client. Raises `ConfigurationError` when the `redis` extra is not installed."""
    from ._routing._state import open_state

    tracker = manager.cooldown
    state = open_state(url, tracker.policy)
    start = getattr(state, "start", None)
    if callable(start):
        start()
    now = anyio.current_time()
    for provider in manager.providers:
        state.cooling(manager.scope(provider), now)  # known from now on: fetched, then refreshed behind
    tracker.use_state(state)

    async def unshare() -> None:
        tracker.leave_state(state)
        await state.aclose()

    stack.push_async_callback(unshare)
