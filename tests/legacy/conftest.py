"""Every legacy test starts with nothing configured and ends with every legacy instance closed."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from llmcomm import SimpleLLMService
from llmcomm.legacy._singletons import _reset_legacy_singletons
from llmcomm.testing import FakeServer

from ..helpers import clear_provider_environment
from ._support import KEY, portal_running

importlib.import_module("anthropic")  # the cold SDK import is not what these tests time
importlib.import_module("openai")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    clear_provider_environment(monkeypatch, tmp_path)
    yield
    _reset_legacy_singletons()
    assert not portal_running(), "a service was left open"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A threaded fake Anthropic API, configured through the environment as the legacy application does."""
    with FakeServer() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        yield fake


@pytest.fixture
def service(server: FakeServer) -> Iterator[SimpleLLMService]:
    with closing(SimpleLLMService()) as legacy:
        yield legacy
