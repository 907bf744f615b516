"""Small builders shared by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

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


#: every variable that could configure a provider or its times
PROVIDER_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_MAX_TOKENS",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "OPENAI_MAX_TOKENS",
    "CLAUDE_CLI_PATH",
    "CLAUDE_CLI_MODEL",
    "LLM_PROVIDERS",
    "LLM_TIMEOUT",
    "LLM_FALLBACK_TIMEOUT",
    "LLM_STREAM_IDLE_TIMEOUT",
)


def clear_provider_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing configured: no provider variable, no `claude` on PATH, no `./.env`, no legacy log file."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ENABLE_LLM_SPECIAL_LOG", "false")
    monkeypatch.chdir(tmp_path)


def default_sigint() -> None:
    """`preexec_fn` for a child that must feel Ctrl-C: a suite started from a background job
    inherits SIGINT ignored, and a child started that way would ignore it too."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_env(tmp_path: Path) -> dict[str, str]:
    """No provider credentials and no `claude` on PATH: the examples must use their simulator."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PYTHONIOENCODING": "utf-8"}
    if "SYSTEMROOT" in os.environ:
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return env


def run_example(name: str, env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`examples/<name>` run as a user would: its own process, no stdin."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
