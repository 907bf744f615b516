"""Metrics per provider and model, in memory that does not grow with traffic.

Counts are plain integers; durations and rates go into fixed, log-spaced
histograms (`Histogram`), from which p50/p95/p99 are read. A histogram never
keeps samples, so recording a million calls costs no more memory than recording
one. The number of (provider, model) label sets is capped too (`max_series`,
1000 by default): calls beyond it are counted under provider and model "other".

Percentile accuracy: within 5 % of the true value (`_histogram`).
"""

from __future__ import annotations

import threading
from typing import Any, Final, final

from ._histogram import QUANTILES, RATE, SECONDS, Histogram

OTHER: Final = "other"
#: the most distinct error class names kept per series; more are counted as "other"
MAX_ERROR_TYPES: Final = 64


@final
class _Series:
    """Everything counted for one (provider, model)."""

    __slots__ = (
        "attempt_errors",
        "attempts",
        "cancelled",
        "cost",
        "errors",
        "fallbacks",
        "hedges",
        "input_tokens",
        "latency",
        "output_tokens",
        "requests",
        "retries",
        "successes",
        "time_to_first_token",
        "tokens_per_second",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.successes = 0
        self.cancelled = 0
        self.attempts = 0
        self.retries = 0
        self.fallbacks = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self.errors: dict[str, int] = {}
        self.attempt_errors: dict[str, int] = {}
        self.hedges: dict[str, int] = {}
        self.latency = Histogram(SECONDS)
        self.time_to_first_token = Histogram(SECONDS)
        self.tokens_per_second = Histogram(RATE)

    def copy(self) -> _Series:
        other = _Series.__new__(_Series)
        for name in ("requests", "successes", "cancelled", "attempts", "retries", "fallbacks"):
            setattr(other, name, getattr(self, name))
        other.input_tokens, other.output_tokens = self.input_tokens, self.output_tokens
        other.cost = self.cost
        other.errors, other.attempt_errors = dict(self.errors), dict(self.attempt_errors)
        other.hedges = dict(self.hedges)
        other.latency = self.latency.copy()
        other.time_to_first_token = self.time_to_first_token.copy()
        other.tokens_per_second = self.tokens_per_second.copy()
        return other

    def merge(self, other: _Series) -> None:
        for name in ("requests", "successes", "cancelled", "attempts", "retries", "fallbacks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        for mine, theirs in (
            (self.errors, other.errors),
            (self.attempt_errors, other.attempt_errors),
            (self.hedges, other.hedges),
        ):
            for kind, n in theirs.items():
                mine[kind] = mine.get(kind, 0) + n
        self.latency.merge(other.latency)
        self.time_to_first_token.merge(other.time_to_first_token)
        self.tokens_per_second.merge(other.tokens_per_second)

    def data(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "errors": dict(sorted(self.errors.items())),
            "error_count": sum(self.errors.values()),
            "cancelled": self.cancelled,
            "attempts": self.attempts,
            "attempt_errors": dict(sorted(self.attempt_errors.items())),
            "retries": self.retries,
            "fallbacks": self.fallbacks,
            "hedges": dict(sorted(self.hedges.items())),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency_seconds": self.latency.summary(),
            "time_to_first_token_seconds": self.time_to_first_token.summary(),
            "output_tokens_per_second": self.tokens_per_second.summary(),
        }


@final
class Metrics:
    """Counters and percentiles of an `LLMCommunication`'s calls, per provider and model.

    Read them with `snapshot()` (plain data) or `prometheus()` (the Prometheus
    text exposition format). A call is counted under the provider and model that
    ended it: the one that served the reply, or the last one tried when it
    failed. Per series:

    - `requests`: calls ended there; `successes`, `errors` (by error class) and
      `cancelled` split them;
    - `attempts`: attempts started there (first tries, fallbacks, hedges, retries),
      and `attempt_errors`: the attempts there that failed, by error class (also
      those a fallback recovered from);
    - `retries`, `fallbacks`: retries of, and fallbacks away from, this provider;
    - `hedges`: the hedges started beside this provider while it was silent, by
      rule ("fixed", "p95", "warmup", "floor", "cap"; see `Attempt.reason`);
    - `input_tokens`, `output_tokens`: reported usage of successful calls;
    - `cost`: their cost at the configured prices (0 when none are configured);
    - `latency_seconds` (successful calls, from the call's start to its last
      chunk), `time_to_first_token_seconds`, `output_tokens_per_second` (output
      tokens over the time from the first token to the last): count, sum, min,
      max, p50, p95, p99, each within 5 % of the exact value.

    Memory is bounded: histograms have fixed buckets and at most `max_series`
    (provider, model) pairs are kept; the rest are counted as "other". Safe to
    read from any thread.
    """

    def __init__(self, *, max_series: int = 1000) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {max_series}")
        self.max_series = max_series
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Metrics series={len(self._series)}>"

    def _copy(self) -> list[tuple[tuple[str, str], _Series]]:
        # Only the copy happens under the lock (block copies of the buckets): the
        # event loop that records is held up for microseconds, not for the rendering.
        with self._lock:
            items = [(key, series.copy()) for key, series in self._series.items()]
        items.sort(key=lambda item: item[0])
        return items

    def _get(self, provider: str, model: str) -> _Series:
        key = (provider, model)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.max_series:
                key = (OTHER, OTHER)
                series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series()
        return series

    # -- recording (called by llmcomm on every call) ----------------------------------

    def record_attempt(self, provider: str, model: str) -> None:
        """An attempt started on `provider`."""
        with self._lock:
            self._get(provider, model).attempts += 1

    def record_retry(self, provider: str, model: str) -> None:
        """`provider` is about to be tried again."""
        with self._lock:
            self._get(provider, model).retries += 1

    def record_fallback(self, provider: str, model: str) -> None:
        """The call moved on from `provider` to the next one."""
        with self._lock:
            self._get(provider, model).fallbacks += 1

    def record_hedge(self, provider: str, model: str, reason: str) -> None:
        """A hedge was started beside `provider` by the rule `reason` ("fixed", "p95", ...)."""
        with self._lock:
            _count(self._get(provider, model).hedges, reason)

    def record_success(
        self,
        provider: str,
        model: str,
        *,
        latency: float,
        time_to_first_token: float | None,
        input_tokens: int,
        output_tokens: int,
        cost: float | None = None,
    ) -> None:
        """A call ended with a reply from `provider` (`cost`: at the configured prices, when known)."""
        with self._lock:
            series = self._get(provider, model)
            series.requests += 1
            series.successes += 1
            series.input_tokens += input_tokens
            series.output_tokens += output_tokens
            if cost is not None:
                series.cost += cost
            series.latency.record(latency)
            if time_to_first_token is not None:
                series.time_to_first_token.record(time_to_first_token)
                generating = latency - time_to_first_token
                if output_tokens > 0 and generating >= 1e-3:
                    series.tokens_per_second.record(output_tokens / generating)

    def record_error(self, provider: str, model: str, error_type: str) -> None:
        """A call failed with an error of class `error_type`, last tried on `provider`."""
        with self._lock:
            series = self._get(provider, model)
            series.requests += 1
            _count(series.errors, error_type)

    def record_attempt_error(self, provider: str, model: str, error_type: str) -> None:
        """An attempt on `provider` failed with an error of class `error_type`."""
        with self._lock:
            _count(self._get(provider, model).attempt_errors, error_type)

    def record_cancelled(self, provider: str, model: str) -> None:
        """A call was closed or cancelled before it finished."""
        with self._lock:
            series = self._get(provider, model)
            series.requests += 1
            series.cancelled += 1

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._series.clear()

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded, as plain data (dicts, lists, numbers, strings).

        `{"series": [{"provider": ..., "model": ..., "requests": ..., ...}, ...],
        "total": {...}}`, with one entry per (provider, model), sorted, and the
        same fields summed over all of them in `total`.
        """
        total = _Series()
        series = []
        for (provider, model), s in self._copy():
            series.append({"provider": provider, "model": model, **s.data()})
            total.merge(s)
        return {"series": series, "total": total.data()}

    def prometheus(self, prefix: str = "llmcomm") -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        items = self._copy()
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            full = f"{prefix}_{name}"
            out.append(f"# HELP {full} {help_text}")
            out.append(f"# TYPE {full} {kind}")
            return full

        name = family("requests_total", "counter", "LLM calls ended, by the provider and model that ended them.")
        for (provider, model), s in items:
            for outcome, n in (
                ("success", s.successes),
                ("error", sum(s.errors.values())),
                ("cancelled", s.cancelled),
            ):
                out.append(f"{name}{_labels(provider, model, outcome=outcome)} {n}")
        name = family("errors_total", "counter", "Failed LLM calls, by error class.")
        for (provider, model), s in items:
            for kind, n in sorted(s.errors.items()):
                out.append(f"{name}{_labels(provider, model, error_type=kind)} {n}")
        name = family("attempt_errors_total", "counter", "Failed attempts on a provider, by error class.")
        for (provider, model), s in items:
            for kind, n in sorted(s.attempt_errors.items()):
                out.append(f"{name}{_labels(provider, model, error_type=kind)} {n}")
        name = family("hedges_total", "counter", "Hedges started beside a silent provider, by rule.")
        for (provider, model), s in items:
            for kind, n in sorted(s.hedges.items()):
                out.append(f"{name}{_labels(provider, model, reason=kind)} {n}")
        for metric, attr, help_text in (
            ("attempts_total", "attempts", "Attempts started on a provider."),
            ("retries_total", "retries", "Retries of a provider after a retryable error."),
            ("fallbacks_total", "fallbacks", "Fallbacks from a provider to the next one."),
        ):
            name = family(metric, "counter", help_text)
            for (provider, model), s in items:
                out.append(f"{name}{_labels(provider, model)} {getattr(s, attr)}")
        name = family("tokens_total", "counter", "Tokens reported by providers for successful calls.")
        for (provider, model), s in items:
            for kind, n in (("input", s.input_tokens), ("output", s.output_tokens)):
                out.append(f"{name}{_labels(provider, model, token_type=kind)} {n}")
        name = family(
            "cost_total", "counter", "Cost of successful calls at the configured prices (per-million-token table)."
        )
        for (provider, model), s in items:
            out.append(f"{name}{_labels(provider, model)} {s.cost!r}")
        for metric, attr, help_text in (
            ("request_duration_seconds", "latency", "Duration of successful LLM calls."),
            ("time_to_first_token_seconds", "time_to_first_token", "Time from a call's start to its first token."),
            ("output_tokens_per_second", "tokens_per_second", "Output tokens per second after the first token."),
        ):
            name = family(metric, "summary", help_text)
            for (provider, model), s in items:
                histogram: Histogram = getattr(s, attr)
                for q, value in zip(QUANTILES, histogram.quantiles(), strict=True):
                    shown = "NaN" if value is None else repr(value)
                    out.append(f"{name}{_labels(provider, model, quantile=repr(q))} {shown}")
                out.append(f"{name}_sum{_labels(provider, model)} {histogram.sum!r}")
                out.append(f"{name}_count{_labels(provider, model)} {histogram.count}")
        return "\n".join(out) + "\n"


def _count(counts: dict[str, int], kind: str) -> None:
    if kind not in counts and len(counts) >= MAX_ERROR_TYPES:
        kind = OTHER
    counts[kind] = counts.get(kind, 0) + 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(provider: str, model: str, **more: str) -> str:
    parts = [f'provider="{_escape(provider)}"', f'model="{_escape(model)}"']
    parts += [f'{k}="{_escape(v)}"' for k, v in more.items()]
    return "{" + ",".join(parts) + "}"
