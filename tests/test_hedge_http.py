"""The adaptive hedge over real HTTP, on asyncio and trio: a primary that is slow only sometimes.

After a few fast replies the primary's p95 is far below 2 s, so its one slow reply is
hedged well before the fixed rule would (margins are wide: the machine may be busy).
"""

from __future__ import annotations

import anyio
import pytest

from llmcomm import AdaptiveHedge, Configuration, LLMCommunication, ProviderConfig
from llmcomm.testing import FakeServer, Script

from .helpers import KEY

pytestmark = pytest.mark.anyio

FAST = Script(text="fast reply", delay_before_first_token=0.02)
SLOW = Script(text="slow reply", delay_before_first_token=5.0)


def config(server: FakeServer, hedge: AdaptiveHedge | str) -> Configuration:
    providers = [
        ProviderConfig(
            name="primary", kind="anthropic", model="m-primary", base_url=server.anthropic_base_url, api_key=KEY
        ),
        ProviderConfig(name="backup", kind="openai", model="m-backup", base_url=server.openai_base_url, api_key=KEY),
    ]
    return Configuration(providers=providers, max_retries=0, hedge=hedge)  # type: ignore[arg-type]


async def test_adaptive_hedges_a_slow_reply_well_before_two_seconds(server: FakeServer) -> None:
    server.route(model="m-backup", script=Script(text="from backup", delay_before_first_token=0.02))
    server.enqueue(*[FAST] * 8, SLOW)
    async with LLMCommunication(config(server, AdaptiveHedge(min_samples=8, floor=0.25))) as llm:
        for _ in range(8):
            assert (await llm.generate_response("hi")).provider == "primary"
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
        elapsed = anyio.current_time() - t0
    assert response.provider == "backup"
    assert response.content == "from backup"
    assert elapsed < 1.2  # hedged at the floor (0.25 s) or a p95 near it, never at 2 s
    reason = response.attempts[1].reason
    assert reason.startswith(("hedge-floor", "hedge-p95")), reason
    slow = server.requests[-2]
    await server.wait_closed(slow)  # the slow primary's connection was closed once the backup won
    assert llm.metrics.snapshot()["total"]["hedges"] == {reason.partition(" ")[0].removeprefix("hedge-"): 1}


async def test_fixed_waits_the_whole_fallback_timeout(server: FakeServer) -> None:
    server.route(model="m-backup", script=Script(text="from backup"))
    server.enqueue(Script(text="slow", delay_before_first_token=5.0))
    async with LLMCommunication(config(server, "fixed")) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
        elapsed = anyio.current_time() - t0
    assert response.provider == "backup"
    assert 2.0 <= elapsed < 3.5
    assert response.attempts[1].reason == "hedge-fixed 2 s"
