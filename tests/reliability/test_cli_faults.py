"""The Claude Code CLI's failures, through `LLMCommunication`, against the fake `claude` executable.

Each row is one way the child misbehaves. A row states the outcome, how long the
call may take, how many children were started, and the partial text when the
stream had started; after every row the child is reaped, its scratch directory is
gone, and the canary key was in its environment but never in its command line.
"""

from __future__ import annotations

import json
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmcomm import (
    AuthenticationError,
    LLMCommunication,
    LLMException,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)

from ..helpers import config, refused_url
from ._support import CANARIES, LogCapture, error_texts, find_canaries

pytestmark = pytest.mark.anyio

FAKE = Path(__file__).parent.parent / "claude_cli" / "fake_claude.py"
CANARY = CANARIES["claude_cli"]


@dataclass(frozen=True)
class CLIRow:
    """One way the CLI child misbehaves and what llmcomm must make of it."""

    id: str
    #: the fake's FAKE_CLAUDE_SCENARIO; None: no executable at the configured path
    scenario: str | None
    error: type[LLMException] | None
    within: float
    text: str | None = None
    match: str | None = None
    status: int | None = None
    at_least: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    settings: dict[str, Any] = field(default_factory=dict)


ROWS = [
    CLIRow("missing-binary", None, ProviderUnavailableError, 0.5, match="claude CLI not found"),
    CLIRow("exit-1-is-error-401", "api_error", AuthenticationError, 3.0, status=401, env={"FAKE_CLAUDE_STATUS": "401"}),
    CLIRow("exit-1-is-error-429", "api_error", RateLimitError, 3.0, status=429, env={"FAKE_CLAUDE_STATUS": "429"}),
    CLIRow("exit-1-is-error-529", "api_error", ProviderUnavailableError, 3.0, status=529,
           env={"FAKE_CLAUDE_STATUS": "529"}),
    CLIRow("garbage-on-stdout", "garbage", None, 3.0, text="Hello, world"),
    CLIRow("hang-after-result", "hang_after_result", None, 3.0, text="Hello, world"),
    CLIRow("killed-by-a-signal", "crash", StreamInterruptedError, 3.0, text="Hello, ", match="killed by signal SIGKILL"),
    CLIRow("exit-without-result", "interrupted", StreamInterruptedError, 3.0, text="Hello, ",
           match="exited with code 3"),
    CLIRow("oversized-line", "oversized", ProviderUnavailableError, 3.0, match="over 1048576 bytes"),
    CLIRow("silent-child", "slow", ProviderUnavailableError, 2.0, at_least=0.45, timeout=0.5,
           env={"FAKE_CLAUDE_DELAY": "30"}),
    CLIRow("stall-mid-stream", "stall", StreamInterruptedError, 2.0, at_least=0.45, text="Hello",
           settings={"stream_idle_timeout": 0.5}),
    # SIGTERM is ignored: SIGKILL follows after the one-second grace
    CLIRow("stall-ignoring-sigterm", "ignore_term", StreamInterruptedError, 3.0, at_least=1.4, text="Hello",
           settings={"stream_idle_timeout": 0.5}),
]  # fmt: skip


@pytest.fixture(scope="module")
def fake_cli() -> str:
    mode = FAKE.stat().st_mode
    if not mode & stat.S_IXUSR:  # a checkout may drop the executable bit
        FAKE.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(FAKE)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_cli_fault(fake_cli: str, tmp_path: Path, row: CLIRow, debug_log: LogCapture) -> None:
    record = tmp_path / "record.json"
    cli = ProviderConfig(
        name="cli",
        kind="claude_cli",
        cli_path=fake_cli if row.scenario else str(tmp_path / "missing" / "claude"),
        api_key=CANARY,
        base_url=refused_url(),  # the fake never connects; a real CLI would find nothing there
        timeout=row.timeout,
        env={"FAKE_CLAUDE_SCENARIO": row.scenario or "", "FAKE_CLAUDE_RECORD": str(record), **row.env},
    )
    received: list[str] = []
    error: LLMException | None = None
    async with LLMCommunication(config(cli, **row.settings)) as llm:
        started = time.monotonic()
        try:
            async with llm.generate_stream("hi") as stream:
                async for chunk in stream:
                    received.append(chunk.text)
        except LLMException as exc:
            error = exc
        elapsed = time.monotonic() - started

    assert row.at_least <= elapsed < row.within, f"took {elapsed:.3f} s"
    assert record.exists() == (row.scenario is not None)  # children started: one, or none
    if record.exists():
        seen = json.loads(record.read_text(encoding="utf-8"))
        assert not Path(f"/proc/{seen['pid']}").exists()  # reaped, no zombie
        assert not Path(seen["env"]["HOME"]).exists()  # its scratch directory is gone
        assert seen["env"]["ANTHROPIC_API_KEY"] == CANARY  # the key reached the child...
        assert not any(CANARY in part for part in seen["cmdline"] + seen["argv"])  # ...never through argv
    if row.error is None:
        assert error is None, f"unexpected {error!r}"
        assert stream.response is not None
        assert stream.response.content == "".join(received) == row.text
        return
    assert type(error) is row.error, f"expected {row.error.__name__}, got {error!r}"
    assert error.provider == "cli"
    if row.match is not None:
        assert row.match in str(error)
    if row.status is not None:
        assert error.status_code == row.status
    if isinstance(error, StreamInterruptedError):
        assert error.partial_text == "".join(received) == row.text
    else:
        assert received == []
    leaked = find_canaries(error_texts(error))
    assert not leaked, "\n".join(leaked)
