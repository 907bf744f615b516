"""llmcomm installs and runs beside an application that pins older official SDKs.

The SDKs are the parity reference (extra `sdk`), never a run-time dependency: a real
application (a Flask back end pinning `openai<2`) must be able to install llmcomm, and
every call must work with neither SDK importable.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from llmcomm.testing import FakeServer, Script

ROOT = Path(__file__).resolve().parent.parent

RUN_WITHOUT_SDKS = textwrap.dedent(
    """
    import sys
    sys.modules["anthropic"] = None  # any import of either SDK now fails
    sys.modules["openai"] = None
    import anyio
    from llmcomm import Configuration, LLMCommunication, ProviderConfig

    async def main(anthropic_url, openai_url):
        config = Configuration(
            providers=[
                ProviderConfig(name="a", kind="anthropic", api_key="sk-test-0123456789", base_url=anthropic_url),
                ProviderConfig(name="o", kind="openai", api_key="sk-test-0123456789", base_url=openai_url),
            ]
        )
        async with LLMCommunication(config) as llm:
            print(await llm.generate_text("hi", provider="a"))
            print(await llm.generate_text("hi", provider="o"))

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def test_the_official_sdks_are_not_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {dependency.split(">")[0].split("=")[0].split("<")[0].strip() for dependency in project["dependencies"]}
    assert not names & {"anthropic", "openai"}
    assert {"anthropic>=2.10", "openai>=3.50"} <= set(project["optional-dependencies"]["sdk"])


def test_calls_work_on_both_wires_with_neither_sdk_importable() -> None:
    with FakeServer(default=Script(text="no SDK needed")) as server:
        result = subprocess.run(
            [sys.executable, "-c", RUN_WITHOUT_SDKS, server.anthropic_base_url, server.openai_base_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["no SDK needed", "no SDK needed"]
