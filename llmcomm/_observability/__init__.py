"""Observability of llmcomm calls: request ids, logging, metrics, hooks and OpenTelemetry.

`Observability` (in `_observer`) is what an `LLMCommunication` gives its
`ProviderManager` as observer: it makes one observer per call, which turns each of
the call's reports into an `Event` (`_event`) and hands it to every sink: metrics
(`_metrics_sink`), OpenTelemetry (`_otel`), logging (`_log_sink`), hooks (`_hooks`)
and the user's own `Observer`. The rest are the parts the sinks drive and the names
llmcomm exports. OpenTelemetry itself is imported only when `otel=` is given.
"""

from ._context import current_request_id, request_id_scope, run_with_request_id
from ._hooks import HookEvent, HookKind, Hooks
from ._logging import (
    JSONFormatter,
    LegacyFormatter,
    RedactingFilter,
    RequestIdFilter,
    disable_legacy_log_file,
    enable_legacy_log_file,
    get_logger,
)
from ._metrics import Metrics
from ._observer import Observability
from ._otel import OpenTelemetry

__all__ = [
    "HookEvent",
    "HookKind",
    "Hooks",
    "JSONFormatter",
    "LegacyFormatter",
    "Metrics",
    "Observability",
    "OpenTelemetry",
    "RedactingFilter",
    "RequestIdFilter",
    "current_request_id",
    "disable_legacy_log_file",
    "enable_legacy_log_file",
    "get_logger",
    "request_id_scope",
    "run_with_request_id",
]
