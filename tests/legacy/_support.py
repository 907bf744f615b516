"""Helpers shared by the legacy tests."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

from llmcomm import SimpleLLMManager
from llmcomm._portal import SHARED
from llmcomm.testing import FakeServer

KEY: Final = "test-key-0123456789"
REQUEST_ID: Final = re.compile(r"^LLM-\d{13}-[0-9a-f]{8}$")


def portal_running() -> bool:
    return SHARED.running


def body(server: FakeServer, index: int = -1) -> dict[str, Any]:
    """The JSON body of a recorded request (the last one by default)."""
    recorded: dict[str, Any] = server.requests[index].body
    return recorded


def run_in_new_loop(manager: SimpleLLMManager, **kwargs: Any) -> Any:
    """The legacy Flask pattern: a brand-new event loop per request, closed afterwards."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(manager.generate_response(**kwargs))
    finally:
        loop.close()
