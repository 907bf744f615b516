"""One process of a fleet, for tests/fleet/test_fleet_processes.py.

`python _child.py URL BACKEND MODE SCOPE_SEED [ARGS...]` runs a `RedisState` on `BACKEND`
(asyncio or trio) and prints JSON lines on stdout:

- `breaker`: reads commands from stdin, one a line: `fail` records a failure and answers
  `{"failures": n, "open": bool}` once Redis answered; `state` refreshes and answers
  `{"open": bool}`; `quit` ends.
- `race FAILURES START`: from wall time START records failures while its breaker is closed
  (at most 50), as a worker whose requests all fail would; answers `{"sent": n}`.
- `budget RPM START SECONDS`: from wall time START for SECONDS asks for one request at a
  time and answers `{"granted": [wall times]}`.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from llmcomm._routing._state import BreakerPolicy, Scope
from llmcomm._routing._state._redis import RedisState


def scope_of(seed: str, rpm: int | None = None) -> Scope:
    return Scope.of("http://127.0.0.1:9/v1", f"sk-fleet-{seed}", "fleet-model", rpm=rpm)


def say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


async def breaker(url: str, seed: str) -> None:
    state = RedisState(url, BreakerPolicy(failures=3, cooldown=30.0), timeout=0.5)
    scope = scope_of(seed)
    try:
        say({"ready": await state.connect(10.0)})
        while line := (await anyio.to_thread.run_sync(sys.stdin.readline)).strip():
            if line == "fail":
                state.record_failure(scope, anyio.current_time())
                await state.flush()
                known = state.local._breakers.get(scope)
                say(
                    {
                        "failures": known.failures if known else 0,
                        "open": state.cooling(scope, anyio.current_time()) is not None,
                    }
                )
            elif line == "state":
                await state.refresh(scope)
                say({"open": state.cooling(scope, anyio.current_time()) is not None})
            else:
                break
    finally:
        await state.aclose()


async def race(url: str, seed: str, failures: int, start: float) -> None:
    # a generous operation timeout: this is about sharing, on a machine whose cores are all busy
    state = RedisState(url, BreakerPolicy(failures=failures, cooldown=30.0), timeout=0.5, refresh=0.05)
    scope = scope_of(seed)
    sent = 0
    try:
        assert await state.connect(10.0), "Redis did not answer"
        await anyio.sleep(max(0.0, start - time.time()))
        for _ in range(50):
            await state.refresh(scope)
            if state.cooling(scope, anyio.current_time()) is not None:
                break
            sent += 1  # the request went out and failed
            await anyio.sleep(0.02)  # as long as a failing request takes
            state.record_failure(scope, anyio.current_time())
            await state.flush()
        say({"sent": sent, "redis_failed": state.link._outage})
    finally:
        await state.aclose()


async def budget(url: str, seed: str, rpm: int, start: float, seconds: float) -> None:
    state = RedisState(url, timeout=0.5)
    scope = scope_of(seed, rpm)
    granted: list[float] = []
    try:
        assert await state.connect(10.0), "Redis did not answer"
        await anyio.sleep(max(0.0, start - time.time()))
        began = time.time()
        while time.time() < start + seconds:
            grant = await state.take(scope, anyio.current_time())
            if grant.granted:
                granted.append(time.time())
            else:
                await anyio.sleep(min(grant.wait, 0.05))
        say({"granted": granted, "began": began, "redis_failed": state.link._outage})
    finally:
        await state.aclose()


def main() -> None:
    url, backend, mode, seed, *args = sys.argv[1:]
    if mode == "breaker":
        anyio.run(breaker, url, seed, backend=backend)
    elif mode == "race":
        anyio.run(race, url, seed, int(args[0]), float(args[1]), backend=backend)
    elif mode == "budget":
        anyio.run(budget, url, seed, int(args[0]), float(args[1]), float(args[2]), backend=backend)


if __name__ == "__main__":
    main()
