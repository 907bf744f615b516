"""The Claude CLI provider with odd input and odd output: slash commands, invisible prompts,
thinking, replies cut at max_tokens, undecodable lines, and a caller that dies mid-stream.

These run the scripted stand-in (`tests/claude_cli/fake_claude.py`); the same behaviour
against the real binary is in `test_claude_cli_real_reliability.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import aclosing
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication, SyncLLMCommunication
from llmcomm._types import Message, Request
from llmcomm.errors import InvalidRequestError, ProviderUnavailableError
from llmcomm.providers._claude_cli import ClaudeCLIProvider, effort_level
from llmcomm.providers._claude_cli_events import CLIStream
from llmcomm.providers._claude_cli_prompt import has_visible_text, literal_blocks, user_message_line

from .test_claude_cli import (
    BOUND,
    collect,
    config,
    dead,
    fake_cli,
    open_stream,
    read_record,
    record,
    request,
    scratch_dirs,
    wait_for,
)

__all__ = ["fake_cli", "record"]  # fixtures shared with test_claude_cli

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("private_tmp")]  # scratch dirs are counted

#: texts the CLI would run as a slash command if they were the last text block
SLASH_PROMPTS = [
    "/cost", "/help", "/unknown", "/init", "  /cost", "\n/clear", "//x", "/ /y", "/cost\nand more",
    "\ufeff/cost", "\u00a0\u3000/help",
]  # fmt: skip
#: texts with nothing the CLI keeps or a reader sees
INVISIBLE_PROMPTS = ["\ufeff", "\u200b", " \t\n", "\ufeff \u200d\u2060", "\x00\x01\x7f", "\u2028\u3000", "\u202e"]


# -- slash commands (case 37) ------------------------------------------------------


@pytest.mark.parametrize("text", SLASH_PROMPTS)
def test_a_slash_text_is_split_so_its_last_block_is_plain_text(text: str) -> None:
    blocks = literal_blocks(text)
    assert "".join(block["text"] for block in blocks) == text
    assert all(block["text"].strip() for block in blocks)  # the API refuses empty text blocks
    assert not blocks[-1]["text"].strip().startswith("/")


@pytest.mark.parametrize("text", ["Hello", "a /path in the middle", "", "/", "//", " / "])
def test_other_texts_stay_one_block(text: str) -> None:
    assert literal_blocks(text) == [{"type": "text", "text": text}]


async def test_slash_prompts_reach_the_cli_as_plain_text_blocks(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    for text in ["/cost", "  /help now"]:
        await collect(provider, request(text))
        seen = read_record(record)
        assert seen["stdin"] == text
        assert len(seen["blocks"]) == 2
        assert not seen["blocks"][-1]["text"].lstrip().startswith("/")


async def test_a_later_message_and_a_system_prompt_starting_with_a_slash_stay_text(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    messages = (Message("user", "/cost"), Message("assistant", "What?"), Message("user", "/help"))
    await collect(provider, Request(messages=messages, system="/clear --help"))
    seen = read_record(record)
    assert seen["stdin"] == "<transcript>\nHuman: /cost\n\nAssistant: What?\n</transcript>\n\n/help"
    assert seen["system"] == "/clear --help"
    assert "--system-prompt=/clear --help" in seen["argv"]  # one argument: never read as an option


def test_the_stdin_line_is_one_json_user_message() -> None:
    assert user_message_line(literal_blocks("/cost")) == (
        b'{"type":"user","message":{"role":"user","content":'
        b'[{"type":"text","text":"/"},{"type":"text","text":"cost"}]},"parent_tool_use_id":null}\n'
    )


# -- invisible prompts and usage errors (case 38) ------------------------------------


@pytest.mark.parametrize("text", INVISIBLE_PROMPTS)
def test_invisible_text_is_recognised(text: str) -> None:
    assert not has_visible_text(text)


@pytest.mark.parametrize("text", ["a", " \ufeffx", "\u200b1", "é", "\U0001f600", "\u0301"])
def test_visible_text_is_recognised(text: str) -> None:
    assert has_visible_text(text)


@pytest.mark.parametrize("text", INVISIBLE_PROMPTS)
async def test_an_invisible_prompt_is_refused_before_launch(fake_cli: str, tmp_path: Path, text: str) -> None:
    count = tmp_path / "starts"
    provider = ClaudeCLIProvider(config(fake_cli, FAKE_CLAUDE_COUNT=str(count)))
    with pytest.raises(InvalidRequestError, match="no visible text") as caught:
        await collect(provider, request(text))
    assert not caught.value.retryable
    assert not count.exists()  # nothing was started


async def test_a_cli_usage_error_is_invalid_request_not_retried_and_no_cooldown(fake_cli: str, tmp_path: Path) -> None:
    count = tmp_path / "starts"
    bad = config(fake_cli, "usage_error", FAKE_CLAUDE_COUNT=str(count))
    async with LLMCommunication(Configuration(providers=[bad], max_retries=3)) as llm:
        for _ in range(3):  # a cooldown would answer the later calls without starting the CLI
            with pytest.raises(InvalidRequestError, match="Input contained only whitespace"), anyio.fail_after(BOUND):
                await llm.generate_text("Say hi")
    assert len(count.read_text().split()) == 3  # once per call: never retried, never cooled down


async def test_an_unknown_option_says_to_update_the_cli(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "usage_error", FAKE_CLAUDE_STDERR="error: unknown option '--x'"))
    with pytest.raises(ProviderUnavailableError, match="install a current") as caught:
        await collect(provider)
    assert not caught.value.retryable


# -- thinking (case 39) ----------------------------------------------------------------


def _asking(effort: str | None) -> Request:
    return cast(Request, SimpleNamespace(reasoning_effort=effort))


def test_thinking_follows_reasoning_effort() -> None:
    assert effort_level(request()) is None  # no reasoning_effort: thinking off
    assert effort_level(_asking(None)) is None
    assert effort_level(_asking("none")) is None
    assert effort_level(_asking("minimal")) == "low"
    assert effort_level(_asking("xhigh")) == "xhigh"
    with pytest.raises(InvalidRequestError, match="reasoning_effort must be one of"):
        effort_level(_asking("extreme"))


@pytest.mark.parametrize("max_tokens", [50, 1024, 4096])
async def test_thinking_is_off_at_every_max_tokens(fake_cli: str, record: Path, max_tokens: int) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), request(max_tokens=max_tokens))
    seen = read_record(record)
    assert seen["env"]["MAX_THINKING_TOKENS"] == "0"
    assert seen["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == str(max_tokens)
    assert "--effort" not in seen["argv"]


# -- a reply cut at max_tokens (case 40) -----------------------------------------------


async def test_a_reply_cut_at_max_tokens_ends_once_and_the_child_is_killed(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "max_tokens", record=record, FAKE_CLAUDE_TEXT="cut short here"))
    started = time.monotonic()
    chunks = await collect(provider, request(max_tokens=7))
    took = time.monotonic() - started
    assert "".join(c.text for c in chunks) == "cut short here"  # once, without the follow-up's "AGAIN"
    closing = chunks[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == ("length", "max_tokens")
    assert closing.usage is not None
    assert (closing.usage.prompt_tokens, closing.usage.completion_tokens) == (11, 7)
    assert await wait_for(dead, read_record(record)["pid"])
    assert took < 0.3 + BOUND / 2  # killed at once, not after the follow-up and a grace period


async def test_the_one_response_spending_cap_ends_a_complete_reply(fake_cli: str) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "budget_stop", FAKE_CLAUDE_TEXT="all of it"))
    chunks = await collect(provider)
    assert "".join(c.text for c in chunks) == "all of it"
    closing = chunks[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == ("stop", "end_turn")
    assert closing.usage is not None
    assert (closing.usage.prompt_tokens, closing.usage.completion_tokens) == (11, 5)  # from the stream events


def test_the_spending_cap_without_any_response_is_an_error() -> None:
    state = CLIStream("cli", "m")
    capped = {"type": "result", "subtype": "error_max_budget_usd", "is_error": True, "usage": {}}
    state.handle(json.dumps(capped).encode())
    with pytest.raises(ProviderUnavailableError, match="error_max_budget_usd"):
        list(state.finish([]))


# -- undecodable lines (case 35) -------------------------------------------------------


async def test_a_surrogate_pair_split_over_two_deltas_is_joined(fake_cli: str) -> None:
    chunks = await collect(ClaudeCLIProvider(config(fake_cli, "split_surrogate")))
    text = "".join(c.text for c in chunks)
    assert text == "smile \U0001f600 done"
    text.encode("utf-8")  # every chunk is valid text


async def test_a_lost_line_that_changes_the_text_fails_loudly(fake_cli: str) -> None:
    with pytest.raises(ProviderUnavailableError, match="could not be decoded"):
        await collect(ClaudeCLIProvider(config(fake_cli, "lost_line")))


def _line(text: str) -> bytes:
    body = '{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"'
    return (body + text + '"}}}').encode()


def _result(text: str) -> bytes:
    return ('{"type":"result","is_error":false,"result":"' + text + '","usage":{}}').encode()


@pytest.mark.parametrize(
    ("pieces", "final", "expected"),
    [
        (["a", "\\ud83d", "\\ude00", "b"], "a\\ud83d\\ude00b", "a\U0001f600b"),  # split pair
        (["a\\ud83d\\ude00b"], "a\\ud83d\\ude00b", "a\U0001f600b"),  # whole pair, escaped
        (["a", "\\ud83d", "b"], "a\\ud83db", "a\ufffdb"),  # lone high surrogate
        (["a", "\\ude00b"], "a\\ude00b", "a\ufffdb"),  # lone low surrogate
        (["a", "\\ud83d"], "a\\ud83d\\ude00", "a\U0001f600"),  # pair completed only by the result
        (["a", "\\ud83d"], "a\\ud83d", "a\ufffd"),  # the stream ends on half a pair
    ],
)
def test_surrogates_from_the_lenient_decoder_are_repaired(pieces: list[str], final: str, expected: str) -> None:
    state = CLIStream("cli", "m")
    texts = [chunk.text for piece in pieces if (chunk := state.handle(_line(piece)))]
    assert state.handle(_result(final)) is None
    texts += [chunk.text for chunk in state.finish([])]
    assert "".join(texts) == expected


def test_invalid_utf8_on_stdout_becomes_the_replacement_character() -> None:
    state = CLIStream("cli", "m")
    chunk = state.handle(_line("ok ").replace(b"ok ", b"ok \xff\xfe!"))
    assert chunk is not None
    assert chunk.text == "ok \ufffd\ufffd!"


def test_usage_from_the_stream_takes_the_final_counts_of_message_delta() -> None:
    state = CLIStream("cli", "m")
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 0, "output_tokens": 1}}}
    stop = {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
            "usage": {"input_tokens": 40, "cache_read_input_tokens": 2, "output_tokens": 9}}  # fmt: skip
    for event in (start, stop):
        state.handle(json.dumps({"type": "stream_event", "event": event}).encode())
    assert state.truncated
    usage = state.truncated_end().usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens) == (42, 9, 2)


def test_a_lost_line_at_the_end_is_repaired_from_the_result() -> None:
    state = CLIStream("cli", "m")
    texts = [
        chunk.text
        for line in (_line("Hello"), b'{"type":"stream_event","event":{"broken')
        if (chunk := state.handle(line))
    ]
    state.handle(_result("Hello, world"))
    texts += [chunk.text for chunk in state.finish([])]
    assert "".join(texts) == "Hello, world"
    assert state.undecodable == 1


# -- the caller dies (case 36) ---------------------------------------------------------

_WORKER = """
import sys, anyio
from llmcomm import ProviderConfig
from llmcomm._types import Message, Request
from llmcomm.providers._claude_cli import ClaudeCLIProvider

async def main() -> None:
    config = ProviderConfig(name="cli", kind="claude_cli", cli_path=sys.argv[1], api_key="k",
                            base_url="http://127.0.0.1:9", env={"FAKE_CLAUDE_SCENARIO": "stall",
                            "FAKE_CLAUDE_RECORD": sys.argv[2]})
    async for chunk in ClaudeCLIProvider(config).stream(Request(messages=(Message("user", "hi"),))):
        print("FIRST", flush=True)
        await anyio.sleep(60)

anyio.run(main, backend=sys.argv[3])
"""


async def test_the_child_and_its_scratch_directory_go_when_the_caller_is_sigkilled(
    fake_cli: str, record: Path, anyio_backend: str
) -> None:
    before = scratch_dirs()
    command = [sys.executable, "-c", _WORKER, fake_cli, str(record), anyio_backend]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None) as worker:
        try:
            assert worker.stdout is not None
            with anyio.fail_after(BOUND + 5):
                first = await worker.stdout.receive()
            assert first.strip() == b"FIRST"
            child = read_record(record)["pid"]
            assert not dead(child)
            worker.kill()  # SIGKILL: no finally, no atexit runs in the caller
            killed = time.monotonic()
            with anyio.fail_after(5):
                await worker.wait()
            assert await wait_for(dead, child, bound=3.0)
            for _ in range(300):
                if not scratch_dirs() - before:
                    break
                await anyio.sleep(0.01)
            took = time.monotonic() - killed
        finally:
            if worker.returncode is None:
                worker.kill()
    assert not scratch_dirs() - before  # the watchdog removed the dead caller's scratch directory
    assert took < 3.0


# -- from the sync facade (a portal thread spawns the child) ---------------------------


def test_the_sync_facade_passes_slash_text_and_ends_the_child_of_a_closed_stream(fake_cli: str, record: Path) -> None:
    with SyncLLMCommunication(Configuration(providers=[config(fake_cli, record=record)], max_retries=0)) as llm:
        assert llm.generate_text("/cost") == "Hello, world"
        assert read_record(record)["stdin"] == "/cost"
    stalled = config(fake_cli, "stall", record=record)
    with SyncLLMCommunication(Configuration(providers=[stalled], max_retries=0)) as llm:
        stream = llm.generate_stream("Say hi")
        assert next(iter(stream)).text == "Hello"
        stream.close()
        pid = read_record(record)["pid"]
        deadline = time.monotonic() + 2.0
        while not dead(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dead(pid)


@pytest.mark.parametrize("scenario", ["success", "max_tokens", "ignore_term"])
async def test_without_an_interpreter_for_the_watchdog_the_child_is_still_ended(
    fake_cli: str, record: Path, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a frozen app: no interpreter to run the watchdog
    provider = ClaudeCLIProvider(config(fake_cli, scenario, record=record))
    with anyio.fail_after(BOUND):
        async with aclosing(open_stream(provider)) as chunks:
            first = await chunks.__anext__()
            if scenario != "ignore_term":
                async for _chunk in chunks:
                    pass
    assert first.text
    seen = read_record(record)
    assert seen["pgid"] == seen["pid"]  # the CLI leads its own group
    assert await wait_for(dead, seen["pid"])
