"""Two backends on one real Redis behave as one fleet: breaker, probe slot, budgets, headers, hedge samples."""

from __future__ import annotations

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


def fresh_scope(*, rpm: int | None = None, tpm: int | None = None) -> Scope:
    """A scope no other test uses (a key of its own)."""
    return Scope.of("http://127.0.0.1:9/v1", f"sk-test-{uuid.uuid4().hex}", "gpt-4o-mini", rpm=rpm, tpm=tpm)


@pytest.fixture
async def pair(redis: RedisServer) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """Two backends on the same Redis, as two processes of a fleet would have."""
    first, second = RedisState(redis.url, POLICY), RedisState(redis.url, POLICY)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


async def test_failures_add_up_across_the_fleet(pair: tuple[RedisState, RedisState]) -> None:
    first, second = pair
    scope = fresh_scope()
    now = anyio.current_time()
    first.record_failure(scope, now)
    second.record_failure(scope, now)
    await first.flush()
    await second.flush()
    assert first.cooling(scope, now) is None and second.cooling(scope, now) is None  # 2 < 3
    first.record_failure(scope, now)
    await first.flush()
    assert first.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=0.5)
    await second.refresh()
    assert second.cooling(scope, anyio.current_time()) == pytest.approx(30.0, abs=0.5)
    second.record_success(scope, anyio.current_time())
    await second.flush()
    await first.refresh()
    assert first.cooling(scope, anyio.current_time()) is None
