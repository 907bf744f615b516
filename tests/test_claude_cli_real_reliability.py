"""The Claude CLI provider's odd inputs and outputs, driving the real `claude` binary.

Each test checks, at `llmcomm.testing.FakeServer`, what the real CLI sent to the API:
slash texts arrive as text, no thinking is asked for, a reply cut at max_tokens is one
request, a caller killed with SIGKILL takes its CLI child with it. Skipped without the
binary (see `test_claude_cli_real.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication
from llmcomm._messages import normalise_finish_reason
from llmcomm._types import Message, Request, StreamChunk
from llmcomm.errors import InvalidRequestError
from llmcomm.providers._claude_cli import ClaudeCLIProvider
from llmcomm.testing import FakeServer, RecordedRequest, Script

from .test_claude_cli import dead, scratch_dirs
from .test_claude_cli_real import BOUND, MODEL, config, real_cli

__all__ = ["real_cli"]  # the fixture, shared with test_claude_cli_real

pytestmark = [pytest.mark.anyio, pytest.mark.real_cli, pytest.mark.usefixtures("private_tmp")]

DEFAULT_REPLY = Script().text


def api_requests(server: FakeServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path == "/v1/messages"]


def body_of(recorded: RecordedRequest) -> dict[str, Any]:
    assert isinstance(recorded.body, dict)
    return recorded.body


def user_text(body: dict[str, Any]) -> str:
    """All text of the last user message, its blocks joined as the model reads them."""
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def system_text(body: dict[str, Any]) -> str:
    return "".join(block.get("text", "") for block in body.get("system") or [])


async def run(provider: ClaudeCLIProvider, request: Request) -> list[StreamChunk]:
    with anyio.fail_after(BOUND):
        return [chunk async for chunk in provider.stream(request)]


def ask(text: str, **options: Any) -> Request:
    return Request(messages=(Message("user", text),), **options)


async def test_slash_texts_reach_the_model_as_text(real_cli: str) -> None:
    prompts = ["/cost", "/help", "/unknown", "  /clear", "/", "/init now", "\ufeff/cost"]
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        for prompt in prompts:
            server.reset()
            chunks = await run(provider, ask(prompt))
            sent = [user_text(body_of(r)) for r in api_requests(server)]
            assert (prompt, sent) == (prompt, [prompt])  # one request, the text verbatim
            assert "".join(c.text for c in chunks) == DEFAULT_REPLY  # the model's reply, not the CLI's


async def test_a_slash_system_prompt_and_later_message_reach_the_model(real_cli: str) -> None:
    messages = (Message("user", "/cost"), Message("assistant", "Which?"), Message("user", "/help"))
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        chunks = await run(provider, Request(messages=messages, system="/clear --help"))
        (recorded,) = api_requests(server)
    body = body_of(recorded)
    assert user_text(body).endswith("</transcript>\n\n/help")
    assert "Human: /cost" in user_text(body)
    assert system_text(body).endswith("/clear --help")
    assert "".join(c.text for c in chunks) == DEFAULT_REPLY


async def test_no_thinking_is_asked_for_at_any_max_tokens(real_cli: str) -> None:
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        for max_tokens in (50, 1024, 4096):
            server.reset()
            chunks = await run(provider, ask("Say hi.", max_tokens=max_tokens))
            (recorded,) = api_requests(server)
            body = body_of(recorded)
            assert body["max_tokens"] == max_tokens
            assert body.get("thinking", {"type": "disabled"}) == {"type": "disabled"}
            assert "".join(c.text for c in chunks) == DEFAULT_REPLY


async def test_a_reply_cut_at_max_tokens_is_one_request_and_the_text_once(real_cli: str) -> None:
    async with FakeServer(default=Script(text="partial answer here", stop_reason="max_tokens")) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        started = time.monotonic()
        chunks = await run(provider, ask("Write an essay.", max_tokens=50))
        took = time.monotonic() - started
        await anyio.sleep(0.5)  # room for a follow-up request, had the child lived on
        recorded = api_requests(server)
        assert len(recorded) == 1
        await server.wait_closed(recorded[0], timeout=2.0)
    assert "".join(c.text for c in chunks) == "partial answer here"
    closing = chunks[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == ("length", "max_tokens")
    assert closing.usage is not None
    assert closing.usage.completion_tokens == 3
    assert closing.usage.prompt_tokens > 0
    assert took < BOUND


async def test_an_invisible_prompt_and_an_api_400_are_invalid_requests_without_cooldown(real_cli: str) -> None:
    async with FakeServer() as server:
        provider_config = config(real_cli, server)
        async with LLMCommunication(Configuration(providers=[provider_config], max_retries=3)) as llm:
            for prompt in ("\ufeff", "\u200b\u2060", " \x00 "):
                with pytest.raises(InvalidRequestError, match="no visible text"):
                    await llm.generate_text(prompt)
            assert api_requests(server) == []
            # The CLI itself asks once more without streaming after an error: every answer is 400.
            server.route(model=MODEL, script=Script(status=400, error_message="messages: not acceptable"))
            with pytest.raises(InvalidRequestError, match="not acceptable") as caught, anyio.fail_after(BOUND):
                await llm.generate_text("Say hi.")
            assert caught.value.status_code == 400
            assert 1 <= len(api_requests(server)) <= 2  # one run of the CLI: llmcomm did not retry
            server.reset()
            with anyio.fail_after(BOUND):
                assert await llm.generate_text("Say hi.") == DEFAULT_REPLY  # no cooldown


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def _anthropic_body(pieces: list[str]) -> bytes:
    """A streamed Anthropic reply whose text deltas hold `pieces` as raw JSON string content."""
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}},
    }  # fmt: skip
    out = _sse("message_start", json.dumps(start))
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    out += _sse("content_block_start", json.dumps(block))
    for piece in pieces:
        delta = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"' + piece + '"}}'
        out += _sse("content_block_delta", delta)
    out += _sse("content_block_stop", '{"type":"content_block_stop","index":0}')
    stop = (
        '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}'
    )
    return out + _sse("message_delta", stop) + _sse("message_stop", '{"type":"message_stop"}')


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["smile ", "\\ud83d", "\\ude00", " done"], "smile \U0001f600 done"),  # a pair split over two deltas
        (["a ", "\\ud83d\\ude00", " b"], "a \U0001f600 b"),  # a whole pair, escaped
        (["lone ", "\\ud83d", " high"], "lone \ufffd high"),  # half a pair: the replacement character
    ],
)
async def test_surrogate_escapes_on_the_wire_reach_the_caller(real_cli: str, pieces: list[str], expected: str) -> None:
    script = Script(body_override=_anthropic_body(pieces), content_type="text/event-stream")
    async with FakeServer(default=script) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        chunks = await run(provider, ask("Smile please."))
    assert "".join(c.text for c in chunks) == expected


_WORKER = """
import sys, anyio
from llmcomm import ProviderConfig
from llmcomm._types import Message, Request
from llmcomm.providers._claude_cli import ClaudeCLIProvider

async def main() -> None:
    config = ProviderConfig(name="cli", kind="claude_cli", model="claude-sonnet-4-5", cli_path=sys.argv[1],
                            api_key="k", base_url=sys.argv[2], timeout=60)
    async for chunk in ClaudeCLIProvider(config).stream(Request(messages=(Message("user", "hi"),))):
        print("FIRST", flush=True)
        await anyio.sleep(60)

anyio.run(main, backend=sys.argv[3])
"""


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rpartition(")")[2].split()[1] == str(parent):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_the_cli_dies_with_a_caller_killed_by_sigkill(real_cli: str, anyio_backend: str) -> None:
    before = scratch_dirs()
    async with FakeServer(default=Script(tokens=20, stall_after=1)) as server:
        command = [sys.executable, "-c", _WORKER, real_cli, server.anthropic_base_url, anyio_backend]
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None) as worker:
            try:
                assert worker.stdout is not None
                with anyio.fail_after(BOUND):
                    first = await worker.stdout.receive()
                assert first.startswith(b"FIRST")
                (child,) = _children(worker.pid)  # the CLI, streaming
                worker.kill()
                killed = time.monotonic()
                with anyio.fail_after(5):
                    await worker.wait()
                for _ in range(300):
                    if dead(child) and not scratch_dirs() - before:
                        break
                    await anyio.sleep(0.01)
                took = time.monotonic() - killed
                assert dead(child)
                await server.wait_closed(api_requests(server)[-1], timeout=2.0)  # the API connection too
            finally:
                if worker.returncode is None:
                    worker.kill()
    assert not scratch_dirs() - before
    assert took < 3.0


async def test_other_stop_reasons_are_one_request_too(real_cli: str) -> None:
    for stop_reason in ("model_context_window_exceeded", "refusal", "pause_turn"):
        async with FakeServer(default=Script(text="some text", stop_reason=stop_reason)) as server:
            chunks = await run(ClaudeCLIProvider(config(real_cli, server)), ask("Go on."))
            await anyio.sleep(0.3)  # room for a follow-up request, had the CLI made one
            assert (stop_reason, len(api_requests(server))) == (stop_reason, 1)
        assert "".join(c.text for c in chunks) == "some text"
        assert chunks[-1].raw_finish_reason == stop_reason
        assert chunks[-1].finish_reason == normalise_finish_reason(stop_reason)
