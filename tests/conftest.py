"""Shared fixtures: every async test runs on asyncio and on trio, against `llmcomm.testing`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmcomm.testing import FakeServer


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    """A fake provider server on 127.0.0.1, in the test's own event loop."""
    async with FakeServer() as fake:
        yield fake
