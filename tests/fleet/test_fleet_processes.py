"""Real processes share one Redis: 8 workers, half on asyncio and half on trio (tests/fleet/_child.py)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmcomm._routing._state._types import LEASE_TTL, burst, refill_rate

from ._workers import WORKERS, answer, ask, backend_of, spawned
from .conftest import RedisServer

CHILD = str(Path(__file__).with_name("_child.py"))
#: how long a child may take to answer one command, in seconds
ANSWER_TIMEOUT = 20.0


@contextmanager
def children(url: str, mode: str, seed: str, *args: str) -> Iterator[list[subprocess.Popen[str]]]:
    with spawned([[CHILD, url, backend_of(i), mode, seed, *args] for i in range(WORKERS)], ANSWER_TIMEOUT) as procs:
        yield procs


@pytest.mark.timeout(120)
def test_the_breaker_opens_after_the_failures_in_total_not_per_process(redis: RedisServer) -> None:
    with children(redis.url, "breaker", uuid.uuid4().hex) as procs:
        assert all(answer(proc)["ready"] for proc in procs)
        assert ask(procs[0], "fail") == {"failures": 1, "open": False}
        assert ask(procs[5], "fail") == {"failures": 2, "open": False}
        assert [ask(proc, "state")["open"] for proc in procs] == [False] * WORKERS
        assert ask(procs[3], "fail") == {"failures": 3, "open": True}  # the third failure of the fleet
        assert [ask(proc, "state")["open"] for proc in procs] == [True] * WORKERS


@pytest.mark.timeout(120)
def test_workers_that_all_fail_stop_together(redis: RedisServer) -> None:
    """Each worker alone would send 3 failing requests (24 in all); together they stop near 3."""
    with children(redis.url, "race", uuid.uuid4().hex, "3", str(time.time() + 3.0)) as procs:
        answers = [answer(proc) for proc in procs]
    assert not any(a["redis_failed"] for a in answers), answers
    sent = [a["sent"] for a in answers]
    # at most one request per other worker was already under way when the third failure landed
    assert 3 <= sum(sent) <= 3 + WORKERS - 1, sent


@pytest.mark.timeout(120)
def test_a_requests_budget_holds_across_eight_processes(redis: RedisServer) -> None:
    rpm, seconds = 600, 6.0
    start = time.time() + 4.0  # every child is connected by then, unless the machine is very busy
    with children(redis.url, "budget", uuid.uuid4().hex, str(rpm), str(start), str(seconds)) as procs:
        answers = [answer(proc) for proc in procs]
    assert not any(a["redis_failed"] for a in answers)
    granted = sorted(t for a in answers for t in a["granted"])
    capacity, rate = burst(rpm), refill_rate(rpm)
    assert len(granted) <= capacity + rate * seconds + 1
    # the fleet uses its budget, over the time all of its processes were running (a loaded machine
    # may start some late)
    together = start + seconds - max(a["began"] for a in answers)
    assert len(granted) >= 0.8 * (capacity + rate * together), (len(granted), together)
    # no window holds more than the bucket allows: its burst plus the refill over the window and
    # the lease time (a leased unit is spent up to LEASE_TTL after it left the bucket), +1 and
    # 20 ms for the time between Redis granting and the child noting it
    reach = LEASE_TTL + 0.02
    end = 0
    for first, at in enumerate(granted):
        for window in (0.5, 1.0, 3.0, 6.0):
            end = first
            while end < len(granted) and granted[end] < at + window:
                end += 1
            assert end - first <= capacity + rate * (window + reach) + 1, (window, end - first)
    print(
        f"\n{len(granted)} requests granted in {seconds:g} s ({together:.2f} s with all {WORKERS} processes running), rpm={rpm}"
    )
