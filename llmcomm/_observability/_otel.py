"""OpenTelemetry: one span per call and the GenAI client metrics (the `otel` extra).

Names follow the OpenTelemetry GenAI semantic conventions (v1.41): a `CLIENT`
span `chat {gen_ai.request.model}` with `gen_ai.operation.name`,
`gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`, `gen_ai.response.time_to_first_chunk` and
`error.type`; the histograms `gen_ai.client.operation.duration`,
`gen_ai.client.token.usage` and `gen_ai.client.operation.time_to_first_chunk`.
llmcomm adds `llmcomm.request_id`, `llmcomm.provider` (the configured name),
`llmcomm.attempts`, and span events for retries and fallbacks. Prompts and
replies are recorded (`gen_ai.input.messages`, `gen_ai.output.messages`,
`gen_ai.system_instructions`) only with `capture_content=True`.

OpenTelemetry is imported only when an `LLMCommunication` is given `otel=`;
without the package llmcomm works as before. While llmcomm's spans are on, the
anthropic SDK's own spans are switched off on the clients llmcomm builds, so
no call and no token is counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

import orjson

from .._errors import ConfigurationError, LLMException
from .._types import LLMResponse, Request
from .._version import __version__
from ._event import (
    CallState,
    Event,
    Fallback,
    FirstToken,
    RequestCancelled,
    RequestEnd,
    RequestError,
    RequestStart,
    Retry,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

OPERATION: Final = "chat"
#: `gen_ai.provider.name` for each provider kind; other kinds are reported as they are named
GEN_AI_PROVIDER: Final[Mapping[str, str]] = {"anthropic": "anthropic", "openai": "openai", "claude_cli": "anthropic"}
# Bucket boundaries the conventions advise.
_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_TTFC_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


@final
@dataclass(frozen=True, slots=True)
class OpenTelemetry:
    """Turns on OpenTelemetry spans and metrics for an `LLMCommunication`.

    `LLMCommunication(config, otel=OpenTelemetry())` uses the global tracer and
    meter providers; pass `tracer_provider` / `meter_provider` to use others.
    `capture_content=True` records prompts and replies on the spans (off by
    default: they may hold personal data). Needs `pip install "llmcomm[otel]"`.
    """

    tracer_provider: Any = None
    meter_provider: Any = None
    capture_content: bool = False


def _messages(request: Request) -> str:
    return orjson.dumps(
        [{"role": m.role, "parts": [{"type": "text", "content": m.text}]} for m in request.messages]
    ).decode()


@final
class CallSpan:
    """The span of one call, and the context token that made it current in the race task."""

    __slots__ = ("context_token", "span")

    def __init__(self, span: Span, context_token: object) -> None:
        self.span = span
        self.context_token = context_token


@final
class OTelRecorder:
    """Starts and ends the spans, and records the metrics, of calls."""

    def __init__(self, settings: OpenTelemetry) -> None:
        try:
            from opentelemetry import context, metrics, trace
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError as exc:
            raise ConfigurationError(
                'OpenTelemetry is not installed; install it with `pip install "llmcomm[otel]"` or leave otel= unset'
            ) from exc
        self.settings = settings
        self.capture_content = settings.capture_content
        self._context = context
        self._trace = trace
        self._kind = SpanKind.CLIENT
        self._status = Status
        self._error_code = StatusCode.ERROR
        version = __version__
        self._tracer = trace.get_tracer("llmcomm", version, tracer_provider=settings.tracer_provider)
        meter = metrics.get_meter("llmcomm", version, meter_provider=settings.meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_TTFC_BUCKETS,
        )

    def __repr__(self) -> str:
        return "llmcomm OpenTelemetry"

    def handle(self, call: CallState, event: Event) -> None:
        """The sink: a call's span starts with it and ends with it; retries and fallbacks are its events."""
        if isinstance(event, RequestStart):
            first = call.provider
            call.span = self.start(call.request, call.model_of(first), call.kind_of(first), event.providers)
            return
        span = call.span
        if span is None:
            return
        match event:
            case FirstToken():
                self.first_token(span, event.seconds)
            case Retry():
                error_type = type(event.error).__name__
                self.event(
                    span,
                    "llmcomm.retry",
                    {"llmcomm.provider": event.provider, "error.type": error_type, "llmcomm.delay": event.delay},
                )
            case Fallback():
                self.event(
                    span,
                    "llmcomm.fallback",
                    {
                        "llmcomm.provider": event.provider,
                        "llmcomm.to_provider": event.to_provider,
                        "llmcomm.reason": event.reason,
                    },
                )
            case RequestEnd():
                call.span = None
                self.end(span, event.response, event.model, call.kind_of(event.provider), call.attempts)
            case RequestError():
                call.span = None
                error = event.error
                kind = call.kind_of(event.provider)
                self.error(span, error, event.seconds, event.model, kind, error.provider, call.attempts)
            case RequestCancelled():
                call.span = None
                self.cancelled(span, call.attempts)
            case _:  # an attempt's start is not on the span
                pass

    def start(self, request: Request, model: str, provider_kind: str, providers: Sequence[str]) -> CallSpan:
        """Start the span of a call and make it current in the calling task's context."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": GEN_AI_PROVIDER.get(provider_kind, provider_kind),
            "gen_ai.request.model": model,
            "gen_ai.request.stream": True,
            "llmcomm.request_id": request.request_id,
            "llmcomm.providers": list(providers),
        }
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _messages(request)
            if request.system:
                attributes["gen_ai.system_instructions"] = orjson.dumps(
                    [{"type": "text", "content": request.system}]
                ).decode()
        span = self._tracer.start_span(f"{OPERATION} {model}", kind=self._kind, attributes=attributes)
        token = self._context.attach(self._trace.set_span_in_context(span))
        return CallSpan(span, token)

    def _finish(self, call: CallSpan) -> None:
        try:
            self._context.detach(call.context_token)  # type: ignore[arg-type]
        finally:
            call.span.end()

    def event(self, call: CallSpan, name: str, attributes: Mapping[str, Any]) -> None:
        """Add a span event (a retry or a fallback)."""
        call.span.add_event(name, dict(attributes))

    def first_token(self, call: CallSpan, seconds: float) -> None:
        """Note when the first chunk came."""
        call.span.set_attribute("gen_ai.response.time_to_first_chunk", seconds)

    def end(self, call: CallSpan, response: LLMResponse, request_model: str, provider_kind: str, attempts: int) -> None:
        """End the span of a call that succeeded, and record its metrics."""
        span = call.span
        provider = GEN_AI_PROVIDER.get(provider_kind, provider_kind)
        usage = response.usage
        span.set_attribute("gen_ai.provider.name", provider)
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("llmcomm.provider", response.provider)
        span.set_attribute("llmcomm.attempts", attempts)
        if response.finish_reason:  # the provider's own value, as the GenAI conventions record it
            span.set_attribute("gen_ai.response.finish_reasons", [response.raw_finish_reason or response.finish_reason])
        if self.capture_content:
            span.set_attribute(
                "gen_ai.output.messages",
                orjson.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": response.content}],
                            "finish_reason": response.finish_reason or "stop",
                        }
                    ]
                ).decode(),
            )
        attributes = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": response.model,
        }
        self._duration.record(response.response_time, attributes)
        self._tokens.record(usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
        self._tokens.record(usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"})
        if response.time_to_first_token is not None:
            self._ttfc.record(response.time_to_first_token, attributes)
        self._finish(call)

    def error(
        self,
        call: CallSpan,
        error: LLMException,
        seconds: float,
        request_model: str,
        provider_kind: str,
        provider: str | None,
        attempts: int,
    ) -> None:
        """End the span of a call that failed, and record its duration."""
        span = call.span
        error_type = type(error).__name__
        gen_ai_provider = GEN_AI_PROVIDER.get(provider_kind, provider_kind)
        span.set_attribute("error.type", error_type)
        span.set_attribute("gen_ai.provider.name", gen_ai_provider)
        span.set_attribute("llmcomm.attempts", attempts)
        if provider:
            span.set_attribute("llmcomm.provider", provider)
        span.record_exception(error)
        span.set_status(self._status(self._error_code, f"{error_type}: {error}"))
        self._duration.record(
            seconds,
            {
                "gen_ai.operation.name": OPERATION,
                "gen_ai.provider.name": gen_ai_provider,
                "gen_ai.request.model": request_model,
                "error.type": error_type,
            },
        )
        self._finish(call)

    def cancelled(self, call: CallSpan, attempts: int) -> None:
        """End the span of a call closed before it finished."""
        call.span.set_attribute("llmcomm.outcome", "cancelled")
        call.span.set_attribute("llmcomm.attempts", attempts)
        self._finish(call)
