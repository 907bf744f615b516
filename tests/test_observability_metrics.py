"""Metrics without I/O: percentile accuracy, bounded label sets, plain snapshots, Prometheus text."""

from __future__ import annotations

import math
import random
import re
import threading

import orjson
import pytest

from llmcomm._observability import Metrics
from llmcomm._observability._histogram import GROWTH, RATE, SECONDS, Histogram
from llmcomm._observability._metrics import MAX_ERROR_TYPES


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("distribution", ["uniform", "lognormal", "bimodal"])
def test_quantiles_are_within_the_bucket_error(distribution: str) -> None:
    rng = random.Random(7)
    if distribution == "uniform":
        values = [rng.uniform(0.05, 3.0) for _ in range(20_000)]
    elif distribution == "lognormal":
        values = [rng.lognormvariate(0.0, 1.5) for _ in range(20_000)]
    else:
        values = [rng.gauss(0.2, 0.01) if rng.random() < 0.9 else rng.gauss(8.0, 0.5) for _ in range(20_000)]
    histogram = Histogram(SECONDS)
    for v in values:
        histogram.record(v)
    for q in (0.5, 0.95, 0.99):
        estimate = histogram.quantile(q)
        assert estimate is not None
        exact = exact_quantile(values, q)
        assert abs(estimate - exact) <= (GROWTH - 1) * exact + 1e-12, (q, estimate, exact)
    assert histogram.count == len(values)
    assert histogram.sum == pytest.approx(sum(values))


def test_histogram_edges() -> None:
    histogram = Histogram(SECONDS)
    assert histogram.quantile(0.5) is None
    histogram.record(42.0)
    assert histogram.quantile(0.5) == 42.0  # one value: exact, clamped to min and max
    histogram.record(1e-6)  # below the range
    histogram.record(1e6)  # above the range
    histogram.record(float("nan"))  # ignored
    assert histogram.count == 3
    assert histogram.quantile(0.0) == pytest.approx(1e-6)
    assert histogram.quantile(1.0) == 1e6
    summary = histogram.summary()
    assert summary["min"] == 1e-6
    assert summary["max"] == 1e6


def test_histograms_merge() -> None:
    a, b = Histogram(RATE), Histogram(RATE)
    for v in range(1, 101):
        (a if v % 2 else b).record(float(v))
    a.merge(b)
    assert a.count == 100
    assert a.quantile(0.5) == pytest.approx(50, rel=GROWTH - 1)


def test_label_sets_are_bounded() -> None:
    metrics = Metrics(max_series=10)
    for i in range(1000):
        metrics.record_success(
            "p", f"model-{i}", latency=1.0, time_to_first_token=0.1, input_tokens=1, output_tokens=10
        )
    snapshot = metrics.snapshot()
    assert len(snapshot["series"]) == 11
    other = [s for s in snapshot["series"] if s["provider"] == "other"]
    assert other[0]["requests"] == 990
    assert snapshot["total"]["requests"] == 1000


def test_error_classes_are_bounded() -> None:
    metrics = Metrics()
    for i in range(MAX_ERROR_TYPES + 10):
        metrics.record_error("p", "m", f"Error{i}")
    errors = metrics.snapshot()["series"][0]["errors"]
    assert len(errors) == MAX_ERROR_TYPES + 1
    assert errors["other"] == 10


def test_snapshot_is_plain_data() -> None:
    metrics = Metrics()
    metrics.record_attempt("anthropic", "claude")
    metrics.record_success(
        "anthropic", "claude", latency=2.0, time_to_first_token=0.5, input_tokens=10, output_tokens=150
    )
    metrics.record_retry("anthropic", "claude")
    metrics.record_fallback("anthropic", "claude")
    metrics.record_attempt_error("anthropic", "claude", "RateLimitError")
    metrics.record_error("openai", "gpt", "AuthenticationError")
    metrics.record_cancelled("openai", "gpt")
    snapshot = metrics.snapshot()
    assert orjson.loads(orjson.dumps(snapshot)) == snapshot
    claude, gpt = snapshot["series"]
    assert (claude["provider"], claude["model"]) == ("anthropic", "claude")
    assert claude["requests"] == claude["successes"] == 1
    assert claude["retries"] == claude["fallbacks"] == claude["attempts"] == 1
    assert claude["attempt_errors"] == {"RateLimitError": 1}
    assert claude["output_tokens_per_second"]["p50"] == pytest.approx(100.0, rel=GROWTH - 1)
    assert claude["time_to_first_token_seconds"]["p99"] == 0.5
    assert gpt["requests"] == 2
    assert gpt["errors"] == {"AuthenticationError": 1}
    assert gpt["cancelled"] == 1
    assert snapshot["total"]["requests"] == 3
    metrics.reset()
    assert metrics.snapshot()["series"] == []


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (NaN|[-+0-9.e]+)$')


def test_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.record_success(
        'we"ird\\name', "m\nx", latency=1.5, time_to_first_token=0.2, input_tokens=3, output_tokens=30
    )
    metrics.record_error("p", "m", "RateLimitError")
    text = metrics.prometheus()
    assert text.endswith("\n")
    families: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            families[name] = kind
        elif not line.startswith("# HELP "):
            assert _SAMPLE.match(line), line
    assert families["llmcomm_requests_total"] == "counter"
    assert families["llmcomm_request_duration_seconds"] == "summary"
    assert families["llmcomm_time_to_first_token_seconds"] == "summary"
    assert families["llmcomm_output_tokens_per_second"] == "summary"
    assert 'provider="we\\"ird\\\\name",model="m\\nx"' in text
    assert 'llmcomm_errors_total{provider="p",model="m",error_type="RateLimitError"} 1' in text
    assert 'llmcomm_request_duration_seconds{provider="p",model="m",quantile="0.5"} NaN' in text
    assert 'llmcomm_tokens_total{provider="p",model="m",token_type="output"} 0' in text


def test_reading_while_another_thread_records() -> None:
    metrics = Metrics()
    recorded = 20_000

    def record() -> None:
        for i in range(recorded):
            metrics.record_success(
                "p", f"m{i % 50}", latency=0.5, time_to_first_token=0.1, input_tokens=1, output_tokens=5
            )

    writer = threading.Thread(target=record)
    writer.start()
    try:
        for _ in range(20):
            metrics.snapshot()
            metrics.prometheus()
    finally:
        writer.join(timeout=30)
    assert not writer.is_alive()
    assert metrics.snapshot()["total"]["requests"] == recorded


def test_max_series_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_series"):
        Metrics(max_series=0)
