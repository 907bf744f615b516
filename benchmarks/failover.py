"""Failover time: how long until the backup's first token when the primary fails or says nothing.

Runs against `llmcomm.testing.FakeServer` (scripted faults) in the measuring
process. Every sample opens a fresh `LLMCommunication` with the default
configuration (so no cooldown carries over from the sample before) and times
the call from `generate_stream` to the first content chunk; opening the client
is not timed, its first connections are.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from .common import API_KEY, PROMPT, Api
from .measure import Sizes, summary


def _refused_origin() -> str:
    # A port that was just free: nothing listens there, so connecting is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _first_token(providers: list[Any], fallback_timeout: float) -> tuple[float, str]:
    from llmcomm import Configuration, LLMCommunication

    config = Configuration(providers=providers, fallback_timeout=fallback_timeout)
    async with LLMCommunication(config) as llm:
        started = time.perf_counter()
        first = 0.0
        async with llm.generate_stream(PROMPT) as stream:
            async for chunk in stream:
                if chunk.text and not first:
                    first = time.perf_counter() - started
        assert stream.response is not None
        return first, stream.response.provider


async def failover(api: Api, sizes: Sizes) -> dict[str, Any]:
    """First-token times: backup alone, after a 529, after a refused connection, after a silent primary."""
    from llmcomm import ProviderConfig
    from llmcomm.testing import FakeServer, Script

    async with FakeServer() as server:
        server.route(model="failing", script=Script(status=529))
        server.route(model="silent", script=Script(delay_before_first_token=600.0, keepalive_interval=0.25))
        server.route(model="backup", script=Script(tokens=5))
        url = server.anthropic_base_url if api == "anthropic" else server.openai_base_url
        refused = _refused_origin() + ("/v1" if api == "openai" else "")

        def provider(name: str, model: str, base_url: str = url) -> ProviderConfig:
            return ProviderConfig(name=name, kind=api, model=model, base_url=base_url, api_key=API_KEY)

        backup = provider("backup", "backup")
        cases: dict[str, tuple[list[Any], float, int]] = {
            "healthy": ([backup], 2.0, sizes.failover_runs),
            "status_529": ([provider("primary", "failing"), backup], 2.0, sizes.failover_runs),
            "refused": ([provider("primary", "backup", refused), backup], 2.0, sizes.failover_runs),
            "silent": ([provider("primary", "silent"), backup], sizes.silent_fallback, sizes.silent_runs),
        }
        results: dict[str, Any] = {}
        for case, (providers, fallback_timeout, runs) in cases.items():
            samples: list[float] = []
            served_by: set[str] = set()
            for _ in range(runs):
                first, provider_name = await _first_token(providers, fallback_timeout)
                samples.append(first)
                served_by.add(provider_name)
            results[case] = {**summary(samples), "served_by": sorted(served_by), "fallback_timeout": fallback_timeout}
        return results
