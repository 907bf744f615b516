"""Hedging simulation: ``python -m benchmarks.hedging [--smoke] [--calls N] [--json PATH] [--no-plot]``.

A primary whose time to first token (TTFT) follows a lognormal (median 0.3 s,
sigma 0.3) with a 5 % slow tail (lognormal, median 4 s, sigma 0.3), and a backup
(lognormal, median 0.35 s, sigma 0.3), served through the real race of `LLMCommunication` under the fixed rule
(hedge at 2 s) and the adaptive one (`AdaptiveHedge()` defaults), calls arriving
at a fixed rate. Then an outage of the primary: a minute of normal traffic, a
minute where every TTFT is 6 s, a minute of recovery; the extra-request share
over the last minute must stay within the hedge budget.

The providers are scripted in-process providers (no sockets) and the run is in
virtual time: trio's `MockClock` jumps to the next deadline, and everything in
the race reads that clock. So 2,000 calls at 10 calls/s (200 s of simulated time)
take a few seconds of CPU, and the numbers are those of the policy, not of this
machine's load. Same seed, same draws for both modes: call i gets the same
primary and backup TTFT under each.

Writes the table to stdout, the plot (TTFT CDF; extra-request share over the
outage) to ``benchmarks/results/hedging.png`` and, with ``--json``, every number.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import trio
import trio.testing

from llmcomm import AdaptiveHedge, Configuration, LLMCommunication, Request, StreamChunk, UsageInfo

RESULTS = Path(__file__).parent / "results"
RATE = 10.0  # calls per second
FIXED_TIMEOUT = 2.0
OUTAGE_TTFT = 6.0
BUDGET_SHARE = 0.10
BUDGET_WINDOW = 60.0


@dataclass(frozen=True)
class Draws:
    """Per call index: the primary's and the backup's TTFT (s)."""

    primary: list[float]
    backup: list[float]

    @classmethod
    def make(cls, n: int, seed: int) -> Draws:
        rng = random.Random(seed)
        primary = [
            rng.lognormvariate(math.log(4.0), 0.3) if rng.random() < 0.05 else rng.lognormvariate(math.log(0.3), 0.3)
            for _ in range(n)
        ]
        backup = [rng.lognormvariate(math.log(0.35), 0.3) for _ in range(n)]
        return cls(primary, backup)


class SimProvider:
    """A provider that answers call i after `ttft(i, now)` seconds of the loop's clock."""

    kind = "custom"

    def __init__(self, name: str, ttft: Callable[[int, float], float]) -> None:
        self.name = name
        self.model = "sim"
        self.ttft = ttft
        #: when each attempt started (the loop's clock)
        self.starts: list[float] = []

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        index = int(request.messages[-1].text)
        self.starts.append(anyio.current_time())
        await anyio.sleep(self.ttft(index, anyio.current_time()))
        yield StreamChunk("token ", self.name, self.model)
        yield StreamChunk("", self.name, self.model, 0, "stop", UsageInfo.of(1, 1))

    async def aclose(self) -> None:
        pass


@dataclass
class Run:
    """What one mode did: per call, its start (s, from the run's start), TTFT and extra attempts;
    and when each extra attempt (a backup beside the primary) started."""

    starts: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    extras: list[int] = field(default_factory=list)
    extra_starts: list[float] = field(default_factory=list)


async def simulate(
    mode: str, draws: Draws, calls: int, outage: tuple[float, float] | None = None, offset: int = 0
) -> Run:
    """`calls` calls at `RATE` per second under `mode`; during `outage` (start, end) the primary takes 6 s."""

    def primary_ttft(i: int, now: float) -> float:
        if outage is not None and outage[0] <= now - t0 < outage[1]:
            return OUTAGE_TTFT
        return draws.primary[i]

    hedge: Any = "fixed" if mode == "fixed" else AdaptiveHedge(budget_share=BUDGET_SHARE, budget_window=BUDGET_WINDOW)
    providers = [SimProvider("primary", primary_ttft), SimProvider("backup", lambda i, now: draws.backup[i])]
    config = Configuration(providers=providers, fallback_timeout=FIXED_TIMEOUT, max_retries=0, hedge=hedge)
    run = Run()
    t0 = anyio.current_time()

    async def one(i: int, started: float) -> None:
        response = await llm.generate_response(str(offset + i))
        assert response.time_to_first_token is not None
        run.starts.append(started)
        run.ttfts.append(response.time_to_first_token)
        run.extras.append(len(response.attempts) - 1)

    async with LLMCommunication(config) as llm, anyio.create_task_group() as tg:
        for i in range(calls):
            await anyio.sleep_until(t0 + i / RATE)
            tg.start_soon(one, i, i / RATE)
    run.extra_starts = [t - t0 for t in providers[1].starts]
    return run


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(run: Run) -> dict[str, float]:
    return {
        "p50": percentile(run.ttfts, 0.50),
        "p95": percentile(run.ttfts, 0.95),
        "p99": percentile(run.ttfts, 0.99),
        "extra_share": sum(run.extras) / len(run.extras),
    }


def rolling_share(run: Run, window: float, step: float = 1.0) -> tuple[list[float], list[float]]:
    """Extra attempts started over calls started in the last `window` seconds (the budget's own
    measure), every `step` seconds."""
    end = max(run.starts)
    times, shares = [], []
    t = step
    while t <= end + step / 2:
        calls = sum(1 for start in run.starts if t - window < start <= t)
        extras = sum(1 for start in run.extra_starts if t - window < start <= t)
        times.append(t)
        shares.append(extras / calls if calls else 0.0)
        t += step
    return times, shares


def plot(normal: dict[str, Run], outage: dict[str, Run], window: tuple[float, float], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, share) = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, run in normal.items():
        xs = sorted(run.ttfts)
        ys = [(k + 1) / len(xs) for k in range(len(xs))]
        cdf.plot(xs, ys, label=f"{mode} (p99 {percentile(xs, 0.99):.2f} s)")
    cdf.set_xscale("log")
    cdf.set_xlabel("end-to-end time to first token (s, log scale)")
    cdf.set_ylabel("share of calls")
    cdf.set_title(f"TTFT CDF, {len(next(iter(normal.values())).ttfts)} calls at {RATE:g}/s")
    cdf.set_ylim(0.8, 1.001)
    cdf.set_xlim(0.2, 10)
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend()
    for mode, run in outage.items():
        times, shares = rolling_share(run, BUDGET_WINDOW)
        share.plot(times, [100 * s for s in shares], label=mode)
    share.axvspan(*window, color="red", alpha=0.1, label="primary outage (TTFT 6 s)")
    share.axhline(100 * BUDGET_SHARE, color="black", linestyle="--", linewidth=1, label="hedge budget (10 %)")
    share.set_xlabel("time (s)")
    share.set_ylabel(f"extra requests, % of calls in the last {BUDGET_WINDOW:g} s")
    share.set_title("Extra-request share through an outage")
    share.grid(True, alpha=0.3)
    share.legend()
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)


async def main_async(calls: int, outage_calls: int, seed: int) -> dict[str, Any]:
    draws = Draws.make(calls + outage_calls, seed)
    normal = {mode: await simulate(mode, draws, calls) for mode in ("fixed", "adaptive")}
    span = outage_calls / RATE
    window = (span / 3, 2 * span / 3)
    outage = {mode: await simulate(mode, draws, outage_calls, window, offset=calls) for mode in ("fixed", "adaptive")}
    return {"normal": normal, "outage": outage, "outage_window": window}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="200 calls and a short outage: seconds, for CI")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--png", type=Path, default=RESULTS / "hedging.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    calls = 200 if args.smoke else args.calls
    outage_calls = 300 if args.smoke else 1800
    result = trio.run(main_async, calls, outage_calls, args.seed, clock=trio.testing.MockClock(autojump_threshold=0))
    normal: dict[str, Run] = result["normal"]
    outage: dict[str, Run] = result["outage"]
    stats = {mode: summary(run) for mode, run in normal.items()}
    full = min(BUDGET_WINDOW, outage_calls / RATE / 3)  # once the window is full (scaled down in --smoke)
    peak = {
        mode: max(s for t, s in zip(*rolling_share(run, BUDGET_WINDOW), strict=True) if t >= full)
        for mode, run in outage.items()
    }
    during = {mode: summary(run)["extra_share"] for mode, run in outage.items()}
    outage_p99 = {mode: summary(run)["p99"] for mode, run in outage.items()}
    print(f"### Hedging ({calls} calls at {RATE:g}/s, virtual time, seed {args.seed})\n")
    print(
        "| mode | p50 TTFT | p95 TTFT | p99 TTFT | extra requests "
        "| outage run: extra | outage run: peak 60 s share | outage run: p99 TTFT |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode, s in stats.items():
        print(
            f"| {mode} | {s['p50']:.2f} s | {s['p95']:.2f} s | {s['p99']:.2f} s | {100 * s['extra_share']:.1f} % "
            f"| {100 * during[mode]:.1f} % | {100 * peak[mode]:.1f} % | {outage_p99[mode]:.2f} s |"
        )
    gain = 1 - stats["adaptive"]["p99"] / stats["fixed"]["p99"]
    checks = {
        "adaptive p99 >= 40 % lower than fixed": gain >= 0.40,
        "adaptive extra requests <= 10 %": stats["adaptive"]["extra_share"] <= 0.10,
        "outage: adaptive 60 s share within the budget": peak["adaptive"] <= BUDGET_SHARE + 0.001,
    }
    print(f"\nadaptive p99 is {100 * gain:.0f} % lower than fixed")
    for name, ok in checks.items():
        print(f"- [{'x' if ok else ' '}] {name}")
    if not args.no_plot:
        plot(normal, outage, result["outage_window"], args.png)
        print(f"\nplot: {args.png}")
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "smoke": args.smoke,
                    "calls": calls,
                    "summary": stats,
                    "outage_share": during,
                    "outage_peak": peak,
                    "outage_p99": outage_p99,
                    "checks": checks,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
