"""Clients in separate processes share breakers and budgets through one real Redis.

Eight worker processes (half on asyncio, half on trio; tests/fleet/_client_child.py) each
open an `LLMCommunication(Configuration(shared_state=...))` against one fake server, which
counts what reaches it. Each worker alone would learn nothing from the others.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmcomm._routing._state._types import LEASE_TTL, burst, refill_rate
from llmcomm.testing import FakeServer, Script

from ._workers import WORKERS, answer, backend_of, spawned
from .conftest import RedisServer

CHILD = str(Path(__file__).with_name("_client_child.py"))
#: how long a child may take to get ready or to answer, in seconds (8 interpreters on a busy machine)
ANSWER_TIMEOUT = 60.0


@contextmanager
def workers(
    url: str, base_url: str, mode: str, seed: str, args: list[list[str]] | None = None
) -> Iterator[list[subprocess.Popen[str]]]:
    """`WORKERS` clients, half on asyncio and half on trio; worker i gets `args[i]`."""
    commands = [[CHILD, url, backend_of(i), base_url, mode, seed, *(args[i] if args else [])] for i in range(WORKERS)]
    with spawned(commands, ANSWER_TIMEOUT) as procs:
        yield procs


def go(procs: list[subprocess.Popen[str]], start: float, *, only: list[int] | None = None) -> None:
    for index in only if only is not None else range(len(procs)):
        stdin = procs[index].stdin
        assert stdin is not None
        stdin.write(f"{start}\n")
        stdin.flush()


def ready(procs: list[subprocess.Popen[str]]) -> None:
    assert all(answer(proc)["ready"] for proc in procs), "a worker could not reach Redis"


@pytest.mark.timeout(180)
def test_eight_workers_stop_sending_to_a_failing_primary_after_its_failures_in_total(redis: RedisServer) -> None:
    seed = uuid.uuid4().hex[:12]
    with FakeServer() as server:
        server.route(model=f"bad-{seed}", script=Script(status=500))
        server.route(model=f"good-{seed}", script=Script(text="from backup"))
        # worker i calls at (k * 8 + i) * 0.3 s: the fleet sends one call every 0.3 s, two per worker,
        # so no worker alone ever sees the 3 failures that open a breaker of its own
        args = [[json.dumps([round((k * WORKERS + i) * 0.3, 3) for k in range(2)])] for i in range(WORKERS)]
        with workers(redis.url, server.openai_base_url, "fallback", seed, args) as procs:
            ready(procs)
            go(procs, time.time() + 1.0)
            answers = [answer(proc) for proc in procs]
        bad = [r for r in server.requests if r.model == f"bad-{seed}"]
        good = [r for r in server.requests if r.model == f"good-{seed}"]
    assert [a["errors"] for a in answers] == [[]] * WORKERS  # every call was served
    assert sorted(p for a in answers for p in a["served"]) == ["backup"] * 2 * WORKERS
    assert len(good) == 2 * WORKERS
    # three failures in total open the fleet's breaker (per process: 16, since none fails thrice);
    # one more may be under way in the 0.3 s the news takes to reach a worker (0.2 s refresh)
    assert 3 <= len(bad) <= 4, len(bad)


@pytest.mark.timeout(180)
def test_a_budget_of_600_rpm_holds_across_eight_workers(redis: RedisServer) -> None:
    seed = uuid.uuid4().hex[:12]
    rpm, seconds = 600, 6.0
    with FakeServer() as server:
        with workers(redis.url, server.openai_base_url, "budget", seed, [[str(seconds)]] * WORKERS) as procs:
            ready(procs)
            go(procs, time.time() + 1.0)
            answers = [answer(proc) for proc in procs]
        seen = sorted(r.received_at for r in server.requests if r.model == f"rpm-{seed}")
    assert [a["errors"] for a in answers] == [[]] * WORKERS
    assert sum(a["ok"] for a in answers) == len(seen)
    capacity, rate = burst(rpm), refill_rate(rpm)
    assert len(seen) <= capacity + rate * (seconds + LEASE_TTL) + 1
    assert len(seen) >= 0.7 * (capacity + rate * seconds), len(seen)  # and the fleet uses its budget
    # no window holds more than the bucket allows: burst + refill over the window and a lease's life,
    # +1, and 0.1 s between Redis granting and the server receiving the request
    reach = LEASE_TTL + 0.1
    for first, at in enumerate(seen):
        for window in (0.5, 1.0, 3.0, 6.0):
            end = first
            while end < len(seen) and seen[end] < at + window:
                end += 1
            assert end - first <= capacity + rate * (window + reach) + 1, (window, end - first)
    limited = sum(a["limited"] for a in answers)
    print(f"\n{len(seen)} requests in {seconds:g} s across {WORKERS} workers at rpm={rpm}; {limited} calls refused")


@pytest.mark.timeout(180)
def test_a_retry_after_seen_by_one_worker_keeps_the_others_off(redis: RedisServer) -> None:
    seed = uuid.uuid4().hex[:12]
    with FakeServer(default=Script(text="from limited")) as server:
        server.enqueue(Script(status=429, retry_after=30))  # the first request to `limited` only
        server.route(model=f"good-{seed}", script=Script(text="from backup"))
        with workers(redis.url, server.openai_base_url, "once", seed) as procs:
            ready(procs)
            go(procs, time.time(), only=[0])
            first = answer(procs[0])
            go(procs, time.time() + 0.5, only=list(range(1, WORKERS)))  # after one refresh (0.2 s)
            others = [answer(proc) for proc in procs[1:]]
        limited = [r for r in server.requests if r.model == f"limited-{seed}"]
    assert first["outcomes"] == [["limited", "failed"], ["backup", "won"]]
    assert [o["outcomes"] for o in others] == [[["limited", "skipped-rate-limit"], ["backup", "won"]]] * (WORKERS - 1)
    assert len(limited) == 1
