"""Fleet state: what sharing breakers and budgets on Redis costs a call, and a fleet's calls/s.

    python -m benchmarks.fleet                  # ~1 min: latency, then 8 processes
    python -m benchmarks.fleet --calls 300 --seconds 3

Starts a private `redis-server` (Debian's; persistence off, a free loopback port) and a
`llmcomm.testing.FakeServer`, then measures:

- **added latency**: the same sequential calls through one client with in-process state
  and with `shared_state` on Redis, both with `rpm` set so every call takes from a budget
  and reports to the breaker; p50 and p99 of each and the difference (target: p99 <= 1 ms
  added on loopback);
- **calls/s with 8 processes**: 8 worker processes (half asyncio, half trio) calling one
  after another for `--seconds`, in-process state and then Redis.

The fake server runs in the measuring process and serves the 8 workers too, so the
calls/s are a floor shared by both states, not llmcomm's ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

KEY = "sk-bench-fleet-0123456789"
WORKERS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server for the run; its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="llmcomm-bench-redis-") as workdir:
        argv = [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
        proc = subprocess.Popen([*argv, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def _config(base_url: str, shared_state: str | None, model: str) -> object:
    from llmcomm import Configuration, ProviderConfig

    provider = ProviderConfig(
        name="bench", kind="openai", model=model, base_url=base_url, api_key=KEY, rpm=10_000_000, max_tokens=64
    )
    return Configuration(providers=(provider,), shared_state=shared_state, max_retries=0)


async def _latencies(base_url: str, shared_state: str | None, calls: int) -> list[float]:
    from llmcomm import Configuration, LLMCommunication

    config = _config(base_url, shared_state, f"lat-{os.getpid()}-{shared_state is not None}")
    assert isinstance(config, Configuration)
    samples: list[float] = []
    async with LLMCommunication(config) as llm:
        state = llm.manager.cooldown.state
        connect = getattr(state, "connect", None)
        if connect is not None:
            await connect(10.0)
        for _ in range(20):  # warm: connections, leases, the mirror
            await llm.generate_text("hi")
        for _ in range(calls):
            started = time.perf_counter()
            await llm.generate_text("hi")
            samples.append(time.perf_counter() - started)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _worker(base_url: str, shared_state: str | None, seconds: float) -> int:
    from llmcomm import Configuration, LLMCommunication

    config = _config(base_url, shared_state, "fleet-throughput")
    assert isinstance(config, Configuration)
    done = 0
    async with LLMCommunication(config) as llm:
        connect = getattr(llm.manager.cooldown.state, "connect", None)
        if connect is not None:
            await connect(10.0)
        await llm.generate_text("hi")  # warm
        print("ready", flush=True)
        start = float(await anyio.to_thread.run_sync(sys.stdin.readline))
        await anyio.sleep(max(0.0, start - time.time()))
        for _ in range(1_000_000):
            if time.time() >= start + seconds:
                break
            await llm.generate_text("hi")
            done += 1
    return done


def _throughput(base_url: str, shared_state: str | None, seconds: float) -> float:
    argv = [sys.executable, "-m", "benchmarks.fleet", "--worker", base_url, shared_state or "", str(seconds)]
    procs = [
        subprocess.Popen(
            [*argv, "asyncio" if i % 2 == 0 else "trio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for i in range(WORKERS)
    ]
    for proc in procs:  # every worker has started, connected and made a call
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    start = f"{time.time() + 0.5}\n"
    total = 0
    for proc in procs:
        out, _ = proc.communicate(start, timeout=seconds + 60)
        total += int(out.strip().splitlines()[-1])
    return total / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per latency sample set")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        base_url, shared, seconds, backend = args.worker
        done = anyio.run(_worker, base_url, shared or None, float(seconds), backend=backend)
        print(done)
        return 0
    from llmcomm.testing import FakeServer, Script

    results: dict[str, object] = {}
    with redis_server() as url, FakeServer(default=Script(text="ok")) as server:
        base = server.openai_base_url
        local = anyio.run(_latencies, base, None, args.calls)
        shared = anyio.run(_latencies, base, url, args.calls)
        for name, samples in (("in-process", local), ("redis", shared)):
            results[name] = {"p50_ms": round(_pct(samples, 0.5), 3), "p99_ms": round(_pct(samples, 0.99), 3)}
        results["added_ms"] = {
            "p50": round(_pct(shared, 0.5) - _pct(local, 0.5), 3),
            "p99": round(_pct(shared, 0.99) - _pct(local, 0.99), 3),
            "mean": round((statistics.fmean(shared) - statistics.fmean(local)) * 1000, 3),
        }
        server.requests.clear()  # the run's own record would grow with every call
        results["calls_per_s_8_processes"] = {
            "in-process": round(_throughput(base, None, args.seconds)),
            "redis": round(_throughput(base, url, args.seconds)),
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
