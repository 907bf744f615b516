"""Small builders shared by the tests."""

from __future__ import annotations

import socket
from typing import Any, Literal

from llmcomm import Configuration, ProviderConfig
from llmcomm.testing import FakeServer

KEY = "sk-test-canary-0123456789abcdef"


def provider(
    server: FakeServer, kind: Literal["anthropic", "openai"] = "anthropic", name: str | None = None, **options: Any
) -> ProviderConfig:
    """A provider of `kind` pointed at `server`."""
    base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    options.setdefault("api_key", KEY)
    return ProviderConfig(name=name or kind, kind=kind, base_url=base_url, **options)


def config(*providers: ProviderConfig, **options: Any) -> Configuration:
    """A configuration of `providers`; retries off unless asked for, so error tests stay exact."""
    options.setdefault("max_retries", 0)
    return Configuration(providers=providers, **options)


def refused_url(kind: Literal["anthropic", "openai"] = "anthropic") -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")
