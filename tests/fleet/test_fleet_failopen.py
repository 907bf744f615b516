"""Redis down, frozen, flushed or never there: every operation answers from local state within
its bound, one warning per outage, and the fleet state comes back with Redis."""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Iterator

import anyio
import coredis
import pytest

from llmcomm._routing._state import BreakerPolicy, Scope
from llmcomm._routing._state._redis import RedisState

from .conftest import RedisServer, free_port

pytestmark = [
    pytest.mark.anyio,
    # coredis leaves the memory streams of a connection that failed unclosed (anyio warns when
    # they are collected); `_collect_leftovers` collects them inside these tests, not in a later one
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
]

POLICY = BreakerPolicy(failures=3, cooldown=30.0)
#: the most one operation may take while Redis fails: twice the 50 ms timeout, thread hops, a loaded machine
BOUND = 0.25


@pytest.fixture(autouse=True)
def _collect_leftovers() -> Iterator[None]:
    yield
    gc.collect()


def fresh_scope(*, rpm: int | None = None) -> Scope:
    return Scope.of("http://127.0.0.1:9/v1", f"sk-test-{uuid.uuid4().hex}", "m", rpm=rpm)


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmcomm" and r.levelno == logging.WARNING and "shared state" in r.getMessage()
    ]


async def exercise(backend: RedisState, scope: Scope, seconds: float) -> list[float]:
    """Take and report for `seconds` as a busy worker would; the time of each operation."""
    durations: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(500):
        if time.monotonic() >= deadline:
            break
        started = time.perf_counter()
        grant = await backend.take(scope, anyio.current_time())
        backend.record_ttft(scope, 0.1)
        assert grant.granted  # a 6000 rpm budget: the local bucket has room
        backend.cooling(scope, anyio.current_time())
        durations.append(time.perf_counter() - started)
        await anyio.sleep(0.02)
    return durations


async def wait_until_connected(backend: RedisState) -> bool:
    for _ in range(40):  # bounded: 40 tries over about 4 s
        if await backend.connect(0.1):
            return True
        await anyio.sleep(0.1)
    return False


async def test_redis_killed_mid_run_then_restarted(
    redis_private: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmcomm")
    backend = RedisState(redis_private.url, POLICY, bypass=0.3)
    scope = fresh_scope(rpm=6000)
    try:
        assert await backend.connect()
        backend.record_failure(scope, anyio.current_time())
        backend.record_failure(scope, anyio.current_time())
        await backend.flush()
        redis_private.kill()
        durations = await exercise(backend, scope, 1.0)  # three bypass periods and more
        assert max(durations) < BOUND, max(durations)
        backend.record_failure(scope, anyio.current_time())  # the third failure: counted locally
        assert backend.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=0.5)
        assert len(outage_warnings(caplog)) == 1
        assert "127.0.0.1" in outage_warnings(caplog)[0]

        redis_private.start()  # same port, empty (no persistence)
        assert await wait_until_connected(backend)
        assert any("answers again" in r.getMessage() for r in caplog.records)
        await backend.refresh(scope)  # Redis lost the open breaker: this process writes it back
        await backend.flush()
        async with coredis.Redis.from_url(redis_private.url, decode_responses=True) as client:
            state = await client.hgetall(scope.key("breaker", "state"))
            assert state.get("f") == "3"
            assert await client.pttl(scope.key("breaker", "state")) > 0
        other = RedisState(redis_private.url, POLICY)
        try:
            await other.refresh(scope)
            assert other.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=1.0)
        finally:
            await other.aclose()
        assert len(outage_warnings(caplog)) == 1
    finally:
        await backend.aclose()


async def test_a_frozen_redis_costs_each_operation_at_most_its_timeout(
    redis_private: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisState(redis_private.url, POLICY, bypass=0.3)
    scope = fresh_scope(rpm=6000)
    try:
        assert await backend.connect()
        redis_private.pause()
        try:
            durations = await exercise(backend, scope, 0.8)
        finally:
            redis_private.resume()
        assert max(durations) < BOUND, max(durations)
        assert len(outage_warnings(caplog)) == 1
        assert await wait_until_connected(backend)
        assert (await backend.take(scope, anyio.current_time())).granted
    finally:
        await backend.aclose()


async def test_no_redis_at_all(caplog: pytest.LogCaptureFixture) -> None:
    backend = RedisState(f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0", POLICY, bypass=0.3)
    scope = fresh_scope(rpm=6000)
    try:
        assert not await backend.connect(0.5)
        durations = await exercise(backend, scope, 0.5)
        assert max(durations) < BOUND
        for _ in range(3):
            backend.record_failure(scope, anyio.current_time())
        assert backend.cooling(scope, anyio.current_time()) is not None  # the local breaker works alone
        assert await backend.acquire_probe(scope, anyio.current_time()) is False
        warnings = outage_warnings(caplog)
        assert len(warnings) == 1
        assert "s3cret" not in warnings[0] and "****@127.0.0.1" in warnings[0]
        assert "s3cret" not in repr(backend)
    finally:
        await backend.aclose()


async def test_a_flushed_redis_is_rebuilt(redis_private: RedisServer) -> None:
    first, second = RedisState(redis_private.url, POLICY), RedisState(redis_private.url, POLICY)
    scope, budget_scope = fresh_scope(), fresh_scope(rpm=60)
    try:
        for _ in range(3):
            first.record_failure(scope, anyio.current_time())
        assert (await first.take(budget_scope, anyio.current_time())).granted
        await first.flush()
        async with coredis.Redis.from_url(redis_private.url) as client:
            await client.flushall()
            await client.script_flush()  # the scripts are gone too: EVALSHA answers NOSCRIPT
            await first.refresh(scope)  # first still knows the breaker open and writes it back
            await first.flush()
            await second.refresh(scope)
            assert second.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=1.0)
            assert (await second.take(budget_scope, anyio.current_time())).granted  # the bucket starts anew
            for key in (scope.key("breaker", "state"), budget_scope.key("budget", "buckets")):
                assert await client.pttl(key) > 0, key
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_password_in_the_url_is_used_and_never_shown(
    redis_with_password: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = redis_with_password.port
    right = RedisState(f"redis://:s3cret-redis-pw@127.0.0.1:{port}/0", POLICY)
    wrong = RedisState(f"redis://:wrong-s3cret@127.0.0.1:{port}/0", POLICY, bypass=0.3)
    scope = fresh_scope(rpm=60)
    try:
        assert await right.connect()
        assert (await right.take(scope, anyio.current_time())).granted
        assert not await wrong.connect(0.5)  # refused: the calls go on locally
        assert (await wrong.take(scope, anyio.current_time())).granted
        shown = [repr(right), repr(wrong), *outage_warnings(caplog)]
        assert len(shown) == 3
        assert not any("s3cret" in text for text in shown), shown
    finally:
        await right.aclose()
        await wrong.aclose()


async def test_the_fleet_learns_in_the_background(pair_url: str) -> None:
    """No explicit refresh: the other process learns of an open breaker within its refresh period."""
    first, second = RedisState(pair_url, POLICY), RedisState(pair_url, POLICY, refresh=0.1)
    scope = fresh_scope()
    try:
        assert second.cooling(scope, anyio.current_time()) is None  # second now follows this scope
        for _ in range(3):
            first.record_failure(scope, anyio.current_time())
        await first.flush()
        opened = time.monotonic()
        for _ in range(100):  # bounded: at most about 1 s
            if second.cooling(scope, anyio.current_time()) is not None:
                break
            await anyio.sleep(0.01)
        learnt = time.monotonic() - opened
        assert second.cooling(scope, anyio.current_time()) is not None
        assert learnt < 0.5, learnt
        print(f"\nbreaker opened by one process, seen by another after {learnt * 1000:.0f} ms (refresh 100 ms)")
    finally:
        await first.aclose()
        await second.aclose()


@pytest.fixture
def pair_url(redis: RedisServer) -> str:
    return redis.url
