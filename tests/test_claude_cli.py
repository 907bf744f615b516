"""The Claude Code CLI provider against a fake `claude` executable (tests/claude_cli/fake_claude.py)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication, ProviderConfig
from llmcomm._secrets import mask_secret
from llmcomm._types import Message, Request, StreamChunk
from llmcomm.errors import (
    AuthenticationError,
    InvalidRequestError,
    LLMException,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from llmcomm.providers._claude_cli import ClaudeCLIProvider
from llmcomm.providers._claude_cli_process import SCRATCH_PREFIX
from llmcomm.providers._claude_cli_prompt import render_prompt

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("private_tmp")]  # scratch dirs are counted

FAKE = Path(__file__).parent / "claude_cli" / "fake_claude.py"
KEY = "sk-ant-test-0123456789abcdef"
#: the longest any single fake run may take in these tests
BOUND = 5.0


@pytest.fixture(scope="session")
def fake_cli() -> str:
    mode = FAKE.stat().st_mode
    if not mode & stat.S_IXUSR:  # a checkout may drop the executable bit
        FAKE.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(FAKE)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.json"


def config(
    fake_cli: str,
    scenario: str = "success",
    *,
    record: Path | None = None,
    api_key: str | None = KEY,
    base_url: str | None = "http://127.0.0.1:9",
    timeout: float = 30.0,
    **env: str,
) -> ProviderConfig:
    variables = {"FAKE_CLAUDE_SCENARIO": scenario, **env}
    if record is not None:
        variables["FAKE_CLAUDE_RECORD"] = str(record)
    return ProviderConfig(
        name="cli",
        kind="claude_cli",
        cli_path=fake_cli,
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        env=variables,
    )


def request(prompt: str = "Say hi", **options: Any) -> Request:
    return Request(messages=(Message("user", prompt),), **options)


async def collect(provider: ClaudeCLIProvider, req: Request | None = None) -> list[StreamChunk]:
    with anyio.fail_after(BOUND):
        return [chunk async for chunk in provider.stream(req or request())]


def open_stream(provider: ClaudeCLIProvider, req: Request | None = None) -> AsyncGenerator[StreamChunk, None]:
    chunks = provider.stream(req or request())
    assert isinstance(chunks, AsyncGenerator)
    return chunks


def read_record(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def gone(pid: int) -> bool:
    """Whether `pid` has exited and been reaped: no process, no zombie."""
    return not Path(f"/proc/{pid}").exists()


async def wait_for(check: Callable[[int], bool], pid: int, bound: float = 1.0) -> bool:
    for _ in range(round(bound / 0.01)):
        if check(pid):
            return True
        await anyio.sleep(0.01)
    return check(pid)


def scratch_dirs() -> set[str]:
    """The CLI scratch directories in the temporary directory (a test's own: `private_tmp`)."""
    return {str(path) for path in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*")}


def dead(pid: int) -> bool:
    """Whether `pid` no longer runs: gone, or a zombie waiting for whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: reaped between open and read
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def facade(provider_config: ProviderConfig) -> LLMCommunication:
    return LLMCommunication(Configuration(providers=[provider_config], max_retries=0))


# -- the happy path -------------------------------------------------------------------


async def test_streams_text_then_a_closing_chunk_with_usage(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli))
    chunks = await collect(provider)
    assert [c.text for c in chunks] == ["Hello, ", "world", ""]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert {c.provider for c in chunks} == {"cli"}
    assert {c.model for c in chunks} == {"fake-model-1"}  # from message_start
    closing = chunks[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == ("stop", "end_turn")
    assert closing.usage is not None
    assert dict(closing.usage) == {"prompt_tokens": 16, "completion_tokens": 5, "total_tokens": 21}
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert provider.last_result is not None
    assert provider.last_result["total_cost_usd"] == pytest.approx(0.00042)


async def test_reply_text_follows_the_script(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, FAKE_CLAUDE_TEXT="one two  three"))
    chunks = await collect(provider)
    assert [c.text for c in chunks] == ["one ", "two  ", "three", ""]


async def test_argv_environment_and_stdin(fake_cli: str, record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCOMM_UNRELATED_SECRET", "do-not-pass")
    monkeypatch.setenv("LANG", "C.UTF-8")
    provider = ClaudeCLIProvider(config(fake_cli, record=record, timeout=42.5))
    await collect(provider, request("What is 2+2?"))
    seen = read_record(record)
    argv, env = seen["argv"], seen["env"]
    assert argv == [
        "-p", "--bare", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
        "--include-partial-messages", "--replay-user-messages", "--tools", "", "--no-session-persistence", "--max-turns", "1",
        "--strict-mcp-config", "--max-budget-usd", "0.0000001", "--model", "sonnet",
    ]  # fmt: skip
    assert seen["stdin"] == "What is 2+2?"
    assert seen["blocks"] == [{"type": "text", "text": "What is 2+2?"}]
    assert not any(KEY in part for part in seen["cmdline"])
    assert env["ANTHROPIC_API_KEY"] == KEY
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["API_TIMEOUT_MS"] == "42500"
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "4096"
    assert env["MAX_THINKING_TOKENS"] == "0"  # no hidden thinking unless asked for
    assert env["LANG"] == "C.UTF-8"
    assert env["PATH"].endswith(os.environ["PATH"])  # a pyenv shim running the fake may prepend to it
    assert "LLMCOMM_UNRELATED_SECRET" not in env
    home = Path(env["HOME"])
    assert seen["cwd"] == str(home)
    assert Path(env["CLAUDE_CODE_TMPDIR"]).parent == home.parent == Path(env["XDG_RUNTIME_DIR"]).parent
    assert seen["pgid"] == seen["ppid"] != os.getpgid(0)  # its own process group, led by its watchdog
    assert not home.parent.exists()  # the private directory is removed after the call


async def test_the_api_key_is_never_in_the_live_command_line(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "stall", record=record))
    with anyio.fail_after(BOUND):
        async with aclosing(open_stream(provider)) as chunks:
            await chunks.__anext__()
            pid = read_record(record)["pid"]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert KEY.encode() not in cmdline
    assert b"--model\0sonnet" in cmdline
    assert KEY.encode() in environ  # it travels in the environment instead
    assert gone(pid)


async def test_request_options_reach_the_cli(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    await collect(provider, request(model="claude-other", max_tokens=77, system="Be brief."))
    seen = read_record(record)
    argv = seen["argv"]
    assert argv[argv.index("--model") + 1] == "claude-other"
    assert "--system-prompt=Be brief." in argv
    assert seen["system"] == "Be brief."
    assert seen["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "77"


async def test_a_long_system_prompt_goes_through_a_file(fake_cli: str, record: Path) -> None:
    system = "Rule. " * 20_000  # 120 KB: close to Linux's cap on one argument
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    await collect(provider, request(system=system))
    seen = read_record(record)
    assert "--system-prompt" not in seen["argv"]
    assert seen["system_file"] == system
    assert not Path(seen["argv"][seen["argv"].index("--system-prompt-file") + 1]).exists()


async def test_history_is_rendered_as_a_transcript(fake_cli: str, record: Path) -> None:
    messages = (
        Message("user", "Hi, I am Ada."),
        Message("assistant", "Hello Ada."),
        Message("user", "What is my name?"),
    )
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    await collect(provider, Request(messages=messages))
    expected = "<transcript>\nHuman: Hi, I am Ada.\n\nAssistant: Hello Ada.\n</transcript>\n\nWhat is my name?"
    assert read_record(record)["stdin"] == expected
    assert render_prompt(messages) == expected
    assert render_prompt(messages[:1]) == "Hi, I am Ada."


async def test_config_env_comes_last(fake_cli: str, record: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    provider = ClaudeCLIProvider(config(fake_cli, record=record, HOME=str(home), CLAUDE_CODE_MAX_RETRIES="1"))
    await collect(provider)
    env = read_record(record)["env"]
    assert env["HOME"] == str(home)
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1"
    assert home.exists()  # a caller's HOME is never removed


async def test_credentials_of_this_process_are_used_only_without_configured_ones(
    fake_cli: str, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "inherited-key-0123456789")
    await collect(ClaudeCLIProvider(config(fake_cli, record=record, api_key=None, base_url=None)))
    seen = read_record(record)
    assert seen["env"]["ANTHROPIC_API_KEY"] == "inherited-key-0123456789"
    assert "--bare" in seen["argv"]

    await collect(ClaudeCLIProvider(config(fake_cli, record=record)))
    assert read_record(record)["env"]["ANTHROPIC_API_KEY"] == KEY

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    await collect(ClaudeCLIProvider(config(fake_cli, record=record, api_key=None, base_url=None)))
    seen = read_record(record)
    assert "ANTHROPIC_API_KEY" not in seen["env"]
    assert "--bare" not in seen["argv"]  # the CLI may then use its own login


async def test_repr_masks_the_key(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli))
    assert KEY not in repr(provider)
    assert repr(provider).startswith("ClaudeCLIProvider(ProviderConfig(name='cli', kind='claude_cli'")
    assert provider.kind == "claude_cli"
    assert provider.model == "sonnet"
    await provider.aclose()


# -- odd output -----------------------------------------------------------------------


async def test_garbage_and_unknown_lines_are_ignored(fake_cli: str) -> None:
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "garbage")))
    assert [c.reasoning for c in chunks if c.reasoning] == ["hm"]  # the one thinking_delta among them
    assert [c.text for c in chunks if not c.reasoning] == ["Hello", ", world", ""]
    assert (chunks[-1].finish_reason, chunks[-1].raw_finish_reason) == ("stop", "end_turn")


async def test_result_text_completes_deltas_that_fell_short(fake_cli: str) -> None:
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "result_differs")))
    assert [c.text for c in chunks] == ["Hello", ", world", ""]
    assert [c.index for c in chunks] == [0, 1, 2]


async def test_result_text_that_contradicts_the_deltas_is_not_sent(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "result_replaced"))
    chunks = await collect(provider)
    assert [c.text for c in chunks] == ["Partial answer", ""]
    assert provider.last_result is not None
    assert provider.last_result["result"] == "A different answer"


async def test_result_text_without_deltas_is_sent_whole(fake_cli: str) -> None:
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "result_only")))
    assert [c.text for c in chunks] == ["Hello, world", ""]


async def test_a_flood_on_stderr_does_not_block_the_child(fake_cli: str) -> None:
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "stderr_flood")))
    assert "".join(c.text for c in chunks) == "Hello, world"


# -- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitError),
        (529, ProviderUnavailableError),
        (500, ProviderUnavailableError),
        (400, InvalidRequestError),
    ],
)
async def test_api_errors_map_to_the_error_tree(fake_cli: str, status: int, error_type: type[LLMException]) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "api_error", FAKE_CLAUDE_STATUS=str(status)))
    with pytest.raises(error_type) as caught:
        await collect(provider)
    error = caught.value
    assert type(error) is error_type
    assert error.status_code == status
    assert error.provider == "cli"
    assert KEY not in str(error)  # the CLI echoed the key: it is masked
    assert mask_secret(KEY) in str(error)
    assert provider.last_result is not None
    assert provider.last_result["is_error"] is True


async def test_exit_without_result_reports_code_and_stderr(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "interrupted"))
    texts: list[str] = []
    with pytest.raises(ProviderUnavailableError) as caught, anyio.fail_after(BOUND):
        async for chunk in provider.stream(request()):
            texts.append(chunk.text)
    assert texts == ["Hello", ", "]
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "fatal: the connection to the API was lost" in message
    assert caught.value.retryable


async def test_a_child_killed_by_a_signal_is_reported(fake_cli: str) -> None:
    with pytest.raises(ProviderUnavailableError, match="killed by signal SIGKILL"):
        await collect(ClaudeCLIProvider(config(fake_cli, "crash")))


async def test_an_oversized_line_is_refused_and_the_child_stopped(fake_cli: str, record: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match="over 1048576 bytes") as caught:
        await collect(ClaudeCLIProvider(config(fake_cli, "oversized", record=record)))
    assert time.monotonic() - started < 1.5
    assert not caught.value.retryable
    assert gone(read_record(record)["pid"])


async def test_silence_longer_than_the_timeout_fails(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "slow", record=record, timeout=2.0, FAKE_CLAUDE_DELAY="10"))
    with pytest.raises(ProviderUnavailableError, match=r"wrote nothing for 2 s"):
        await collect(provider)
    assert gone(read_record(record)["pid"])


async def test_a_missing_binary_fails_fast_and_is_not_retryable(tmp_path: Path) -> None:
    provider = ClaudeCLIProvider(ProviderConfig(name="cli", kind="claude_cli", cli_path=str(tmp_path / "nope")))
    scratch_before = scratch_dirs()
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(provider)
    elapsed = time.monotonic() - started
    assert elapsed < 0.1
    assert not caught.value.retryable
    assert "claude CLI not found at" in str(caught.value)
    assert "CLAUDE_CLI_PATH" in str(caught.value)
    assert scratch_dirs() <= scratch_before


async def test_a_file_that_is_not_executable_is_reported_as_not_found(tmp_path: Path) -> None:
    path = tmp_path / "claude"
    path.write_text("#!/bin/sh\n")
    provider = ClaudeCLIProvider(ProviderConfig(name="cli", kind="claude_cli", cli_path=str(path)))
    with pytest.raises(ProviderUnavailableError, match="claude CLI not found at") as caught:
        await collect(provider)
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "req",
    [
        pytest.param(Request(messages=(Message("user", "lone \ud800 surrogate"),)), id="surrogate-prompt"),
        pytest.param(request(system="nul \0 in the system prompt"), id="nul-system"),
        pytest.param(request(model="nul\0model"), id="nul-model"),
    ],
)
async def test_input_that_cannot_reach_the_child_is_refused(fake_cli: str, record: Path, req: Request) -> None:
    scratch_before = scratch_dirs()
    with pytest.raises(InvalidRequestError):
        await collect(ClaudeCLIProvider(config(fake_cli, record=record)), req)
    assert not record.exists()  # no child was started
    assert scratch_dirs() <= scratch_before


# -- the child's end ------------------------------------------------------------------


async def test_a_hang_after_the_result_does_not_delay_the_reply(fake_cli: str, record: Path) -> None:
    started = time.monotonic()
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "hang_after_result", record=record)))
    assert time.monotonic() - started < 1.0
    assert (chunks[-1].finish_reason, chunks[-1].raw_finish_reason) == ("stop", "end_turn")
    assert gone(read_record(record)["pid"])


async def test_closing_the_stream_early_ends_the_child(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "stall", record=record))
    with anyio.fail_after(BOUND):
        async with aclosing(open_stream(provider)) as chunks:
            first = await chunks.__anext__()
            pid = read_record(record)["pid"]
            assert not gone(pid)
            closing_started = time.monotonic()
        closing_took = time.monotonic() - closing_started
    assert first.text == "Hello"
    assert gone(pid)
    assert closing_took < 0.5
    assert not Path(read_record(record)["env"]["HOME"]).exists()


async def test_cancellation_mid_stream_ends_the_child(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "stall", record=record))
    texts: list[str] = []
    with anyio.fail_after(BOUND), anyio.CancelScope() as scope:
        async with aclosing(open_stream(provider)) as chunks:
            async for chunk in chunks:
                texts.append(chunk.text)
                scope.cancel()  # cancelled while the stream is open, waiting for more
                await anyio.sleep(1)
    assert scope.cancelled_caught
    assert texts == ["Hello"]
    assert gone(read_record(record)["pid"])


async def test_a_child_that_ignores_sigterm_is_killed(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "ignore_term", record=record))
    with anyio.fail_after(BOUND):
        async with aclosing(open_stream(provider)) as chunks:
            await chunks.__anext__()
            started = time.monotonic()
        took = time.monotonic() - started
    assert gone(read_record(record)["pid"])
    assert 0.9 < took < 1.8  # SIGTERM, a grace of one second, then SIGKILL


async def test_the_whole_process_group_is_ended(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "grandchild", record=record))
    with anyio.fail_after(BOUND):
        async with aclosing(open_stream(provider)) as chunks:
            await chunks.__anext__()
            grandchild = int(Path(f"{record}.child").read_text())
            assert not gone(grandchild)
    assert gone(read_record(record)["pid"])
    # The grandchild was adopted by init when its parent died; reaping it is init's job.
    assert await wait_for(dead, grandchild)  # the signal reached the whole group


async def test_a_slow_start_still_streams(fake_cli: str) -> None:
    started = time.monotonic()
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "slow", FAKE_CLAUDE_DELAY="0.3")))
    assert time.monotonic() - started >= 0.3
    assert "".join(c.text for c in chunks) == "Hello, world"


# -- through LLMCommunication ---------------------------------------------------------


async def test_generate_text(fake_cli: str) -> None:
    async with facade(config(fake_cli)) as llm:
        with anyio.fail_after(BOUND):
            assert await llm.generate_text("Say hi") == "Hello, world"


async def test_generate_stream_chunks_and_response(fake_cli: str) -> None:
    async with facade(config(fake_cli)) as llm:
        with anyio.fail_after(BOUND):
            async with llm.generate_stream("Say hi", system="Be brief.") as stream:
                texts = [chunk.text async for chunk in stream]
    assert texts[:2] == ["Hello, ", "world"]
    response = stream.response
    assert response is not None
    assert response.content == "Hello, world"
    assert response.provider == "cli"
    assert response.model == "fake-model-1"
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "end_turn")
    assert dict(response.usage) == {"prompt_tokens": 16, "completion_tokens": 5, "total_tokens": 21}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, AuthenticationError), (429, RateLimitError), (529, ProviderUnavailableError)],
)
async def test_facade_raises_the_mapped_error(fake_cli: str, status: int, error_type: type[LLMException]) -> None:
    async with facade(config(fake_cli, "api_error", FAKE_CLAUDE_STATUS=str(status))) as llm:
        with pytest.raises(error_type) as caught, anyio.fail_after(BOUND):
            await llm.generate_text("Say hi")
    assert caught.value.status_code == status


async def test_facade_missing_binary_fails_fast(tmp_path: Path) -> None:
    cli = ProviderConfig(name="cli", kind="claude_cli", cli_path=str(tmp_path / "missing" / "claude"))
    async with LLMCommunication(Configuration(providers=[cli])) as llm:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError, match="claude CLI not found"):
            await llm.generate_text("Say hi")
        assert time.monotonic() - started < 0.1


async def test_facade_failure_mid_stream_keeps_the_partial_text(fake_cli: str) -> None:
    async with facade(config(fake_cli, "interrupted")) as llm:
        with pytest.raises(StreamInterruptedError) as caught, anyio.fail_after(BOUND):
            await llm.generate_text("Say hi")
    assert caught.value.partial_text == "Hello, "


async def test_facade_break_mid_stream_ends_the_child(fake_cli: str, record: Path) -> None:
    async with facade(config(fake_cli, "stall", record=record)) as llm:
        with anyio.fail_after(BOUND):
            async with llm.generate_stream("Say hi") as stream:
                async for chunk in stream:
                    assert chunk.text == "Hello"
                    break
            pid = read_record(record)["pid"]
            assert gone(pid)  # closing the stream waited for the child to be reaped


async def test_facade_cancellation_mid_stream_ends_the_child(fake_cli: str, record: Path) -> None:
    async with facade(config(fake_cli, "stall", record=record)) as llm:
        with anyio.fail_after(BOUND), anyio.CancelScope() as scope:
            async with llm.generate_stream("Say hi") as stream:
                async for _chunk in stream:
                    scope.cancel()  # cancelled while the stream is open, waiting for more
                    await anyio.sleep(1)
        assert scope.cancelled_caught
        assert await wait_for(gone, read_record(record)["pid"])


async def test_facade_env_carries_no_retry_setting_and_no_key_in_argv(fake_cli: str, record: Path) -> None:
    async with facade(config(fake_cli, record=record)) as llm:
        with anyio.fail_after(BOUND):
            await llm.generate_text([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}])
    seen = read_record(record)
    assert seen["env"]["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert not any(KEY in part for part in seen["argv"] + seen["cmdline"])
    assert seen["system"] == "Be terse."
    assert seen["stdin"] == "Hi"
