"""Two backends on one real Redis behave as one fleet: breaker, probe slot, budgets, headers, hedge samples.

Two `RedisState`s stand for two processes (tests/fleet/test_fleet_processes.py runs real
ones). Times are real: Redis keeps time with its own clock; margins are stated per test.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections.abc import AsyncIterator

import anyio
import coredis
import pytest

from llmcomm._routing._state import BreakerPolicy, Scope
from llmcomm._routing._state._redis import RedisState

from .conftest import RedisServer

pytestmark = pytest.mark.anyio

POLICY = BreakerPolicy(failures=3, cooldown=30.0, auth_cooldown=300.0, probe_lease=5.0)
KEY_RE = re.compile(r"llmcomm:v1:(breaker|budget|hedge):[0-9a-f]{16}:[^:]+:(state|buckets|ttft)")


def fresh_scope(*, rpm: int | None = None, tpm: int | None = None) -> Scope:
    """A scope no other test uses (a key of its own)."""
    return Scope.of("http://127.0.0.1:9/v1", f"sk-test-{uuid.uuid4().hex}", "gpt-4o-mini", rpm=rpm, tpm=tpm)


async def two(url: str, policy: BreakerPolicy = POLICY) -> tuple[RedisState, RedisState]:
    return RedisState(url, policy), RedisState(url, policy)


@pytest.fixture
async def pair(redis: RedisServer) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """Two backends on the same Redis, as two processes of a fleet would have."""
    first, second = await two(redis.url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


async def test_failures_add_up_across_the_fleet(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    first.record_failure(scope, anyio.current_time())
    second.record_failure(scope, anyio.current_time())
    await first.flush()
    await second.flush()
    assert first.cooling(scope, anyio.current_time()) is None  # 2 failures < 3
    assert second.cooling(scope, anyio.current_time()) is None
    first.record_failure(scope, anyio.current_time())
    await first.flush()
    assert first.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=0.5)
    await second.refresh(scope)
    assert second.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=0.5)
    second.record_success(scope, anyio.current_time())
    await second.flush()
    await first.refresh(scope)
    assert first.cooling(scope, anyio.current_time()) is None


async def test_an_auth_failure_opens_the_breaker_for_the_auth_cooldown(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    first.record_failure(scope, anyio.current_time(), auth=True)
    await first.flush()
    await second.refresh(scope)
    assert second.cooling(scope, anyio.current_time()) == pytest.approx(300.0, abs=0.5)


async def test_one_probe_slot_fleet_wide_with_an_expiring_lease(redis: RedisServer) -> None:
    policy = BreakerPolicy(failures=1, cooldown=0.2, probe_lease=0.4)
    first, second = await two(redis.url, policy)
    try:
        scope = fresh_scope()
        first.record_failure(scope, anyio.current_time())
        await first.flush()
        assert not await second.acquire_probe(scope, anyio.current_time()) or second.cooling(scope, 0) is not None
        await anyio.sleep(0.25)  # the cooldown (0.2 s) is over: one probe may start
        await second.refresh(scope)
        assert second.cooling(scope, anyio.current_time()) == 0.0
        assert await first.acquire_probe(scope, anyio.current_time())
        assert not await second.acquire_probe(scope, anyio.current_time())
        assert not await first.acquire_probe(scope, anyio.current_time())
        await second.refresh(scope)
        assert 0.0 < (second.cooling(scope, anyio.current_time()) or 0.0) <= 0.4  # waits for the probe's outcome
        await anyio.sleep(0.45)  # the prober never reported: its lease ran out
        assert await second.acquire_probe(scope, anyio.current_time())
        second.record_failure(scope, anyio.current_time())  # the probe failed: open again at once
        await second.flush()
        await first.refresh(scope)
        assert first.cooling(scope, anyio.current_time()) == pytest.approx(0.2, abs=0.1)
        await anyio.sleep(0.25)
        assert await first.acquire_probe(scope, anyio.current_time())
        first.release_probe(scope, anyio.current_time())  # its attempt never ran: the slot is free again
        await first.flush()
        assert await second.acquire_probe(scope, anyio.current_time())
        second.record_success(scope, anyio.current_time())
        await second.flush()
        await first.refresh(scope)
        assert first.cooling(scope, anyio.current_time()) is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_requests_budget_is_one_for_the_fleet(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope(rpm=60)  # burst 3, then 0.95 per second
    grants = [await backend.take(scope, anyio.current_time()) for backend in (first, second, first)]
    assert all(grant.granted for grant in grants)
    refused = await second.take(scope, anyio.current_time())
    assert not refused.granted
    assert refused.reason == "requests"
    assert 0.5 < refused.wait <= 1.1


async def test_a_budget_is_leased_ahead_from_the_fleet(pair: tuple[RedisState, RedisState], redis: RedisServer) -> None:
    first, _ = pair
    scope = fresh_scope(rpm=6000)  # burst 300; a lease is 0.1 s of refill: 9 requests
    assert (await first.take(scope, anyio.current_time())).granted
    async with coredis.Redis.from_url(redis.url, decode_responses=True) as client:
        level = float(await client.hget(scope.key("budget", "buckets"), "rl") or "nan")
        assert 290.0 <= level < 292.0  # 1 spent, 9 leased (and a few ms of refill)
        for _ in range(5):  # spent from the lease: Redis is not asked
            assert (await first.take(scope, anyio.current_time())).granted
        await first.flush()
        level = float(await client.hget(scope.key("budget", "buckets"), "rl") or "nan")
        assert 280.0 <= level < 292.0  # the fleet's bucket paid for the lease and one top-up, nothing more


async def test_tokens_are_charged_at_the_estimate_and_settled_to_real_usage(
    pair: tuple[RedisState, RedisState],
) -> None:
    first, second = pair
    scope = fresh_scope(tpm=6000)  # burst 300 tokens
    assert (await first.take(scope, anyio.current_time(), input_tokens=200, output_tokens=100)).granted
    refused = await second.take(scope, anyio.current_time(), input_tokens=150)
    assert not refused.granted
    assert refused.reason == "tokens"
    first.settle(scope, anyio.current_time(), estimate=300, actual=100)  # 200 tokens back
    await first.flush()
    assert (await second.take(scope, anyio.current_time(), input_tokens=150)).granted


async def test_openai_headers_lower_the_budget_until_the_reset(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    headers = {"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "800ms"}
    first.report_headers(scope, anyio.current_time(), headers, wall_now=time.time())
    await first.flush()
    # a later, higher count inside the same window does not raise the ceiling
    first.report_headers(
        scope, anyio.current_time(), {**headers, "X-RateLimit-Remaining-Requests": "50"}, wall_now=time.time()
    )
    await first.flush()
    await second.refresh(scope)
    assert (await second.take(scope, anyio.current_time())).granted
    assert (await first.take(scope, anyio.current_time())).granted
    refused = await second.take(scope, anyio.current_time())
    assert not refused.granted
    assert refused.reason == "requests"
    assert 0.3 < refused.wait <= 0.8
    await anyio.sleep(refused.wait + 0.05)
    assert (await second.take(scope, anyio.current_time())).granted  # the reset is over


async def test_anthropic_input_and_output_budgets_are_separate(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    reset = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "100",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-remaining": "1000",
        "anthropic-ratelimit-output-tokens-reset": reset,
    }
    first.report_headers(scope, anyio.current_time(), headers, wall_now=time.time())
    await first.flush()
    await second.refresh(scope)
    refused = await second.take(scope, anyio.current_time(), input_tokens=150)
    assert not refused.granted
    assert refused.reason == "input-tokens"
    assert 4.0 < refused.wait <= 5.0
    assert (await second.take(scope, anyio.current_time(), input_tokens=50, output_tokens=900)).granted
    assert not (await first.take(scope, anyio.current_time(), input_tokens=60)).granted  # 50 left
    over = await first.take(scope, anyio.current_time(), input_tokens=10, output_tokens=200)
    assert not over.granted
    assert over.reason == "output-tokens"  # 100 output tokens left


async def test_retry_after_seen_by_one_keeps_the_fleet_off(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    first.report_headers(scope, anyio.current_time(), {"retry-after": "0.6"}, wall_now=time.time())
    await first.flush()
    await second.refresh(scope)
    for backend in (first, second):
        grant = await backend.take(scope, anyio.current_time())
        assert not grant.granted
        assert grant.reason == "retry-after"
        assert 0.3 < grant.wait <= 0.6
    await anyio.sleep(0.65)
    assert (await second.take(scope, anyio.current_time())).granted


async def test_time_to_first_token_samples_are_shared(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    for seconds in (0.5, 0.25, 0.125):
        first.record_ttft(scope, seconds)
    await first.flush()
    await second.refresh(scope)
    assert second.ttft_samples(scope) == (0.125, 0.25, 0.5)


async def test_every_key_is_namespaced_hashed_and_expires(
    pair: tuple[RedisState, RedisState], redis: RedisServer
) -> None:
    first, _ = pair
    key = f"sk-secret-{uuid.uuid4().hex}"
    scope = Scope.of("http://user:pw@10.0.0.1:8080/v1", key, "ft:gpt-4o:acme", rpm=100, tpm=10_000)
    first.record_failure(scope, anyio.current_time())
    assert (await first.take(scope, anyio.current_time(), input_tokens=10)).granted
    first.report_headers(scope, anyio.current_time(), {"retry-after": "2"}, wall_now=time.time())
    first.record_ttft(scope, 0.3)
    await first.flush()
    async with coredis.Redis.from_url(redis.url, decode_responses=True) as client:
        keys = [k async for k in client.scan_iter(match=f"llmcomm:v1:*:{scope.endpoint}:*")]
        assert len(keys) == 3
        for name in keys:
            assert KEY_RE.fullmatch(name), name
            assert key not in name and "pw" not in name and "10.0.0.1" not in name
            assert "ft%3Agpt-4o%3Aacme" in name
            assert 0 < await client.pttl(name) <= 3_600_000, name
        first.record_success(scope, anyio.current_time())  # a closed breaker stays behind, expiring too
        for _ in range(205):
            first.record_ttft(scope, 0.2)
        await first.flush()
        assert 0 < await client.pttl(scope.key("breaker", "state")) <= 30_000
        assert await client.llen(scope.key("hedge", "ttft")) == 200


async def test_redis_round_trip_latency_on_loopback(redis: RedisServer) -> None:
    """Measures `take` from a lease, an awaited Lua call through the Redis thread, and a bare
    EVALSHA in the caller's own loop; prints p50/p99."""
    from functools import partial

    from llmcomm._routing._state._link import run_script
    from llmcomm._routing._state._lua import BREAKER_STATE

    backend = RedisState(redis.url, POLICY)
    scope = fresh_scope(rpm=10_000_000)
    key = scope.key("breaker", "state")
    samples: dict[str, list[float]] = {"take": [], "awaited": [], "bare": []}
    try:
        assert (await backend.take(scope, anyio.current_time())).granted  # connects and loads the script
        for _ in range(300):
            started = time.perf_counter()
            await backend.take(scope, anyio.current_time())
            samples["take"].append(time.perf_counter() - started)
        for _ in range(300):
            started = time.perf_counter()
            assert await backend.link.call(partial(run_script, script=BREAKER_STATE, keys=[key], args=[]), key)
            samples["awaited"].append(time.perf_counter() - started)
        async with coredis.Redis.from_url(redis.url) as client:
            for _ in range(300):
                started = time.perf_counter()
                await run_script(client, BREAKER_STATE, [key], [])
                samples["bare"].append(time.perf_counter() - started)
    finally:
        await backend.aclose()
    shown = []
    for name, xs in samples.items():
        xs.sort()
        shown.append(f"{name} p50 {xs[len(xs) // 2] * 1000:.3f} p99 {xs[int(len(xs) * 0.99)] * 1000:.3f}")
    print(f"\nredis latency ms: {'; '.join(shown)}")
    assert sorted(samples["take"])[150] < 0.001  # from the lease: no round trip
    assert sorted(samples["awaited"])[150] < 5.0  # loopback on a shared 2-core machine


def test_a_forked_child_gets_a_connection_of_its_own(redis: RedisServer, anyio_backend: str) -> None:
    """As under gunicorn's preload: the backend is made and used before the fork, then in each worker."""
    import os
    import traceback

    backend = RedisState(redis.url, POLICY)
    scope = fresh_scope(rpm=600)

    async def before() -> None:
        assert await backend.connect()
        assert (await backend.take(scope, anyio.current_time())).granted

    async def in_child() -> int:
        if not await backend.connect(5.0):
            return 3
        backend.record_failure(scope, anyio.current_time())
        await backend.flush()
        return 0 if (await backend.take(scope, anyio.current_time())).granted else 4

    async def after() -> int:
        await backend.refresh(scope)
        failures = backend.local._breakers[scope].failures
        await backend.aclose()
        return failures

    anyio.run(before, backend=anyio_backend)
    pid = os.fork()
    if pid == 0:  # the child: no test machinery here, only an exit code
        code = 1
        try:
            code = anyio.run(in_child, backend=anyio_backend)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20.0
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    if done == (0, 0):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert anyio.run(after, backend=anyio_backend) == 1  # the child's failure reached the fleet
