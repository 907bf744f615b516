"""Creating a configured legacy service readies llmcomm in the background, without touching the network."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from llmcomm import SimpleLLMService
from llmcomm.testing import FakeServer

from ..helpers import clear_provider_environment
from ._support import portal_running


def warm_up_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "llmcomm-warm-up"]


def wait_for_warm_up(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in warm_up_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not warm_up_threads(), "the warm-up did not finish"


def test_a_configured_service_starts_the_portal_without_a_request(server: FakeServer) -> None:
    assert not portal_running()
    with closing(SimpleLLMService()) as service:
        wait_for_warm_up(timeout=30)
        assert portal_running(), "the portal was not started in the background"
        assert (server.request_count, server.open_connections) == (0, 0), "creating the service touched the network"
        assert service.simple_llm("hi") == "Hello from llmcomm.testing."
    assert not portal_running()


def test_closing_while_warming_up_leaves_nothing_running(server: FakeServer) -> None:
    for _ in range(5):
        SimpleLLMService().close()  # closed at once, racing its own warm-up
    wait_for_warm_up(timeout=30)
    assert not portal_running()
    assert server.request_count == 0


def test_nothing_configured_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_provider_environment(monkeypatch, tmp_path)
    with closing(SimpleLLMService()) as service:
        assert service.client is None
        assert not warm_up_threads()
        assert not portal_running()
