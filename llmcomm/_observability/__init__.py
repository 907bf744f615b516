"""Observability of llmcomm calls: request ids, logging, metrics, hooks and OpenTelemetry.

`Observability` (in `_observer`) is the `Observer` an `LLMCommunication` gives its
`ProviderManager`; the rest are the parts it drives and the names llmcomm exports.
OpenTelemetry itself is imported only when `otel=` is given.
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
