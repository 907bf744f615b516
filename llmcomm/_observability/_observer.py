"""`Observability`: where the events of an `LLMCommunication`'s calls go.

    routing ──`Observer` calls──► the call's own observer (`for_call`: one per call,
                                  holding the call's `CallState`)
                                        │ one `Event` per report
                                        ▼
                     fan-out: every sink, in this order, each on its own
                       MetricsSink   (_metrics_sink)  counts and percentiles: `llm.metrics`
                       OTelRecorder  (_otel)          spans and GenAI metrics: `otel=`
                       LogSink       (_log_sink)      the `llmcomm` logger
                       HookRunner    (_hooks)         `hooks=` / `llm.hooks`
                       ObserverSink  (here)           `observer=`: the events as `Observer` calls

The three extension points of `LLMCommunication` are sinks of one kind: `otel=`
adds the OpenTelemetry sink, `hooks=` fills the hook sink's registry (user
callables, told of six of the events as `HookEvent`s, async ones run in the
background), and `observer=` adds a sink that hands every event, as it came,
to the user's own `Observer`. Logging and metrics are two more sinks, always on.
A new sink is a class with `handle(call, event)` and one entry in `sinks`.

Each sink runs on the request's path, once per call, attempt or first token
(never per chunk). A sink that raises is logged; the other sinks and the call go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, final

from .._errors import AllProvidersFailedError, LLMException
from .._events import Observer, PerCallObserver
from .._types import LLMResponse, Request
from ._event import (
    NONE,
    AttemptStart,
    CallState,
    Catalog,
    Event,
    Fallback,
    FirstToken,
    RequestCancelled,
    RequestEnd,
    RequestError,
    RequestStart,
    Retry,
    Sink,
)
from ._hooks import HookRunner, Hooks, Spawner
from ._log_sink import LogSink
from ._logging import content_logging_enabled, logger
from ._metrics import Metrics
from ._metrics_sink import MetricsSink
from ._otel import OTelRecorder


def _arguments(event: Event) -> tuple[Any, ...]:
    """The arguments after `request` of the `Observer` method named `event.name`."""
    match event:
        case RequestStart():
            return (event.providers,)
        case AttemptStart():
            return (event.provider, event.model, event.reason)
        case FirstToken():
            return (event.provider, event.model, event.seconds)
        case Retry():
            return (event.provider, event.error, event.delay)
        case Fallback():
            return (event.provider, event.to_provider, event.reason)
        case RequestEnd():
            return (event.response,)
        case RequestError():
            return (event.error, event.seconds)
        case RequestCancelled():
            return (event.seconds,)


@final
class ObserverSink:
    """Hands every event to the user's own `Observer` (`observer=`), as the routing layer reported it."""

    __slots__ = ("observer",)

    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def __repr__(self) -> str:
        return f"observer {self.observer!r}"

    def handle(self, call: CallState, event: Event) -> None:
        # An observer written before an event existed has no method for it.
        fn = getattr(self.observer, event.name, None)
        if fn is not None:
            fn(call.request, *_arguments(event))


@final
class Observability(PerCallObserver):
    """Logging, metrics, hooks, OpenTelemetry and the user's observer for the calls of one `LLMCommunication`."""

    def __init__(
        self,
        metrics: Metrics,
        hooks: Hooks,
        *,
        otel: OTelRecorder | None = None,
        observer: Observer | None = None,
        log_content: bool | None = None,
    ) -> None:
        self.runner = HookRunner(hooks)
        self.catalog = Catalog()
        log = LogSink(content_logging_enabled() if log_content is None else log_content)
        user = None if observer is None else ObserverSink(observer)
        # Spans open before, and end before, the log line and the hooks of the same event.
        #: every sink, in the order each event reaches them
        self.sinks: tuple[Sink, ...] = tuple(
            s for s in (MetricsSink(metrics), otel, log, self.runner, user) if s is not None
        )

    def bind_providers(self, providers: Iterable[Any]) -> None:
        """Learn each provider's kind and configured model, by name."""
        self.catalog.learn(providers)

    def open(self, task_group: Spawner) -> None:
        """Start running async hooks in `task_group`."""
        self.runner.open(task_group)

    async def aclose(self, grace: float = 1.0) -> None:
        """Let queued async hooks finish (up to `grace` seconds) and stop taking new ones."""
        await self.runner.aclose(grace)

    def for_call(self, request: Request) -> Observer:
        """The observer of one call: it holds the call's state and tells every sink."""
        return _CallObserver(CallState(request, self.catalog), self.sinks)


@final
class _CallObserver:
    """The `Observer` of one call: turns each report into one `Event` and hands it to every sink.

    The `request` each method is given is the call's own, which its state already holds.
    """

    __slots__ = ("sinks", "state")

    def __init__(self, state: CallState, sinks: tuple[Sink, ...]) -> None:
        self.state = state
        self.sinks = sinks

    def _emit(self, event: Event) -> None:
        state = self.state
        for sink in self.sinks:
            try:
                sink.handle(state, event)
            except Exception:
                logger.exception(
                    "%s failed in %s; the call goes on",
                    sink,
                    event.name,
                    extra={"request_id": state.request.request_id},
                )

    def request_start(self, request: Request, providers: tuple[str, ...]) -> None:
        self.state.provider = providers[0] if providers else NONE
        self._emit(RequestStart(providers))

    def attempt_start(self, request: Request, provider: str, model: str, reason: str) -> None:
        state = self.state
        state.attempts += 1
        state.provider = provider
        self._emit(AttemptStart(provider, request.model or model, reason))

    def first_token(self, request: Request, provider: str, model: str, seconds: float) -> None:
        self._emit(FirstToken(provider, request.model or model, seconds))

    def retry(self, request: Request, provider: str, error: LLMException, delay: float) -> None:
        self._emit(Retry(provider, self.state.model_of(provider), error, delay))

    def fallback(self, request: Request, from_provider: str, to_provider: str, reason: str) -> None:
        self._emit(Fallback(from_provider, self.state.model_of(from_provider), to_provider, reason))

    def request_end(self, request: Request, response: LLMResponse) -> None:
        provider = response.provider
        self._emit(RequestEnd(provider, self.state.model_of(provider), response))

    def request_error(self, request: Request, error: LLMException, seconds: float) -> None:
        provider = error.provider
        if provider is None and isinstance(error, AllProvidersFailedError) and error.errors:
            provider = error.errors[-1].provider
        if provider is None:
            provider = self.state.provider
        self._emit(RequestError(provider, self.state.model_of(provider), error, seconds))

    def request_cancelled(self, request: Request, seconds: float) -> None:
        provider = self.state.provider
        self._emit(RequestCancelled(provider, self.state.model_of(provider), seconds))
