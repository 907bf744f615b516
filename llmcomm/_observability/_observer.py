"""`Observability`: the one `Observer` an `LLMCommunication` gives its manager.

It turns the manager's events into log lines, metrics, hook calls and (when on)
OpenTelemetry spans, and passes them on to the user's own observer. Every method
runs on the request's path, once per call, attempt or first token (never per
chunk), does a few dict and attribute operations, and never raises: a failure
in here is logged and the call goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Final, final

from .._errors import AllProvidersFailedError, LLMException
from .._events import REJECTED, Observer
from .._types import LLMResponse, Request
from ._hooks import HookEvent, HookKind, HookRunner, Hooks, Spawner
from ._logging import content_logging_enabled, logger
from ._metrics import Metrics
from ._otel import CallSpan, OTelRecorder

_INFO: Final = logging.INFO
_DEBUG: Final = logging.DEBUG
_LAYER: Final = "MANAGER"
_NONE: Final = "none"


@final
class _CallState:
    """What the observer keeps about one running call."""

    __slots__ = ("attempts", "model", "provider", "providers", "span", "started")

    def __init__(self, providers: tuple[str, ...]) -> None:
        self.started = time.monotonic()
        self.providers = providers
        self.provider = providers[0] if providers else _NONE
        self.model = _NONE
        self.attempts = 0
        self.span: CallSpan | None = None


def _last_user_text(request: Request) -> str:
    return request.messages[-1].text if request.messages else ""


@final
class Observability:
    """Logging, metrics, hooks and OpenTelemetry for the calls of one `LLMCommunication`."""

    def __init__(
        self,
        metrics: Metrics,
        hooks: Hooks,
        *,
        otel: OTelRecorder | None = None,
        observer: Observer | None = None,
        log_content: bool | None = None,
    ) -> None:
        self.metrics = metrics
        self.hooks = hooks
        self.runner = HookRunner(hooks)
        self.otel = otel
        self.observer = observer
        self.log_content = content_logging_enabled() if log_content is None else log_content
        self._calls: dict[int, _CallState] = {}
        self._kinds: dict[str, str] = {}
        self._models: dict[str, str] = {}

    def bind_providers(self, providers: Iterable[Any]) -> None:
        """Learn each provider's kind and configured model, by name."""
        for provider in providers:
            self._kinds[provider.name] = str(getattr(provider, "kind", provider.name))
            self._models[provider.name] = str(getattr(provider, "model", "") or _NONE)

    def open(self, task_group: Spawner) -> None:
        """Start running async hooks in `task_group`."""
        self.runner.open(task_group)

    async def aclose(self, grace: float = 1.0) -> None:
        """Let queued async hooks finish (up to `grace` seconds) and stop taking new ones."""
        await self.runner.aclose(grace)

    # -- helpers -------------------------------------------------------------------------

    def _model(self, request: Request, provider: str) -> str:
        return request.model or self._models.get(provider, _NONE)

    def _forward(self, method: str, *args: Any) -> None:
        observer = self.observer
        if observer is None:
            return
        fn = getattr(observer, method, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            logger.exception("observer %r failed in %s; the call goes on", observer, method)

    def _hook(self, kind: HookKind, request: Request, **fields: Any) -> None:
        """Tell the hooks registered for `kind`, if any (the event is built only then)."""
        if fns := self.hooks.functions(kind):
            self.runner.dispatch(fns, HookEvent(kind, request.request_id, request, **fields))

    @staticmethod
    def _internal_error(where: str, request: Request) -> None:
        logger.exception(
            "llmcomm observability failed in %s; the call goes on", where, extra={"request_id": request.request_id}
        )

    # -- the Observer protocol -------------------------------------------------------------

    def request_start(self, request: Request, providers: tuple[str, ...]) -> None:
        try:
            state = self._calls[id(request)] = _CallState(providers)
            if self.otel is not None:
                first = state.provider
                state.span = self.otel.start(
                    request, self._model(request, first), self._kinds.get(first, first), providers
                )
            if logger.isEnabledFor(_DEBUG):
                extra: dict[str, Any] = {
                    "event": "request_start",
                    "request_id": request.request_id,
                    "providers": list(providers),
                    "layer": _LAYER,
                }
                if self.log_content:
                    extra["prompt"] = _last_user_text(request)
                logger.debug(
                    "LLM request %s started; providers %s", request.request_id, ", ".join(providers), extra=extra
                )
            self._hook("request_start", request, providers=providers)
        except Exception:
            self._internal_error("request_start", request)
        self._forward("request_start", request, providers)

    def attempt_start(self, request: Request, provider: str, model: str, reason: str) -> None:
        try:
            model = request.model or model
            state = self._calls.get(id(request))
            attempt = 1
            if state is not None:
                state.attempts += 1
                state.provider, state.model, attempt = provider, model, state.attempts
            self.metrics.record_attempt(provider, model)
            if logger.isEnabledFor(_DEBUG):
                logger.debug(
                    "LLM request %s: attempt %d on %s (%s, %s)",
                    request.request_id,
                    attempt,
                    provider,
                    model,
                    reason,
                    extra={
                        "event": "attempt_start",
                        "request_id": request.request_id,
                        "provider": provider,
                        "model": model,
                        "attempt": attempt,
                        "reason": reason,
                        "layer": _LAYER,
                    },
                )
        except Exception:
            self._internal_error("attempt_start", request)
        self._forward("attempt_start", request, provider, model, reason)

    def first_token(self, request: Request, provider: str, model: str, seconds: float) -> None:
        try:
            model = request.model or model
            state = self._calls.get(id(request))
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.first_token(state.span, seconds)
            if logger.isEnabledFor(_DEBUG):
                logger.debug(
                    "LLM request %s: first token from %s after %.3f s",
                    request.request_id,
                    provider,
                    seconds,
                    extra={
                        "event": "first_token",
                        "request_id": request.request_id,
                        "provider": provider,
                        "model": model,
                        "time_to_first_token": seconds,
                        "layer": _LAYER,
                    },
                )
            self._hook("first_token", request, provider=provider, model=model, seconds=seconds)
        except Exception:
            self._internal_error("first_token", request)
        self._forward("first_token", request, provider, model, seconds)

    def retry(self, request: Request, provider: str, error: LLMException, delay: float) -> None:
        try:
            model = self._model(request, provider)
            state = self._calls.get(id(request))
            self.metrics.record_retry(provider, model)
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.event(
                    state.span,
                    "llmcomm.retry",
                    {"llmcomm.provider": provider, "error.type": type(error).__name__, "llmcomm.delay": delay},
                )
            if logger.isEnabledFor(_INFO):
                logger.info(
                    "LLM request %s: retrying %s in %.2f s after %s",
                    request.request_id,
                    provider,
                    delay,
                    type(error).__name__,
                    extra={
                        "event": "retry",
                        "request_id": request.request_id,
                        "provider": provider,
                        "model": model,
                        "attempt": state.attempts if state is not None else None,
                        "delay": delay,
                        "error_type": type(error).__name__,
                        "status_code": error.status_code,
                        "layer": _LAYER,
                    },
                )
            self._hook("retry", request, provider=provider, model=model, delay=delay, error=error)
        except Exception:
            self._internal_error("retry", request)
        self._forward("retry", request, provider, error, delay)

    def fallback(self, request: Request, from_provider: str, to_provider: str, reason: str) -> None:
        try:
            model = self._model(request, from_provider)
            state = self._calls.get(id(request))
            self.metrics.record_fallback(from_provider, model)
            if reason.startswith("hedge-"):  # "hedge-p95 0.41 s (...)": counted by its rule
                self.metrics.record_hedge(from_provider, model, reason.partition(" ")[0].removeprefix("hedge-"))
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.event(
                    state.span,
                    "llmcomm.fallback",
                    {"llmcomm.provider": from_provider, "llmcomm.to_provider": to_provider, "llmcomm.reason": reason},
                )
            # A request the provider rejected is a fallback every such call pays for: say so louder.
            level = logging.WARNING if reason.startswith(REJECTED) else _INFO
            if logger.isEnabledFor(level):
                logger.log(
                    level,
                    "LLM request %s: falling back from %s to %s (%s)",
                    request.request_id,
                    from_provider,
                    to_provider,
                    reason,
                    extra={
                        "event": "fallback",
                        "request_id": request.request_id,
                        "provider": from_provider,
                        "model": model,
                        "to_provider": to_provider,
                        "attempt": state.attempts if state is not None else None,
                        "reason": reason,
                        "layer": _LAYER,
                    },
                )
            self._hook("fallback", request, provider=from_provider, model=model, to_provider=to_provider, reason=reason)
        except Exception:
            self._internal_error("fallback", request)
        self._forward("fallback", request, from_provider, to_provider, reason)

    def request_end(self, request: Request, response: LLMResponse) -> None:
        try:
            state = self._calls.pop(id(request), None)
            provider = response.provider
            model = self._model(request, provider)
            usage = response.usage
            attempts = state.attempts if state is not None else len(response.attempts)
            for attempt in response.attempts:
                if attempt.outcome == "failed":
                    kind = (attempt.error or "LLMException").partition(":")[0]
                    self.metrics.record_attempt_error(attempt.provider, self._model(request, attempt.provider), kind)
            self.metrics.record_success(
                provider,
                model,
                latency=response.response_time,
                time_to_first_token=response.time_to_first_token,
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                cost=response.cost,
            )
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.end(state.span, response, model, self._kinds.get(provider, provider), attempts)
            if logger.isEnabledFor(_INFO):
                ttft = response.time_to_first_token
                extra: dict[str, Any] = {
                    "event": "request_end",
                    "outcome": "success",
                    "request_id": request.request_id,
                    "provider": provider,
                    "model": model,
                    "attempt": attempts,
                    "response_time": response.response_time,
                    "time_to_first_token": ttft,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                    "finish_reason": response.finish_reason,
                    "layer": _LAYER,
                }
                if self.log_content:
                    extra["prompt"] = _last_user_text(request)
                    extra["reply"] = response.content
                logger.info(
                    "LLM request %s finished: %s (%s) in %.3f s, first token after %s s, %d prompt + %d completion tokens",
                    request.request_id,
                    provider,
                    model,
                    response.response_time,
                    "-" if ttft is None else f"{ttft:.3f}",
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    extra=extra,
                )
            self._hook(
                "request_end",
                request,
                provider=provider,
                model=model,
                seconds=response.response_time,
                response=response,
            )
        except Exception:
            self._internal_error("request_end", request)
        self._forward("request_end", request, response)

    def request_error(self, request: Request, error: LLMException, seconds: float) -> None:
        try:
            state = self._calls.pop(id(request), None)
            provider = error.provider
            if provider is None and isinstance(error, AllProvidersFailedError) and error.errors:
                provider = error.errors[-1].provider
            if provider is None:
                provider = state.provider if state is not None else _NONE
            model = self._model(request, provider)
            error_type = type(error).__name__
            attempts = state.attempts if state is not None else 0
            self.metrics.record_error(provider, model, error_type)
            if attempts:  # no attempt ran when every provider was cooling down
                for failure in error.errors if isinstance(error, AllProvidersFailedError) else (error,):
                    name = failure.provider or provider
                    self.metrics.record_attempt_error(name, self._model(request, name), type(failure).__name__)
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.error(
                    state.span, error, seconds, model, self._kinds.get(provider, provider), error.provider, attempts
                )
            if logger.isEnabledFor(logging.WARNING):
                logger.warning(
                    "LLM request %s failed after %.3f s: %s: %s",
                    request.request_id,
                    seconds,
                    error_type,
                    error,
                    extra={
                        "event": "request_error",
                        "outcome": "error",
                        "request_id": request.request_id,
                        "provider": provider,
                        "model": model,
                        "attempt": attempts,
                        "response_time": seconds,
                        "error_type": error_type,
                        "status_code": error.status_code,
                        "layer": _LAYER,
                    },
                )
            self._hook("error", request, provider=provider, model=model, seconds=seconds, error=error)
        except Exception:
            self._internal_error("request_error", request)
        self._forward("request_error", request, error, seconds)

    def request_cancelled(self, request: Request, seconds: float) -> None:
        try:
            state = self._calls.pop(id(request), None)
            provider = state.provider if state is not None else _NONE
            model = self._model(request, provider)
            self.metrics.record_cancelled(provider, model)
            if state is not None and state.span is not None and self.otel is not None:
                self.otel.cancelled(state.span, state.attempts)
            if logger.isEnabledFor(_INFO):
                logger.info(
                    "LLM request %s cancelled after %.3f s",
                    request.request_id,
                    seconds,
                    extra={
                        "event": "request_cancelled",
                        "outcome": "cancelled",
                        "request_id": request.request_id,
                        "provider": provider,
                        "model": model,
                        "attempt": state.attempts if state is not None else 0,
                        "response_time": seconds,
                        "layer": _LAYER,
                    },
                )
        except Exception:
            self._internal_error("request_cancelled", request)
        self._forward("request_cancelled", request, seconds)
