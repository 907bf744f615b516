"""The metrics of a call's events, counted in a `Metrics` (`llm.metrics`)."""

from __future__ import annotations

from typing import final

from .._errors import AllProvidersFailedError
from ._event import AttemptStart, CallState, Event, Fallback, RequestCancelled, RequestEnd, RequestError, Retry
from ._metrics import Metrics


@final
class MetricsSink:
    """Counts attempts, retries, fallbacks and hedges, and each call's outcome with its
    latency, time to first token, tokens, cost and failed attempts."""

    __slots__ = ("metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __repr__(self) -> str:
        return "llmcomm metrics"

    def handle(self, call: CallState, event: Event) -> None:
        metrics = self.metrics
        match event:
            case AttemptStart():
                metrics.record_attempt(event.provider, event.model)
            case Retry():
                metrics.record_retry(event.provider, event.model)
            case Fallback():
                metrics.record_fallback(event.provider, event.model)
                if event.reason.startswith("hedge-"):  # "hedge-p95 0.41 s (...)": counted by its rule
                    rule = event.reason.partition(" ")[0].removeprefix("hedge-")
                    metrics.record_hedge(event.provider, event.model, rule)
            case RequestEnd():
                response = event.response
                for attempt in response.attempts:
                    if attempt.outcome == "failed":
                        kind = (attempt.error or "LLMException").partition(":")[0]
                        metrics.record_attempt_error(attempt.provider, call.model_of(attempt.provider), kind)
                metrics.record_success(
                    event.provider,
                    event.model,
                    latency=response.response_time,
                    time_to_first_token=response.time_to_first_token,
                    input_tokens=response.usage.prompt_tokens,
                    output_tokens=response.usage.completion_tokens,
                    cost=response.cost,
                )
            case RequestError():
                error = event.error
                metrics.record_error(event.provider, event.model, type(error).__name__)
                if call.attempts:  # no attempt ran when every provider was cooling down
                    for failure in error.errors if isinstance(error, AllProvidersFailedError) else (error,):
                        name = failure.provider or event.provider
                        metrics.record_attempt_error(name, call.model_of(name), type(failure).__name__)
            case RequestCancelled():
                metrics.record_cancelled(event.provider, event.model)
            case _:  # a call's start and its first token are counted at its end
                pass
