"""Memory of llmcomm's metrics over 1,000,000 recorded requests: it must stay flat.

Drives the same observer an `LLMCommunication` gives its provider manager
(logging, metrics and hooks; no network) through a million calls: successes with
retries and fallbacks, errors, cancellations, over 20 steady (provider, model)
pairs plus a stream of never-seen model names that overflows the label-set cap.
Prints the traced Python heap and the process RSS at checkpoints; the growth
after warm-up should be about zero.

    python benchmarks/metrics_memory.py [--requests N] [--no-tracemalloc]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time
import tracemalloc

from llmcomm._errors import AuthenticationError
from llmcomm._observability import Hooks, Metrics, Observability
from llmcomm._observability._event import CallState
from llmcomm._types import Attempt, LLMResponse, Message, Request, UsageInfo

PROVIDERS = ("anthropic", "openai", "azure", "local", "claude_cli")
MODELS = ("small", "medium", "large", "xl")
MESSAGES = (Message("user", "hello"),)


def rss_mib() -> float:
    """The current resident set size, in MiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_call(observability: Observability, i: int) -> None:
    provider = PROVIDERS[i % len(PROVIDERS)]
    # Every 11th call asks for a model never seen before: the label-set cap (1000) is
    # reached within the warm-up, and every later new name is counted as "other".
    model = f"model-{i}" if i % 11 == 0 else MODELS[(i // 5) % len(MODELS)]
    request = Request(messages=MESSAGES, model=model, request_id=f"LLM-{i}")
    observer = observability.for_call(request)  # what is kept about the call lives in it
    observer.request_start(request, (provider, "fallback"))
    observer.attempt_start(request, provider, model, "first")
    if i % 50 == 0:
        error = AuthenticationError("refused", provider=provider, status_code=401, request_id=request.request_id)
        observer.request_error(request, error, 0.05)
        return
    if i % 100 == 1:
        observer.request_cancelled(request, 0.2)
        return
    if i % 20 == 2:
        observer.retry(request, provider, AuthenticationError("x", provider=provider), 0.01)
        observer.fallback(request, provider, "fallback", "ProviderUnavailableError")
    ttft = 0.05 + (i % 1000) / 1000
    observer.first_token(request, provider, model, ttft)
    response = LLMResponse(
        content="reply",
        model=model,
        usage=UsageInfo.of(10, 100 + i % 400),
        response_time=ttft + 1.0 + (i % 300) / 100,
        provider=provider,
        request_id=request.request_id,
        finish_reason="stop",
        time_to_first_token=ttft,
        attempts=(Attempt(provider, "won", None, 1.0, ttft),),
    )
    observer.request_end(request, response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--no-tracemalloc", action="store_true", help="RSS only (runs about 3x faster)")
    args = parser.parse_args()

    metrics = Metrics()
    observer = Observability(metrics, Hooks(), log_content=False)
    observer.bind_providers([])
    total = args.requests
    warmup = min(20_000, total)
    checkpoints = sorted({warmup, total // 10, total // 4, total // 2, 3 * total // 4, total} - {0})
    if not args.no_tracemalloc:
        tracemalloc.start()
    print(f"{'requests':>10} {'traced MiB':>11} {'RSS MiB':>9} {'series':>7} {'s':>7}")
    start = time.perf_counter()
    baseline: tuple[float, float] | None = None
    done = 0
    for checkpoint in checkpoints:
        while done < checkpoint:
            one_call(observer, done)
            done += 1
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else float("nan")
        rss = rss_mib()
        if baseline is None:
            baseline = (traced, rss)
        series = len(metrics.snapshot()["series"])
        print(f"{done:>10,} {traced:>11.2f} {rss:>9.1f} {series:>7} {time.perf_counter() - start:>7.1f}")
    assert baseline is not None
    traced_growth = tracemalloc.get_traced_memory()[0] / 2**20 - baseline[0] if tracemalloc.is_tracing() else 0.0
    rss_growth = rss_mib() - baseline[1]
    live = sum(isinstance(o, CallState) for o in gc.get_objects())
    print(f"growth after {warmup:,} warm-up requests: traced {traced_growth:+.3f} MiB, RSS {rss_growth:+.1f} MiB")
    print(f"call states still alive: {live}; requests counted: {metrics.snapshot()['total']['requests']:,}")


if __name__ == "__main__":
    main()
