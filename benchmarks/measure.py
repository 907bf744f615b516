"""The measurements, the same for every subject: each takes an open `Client`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from .common import Client, model_for, rss_bytes

#: the longest a held stream waits for the others before it goes on anyway
HOLD_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each measurement is (`FULL` for the real run, `SMOKE` for CI)."""

    single_tokens: int
    max_reps: int
    #: seconds a repeated measurement may take before it stops repeating (one run at least)
    budget: float
    c100: tuple[int, int]  # streams, tokens per stream
    c1000: tuple[int, int]
    overhead_requests: int
    ttft_requests: int
    ttft_tokens: int
    #: fresh processes that each time the first call after opening a client
    first_call_runs: int
    #: calls after the first one in each of those processes; their median is the warm call
    first_call_warm: int
    import_runs: int
    failover_runs: int
    silent_runs: int
    #: fallback_timeout of the silent-primary measurement (the default, 2.0, for the real run)
    silent_fallback: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    single_tokens=20_000,
    max_reps=7,
    budget=8.0,
    c100=(100, 200),
    c1000=(1000, 50),
    overhead_requests=300,
    ttft_requests=100,
    ttft_tokens=20,
    first_call_runs=3,
    first_call_warm=50,
    import_runs=5,
    failover_runs=20,
    silent_runs=3,
    silent_fallback=2.0,
)
SMOKE = Sizes(
    single_tokens=200,
    max_reps=2,
    budget=0.5,
    c100=(10, 20),
    c1000=(20, 10),
    overhead_requests=5,
    ttft_requests=3,
    ttft_tokens=5,
    first_call_runs=1,
    first_call_warm=3,
    import_runs=1,
    failover_runs=1,
    silent_runs=1,
    silent_fallback=0.2,
)


def summary(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and the samples themselves."""
    if not samples:
        return {"median": None, "min": None, "max": None, "n": 0, "samples": []}
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "samples": samples,
    }


class CountMismatch(RuntimeError):
    """A subject saw another number of tokens than the server sent."""


def _check(expected: int, seen: int) -> None:
    if seen != expected:
        raise CountMismatch(f"expected {expected} content tokens, saw {seen}")


async def single_stream(client: Client, sizes: Sizes) -> dict[str, Any]:
    """Tokens/s of one stream of `single_tokens` tokens, repeated, and the CPU time per event.

    ``cpu_per_event`` is this process's CPU time (`time.process_time`: user and
    system, every thread) over one stream, divided by its content events (one per
    token). The server runs in another process, so this is the client's CPU alone.
    """
    tokens = sizes.single_tokens
    model = model_for(tokens)
    _check(tokens, (await client.stream(model))[0])  # warm-up: connection, caches
    samples: list[float] = []
    cpu: list[float] = []
    spent = 0.0
    while len(samples) < sizes.max_reps and (not samples or spent < sizes.budget):
        cpu_started = time.process_time()
        started = time.perf_counter()
        seen, _ = await client.stream(model)
        elapsed = time.perf_counter() - started
        cpu.append((time.process_time() - cpu_started) / tokens)
        _check(tokens, seen)
        samples.append(tokens / elapsed)
        spent += elapsed
    return {**summary(samples), "cpu_per_event": summary(cpu)}


class _Round:
    """One round of concurrent streams that meet at their first token."""

    def __init__(self, client: Client, streams: int, tokens: int, errors: dict[str, int]) -> None:
        self.client = client
        self.streams = streams
        self.tokens = tokens
        self.errors = errors
        self.arrived = 0
        self.everyone = anyio.Event()
        self.rss_at_barrier: int | None = None
        self.all_open = True

    def _arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.streams and not self.everyone.is_set():
            self.rss_at_barrier = rss_bytes()
            self.everyone.set()

    async def hold(self) -> None:
        self._arrive()
        with anyio.move_on_after(HOLD_TIMEOUT) as scope:
            await self.everyone.wait()
        if scope.cancelled_caught:
            self.all_open = False  # the subject cannot keep this many streams open at once

    async def one(self) -> None:
        try:
            seen, _ = await self.client.stream(model_for(self.tokens, gate=self.streams), self.hold)
            _check(self.tokens, seen)
        except Exception as exc:  # counted and reported, never hidden
            name = _error_name(exc)
            self.errors[name] = self.errors.get(name, 0) + 1
            if not self.everyone.is_set():
                self._arrive()

    async def run(self) -> float:
        """Seconds until every stream has ended."""
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(self.streams):
                group.start_soon(self.one)
        return time.perf_counter() - started


async def concurrent(client: Client, streams: int, tokens: int, sizes: Sizes, *, reps: int) -> dict[str, Any]:
    """Aggregate tokens/s of `streams` streams open at once.

    The server holds every reply after its first token until all `streams` are
    open (a gated model, see `benchmarks.server`), and every stream waits at its
    first token until all have one: they really are open together, each with one
    token read. The resident memory is sampled at that moment; the difference to
    before the round, per stream, is what one open stream costs.
    """
    await client.stream(model_for(tokens))  # warm-up
    samples: list[float] = []
    errors: dict[str, int] = {}
    per_stream: float | None = None
    all_open = True
    spent = 0.0
    while len(samples) < reps and (not samples or spent < sizes.budget):
        before = rss_bytes()
        round_ = _Round(client, streams, tokens, errors)
        elapsed = await round_.run()
        spent += elapsed
        samples.append(streams * tokens / elapsed)
        all_open = all_open and round_.all_open
        if per_stream is None and round_.rss_at_barrier is not None and round_.all_open:
            per_stream = (round_.rss_at_barrier - before) / streams
    return {
        **summary(samples),
        "streams": streams,
        "tokens_per_stream": tokens,
        "errors": errors,
        "all_open_together": all_open,
        "rss_per_stream": per_stream,
    }


def _error_name(exc: BaseException) -> str:
    # The root cause says more than a wrapper (an SDK's APIConnectionError over httpx2.PoolTimeout).
    names = [type(exc).__name__]
    cause = exc.__cause__ or exc.__context__
    for _ in range(8):
        if cause is None:
            break
        names.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(names)


async def overhead(client: Client, sizes: Sizes) -> dict[str, Any]:
    """Seconds per tiny request on a warm client (median of `overhead_requests`)."""
    for _ in range(min(10, sizes.overhead_requests)):
        await client.complete()
    samples: list[float] = []
    for _ in range(sizes.overhead_requests):
        started = time.perf_counter()
        await client.complete()
        samples.append(time.perf_counter() - started)
    return summary(samples)


async def first_call(open_client: Callable[[], Awaitable[Client]], sizes: Sizes) -> dict[str, Any]:
    """Seconds of the first tiny request right after the client is opened, and of the warm ones after it.

    Meant for a fresh process whose subject modules are already imported (the
    import is measured on its own): ``open`` is opening the client, ``first`` the
    first `Client.complete` after it (connecting, and whatever the subject does
    lazily on its first call), ``warm`` the median of the `first_call_warm` calls
    that follow, ``added`` first minus warm.
    """
    started = time.perf_counter()
    client = await open_client()
    opened = time.perf_counter()
    try:
        await client.complete()
        first = time.perf_counter() - opened
        warm: list[float] = []
        for _ in range(sizes.first_call_warm):
            call_started = time.perf_counter()
            await client.complete()
            warm.append(time.perf_counter() - call_started)
    finally:
        await client.aclose()
    typical = statistics.median(warm) if warm else None
    return {
        "open": opened - started,
        "first": first,
        "warm": typical,
        "added": None if typical is None else first - typical,
    }


async def time_to_first_token(client: Client, sizes: Sizes) -> dict[str, Any]:
    """Seconds from the call to the first content token of a short stream, on a warm client."""
    tokens = sizes.ttft_tokens
    model = model_for(tokens)
    for _ in range(min(5, sizes.ttft_requests)):
        await client.stream(model)
    samples: list[float] = []
    for _ in range(sizes.ttft_requests):
        started = time.perf_counter()
        seen, first = await client.stream(model)
        _check(tokens, seen)
        samples.append(first - started)
    return summary(samples)
