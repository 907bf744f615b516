"""The Claude Code CLI provider driving the real `claude` binary against `llmcomm.testing.FakeServer`.

Install the binary once with `python tests/claude_cli/install.py`. Without it these
tests are skipped, except under CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication, ProviderConfig
from llmcomm._types import Message, Request, StreamChunk
from llmcomm.errors import AuthenticationError, LLMException, ProviderUnavailableError
from llmcomm.providers._claude_cli import ClaudeCLIProvider
from llmcomm.testing import FakeServer, Script
from tests.claude_cli.install import PREFIX, SKIP_VARIABLE, candidates, in_ci, skip_requested

pytestmark = [pytest.mark.anyio, pytest.mark.real_cli]

MODEL = "claude-sonnet-4-5"
#: the longest one run of the binary may take here (it takes about a second)
BOUND = 15.0


def _locate() -> Path | None:
    return next((path for path in candidates() if path.is_file() and os.access(path, os.X_OK)), None)


@pytest.fixture(scope="module")
def real_cli() -> str:
    if skip_requested():
        pytest.skip(f"{SKIP_VARIABLE} is set: the real claude CLI tests are skipped")
    path = _locate()
    if path is None:
        reason = (
            f"THE REAL CLAUDE CLI IS NOT INSTALLED in {PREFIX}: "
            "run `python tests/claude_cli/install.py` to run these tests"
        )
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return str(path)


def config(real_cli: str, server: FakeServer, *, timeout: float = 30.0) -> ProviderConfig:
    return ProviderConfig(
        name="cli",
        kind="claude_cli",
        model=MODEL,
        cli_path=real_cli,
        base_url=server.anthropic_base_url,
        api_key="test-key",
        timeout=timeout,
    )


def request(prompt: str = "Say hello.") -> Request:
    return Request(messages=(Message("user", prompt),))


def open_stream(provider: ClaudeCLIProvider, req: Request | None = None) -> AsyncGenerator[StreamChunk, None]:
    chunks = provider.stream(req or request())
    assert isinstance(chunks, AsyncGenerator)
    return chunks


def children() -> list[int]:
    """The pids of this process's children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(entry.name))
    return found


async def test_streams_text_and_usage(real_cli: str) -> None:
    text = "Hello from the real command line."
    async with FakeServer(default=Script(text=text)) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        with anyio.fail_after(BOUND):
            chunks = [
                c async for c in provider.stream(Request(messages=(Message("user", "Greet me."),), system="Be brief."))
            ]
        recorded = server.requests
    assert "".join(c.text for c in chunks) == text
    assert len(chunks) > 2  # streamed, not delivered whole
    closing = chunks[-1]
    assert closing.text == ""
    assert (closing.finish_reason, closing.raw_finish_reason) == ("stop", "end_turn")
    assert closing.model == MODEL
    assert closing.usage is not None
    assert closing.usage.prompt_tokens > 0
    assert closing.usage.completion_tokens == len(chunks) - 1
    assert provider.last_result is not None
    assert "total_cost_usd" in provider.last_result
    api = [r for r in recorded if r.path == "/v1/messages"]
    assert len(api) == 1
    assert api[0].headers["x-api-key"] == "test-key"
    assert isinstance(api[0].body, dict)
    assert api[0].body["model"] == MODEL
    assert api[0].body["max_tokens"] == 4096
    assert api[0].body["stream"] is True


async def test_through_llm_communication(real_cli: str) -> None:
    async with FakeServer(default=Script(text="Paris is the capital.")) as server:
        llm = LLMCommunication(Configuration(providers=[config(real_cli, server)], max_retries=0))
        async with llm:
            with anyio.fail_after(BOUND):
                response = await llm.generate_response(
                    [
                        {"role": "user", "content": "I am in France."},
                        {"role": "assistant", "content": "Nice."},
                        {"role": "user", "content": "What is the capital?"},
                    ]
                )
        body = server.requests[-1].body
    assert response.content == "Paris is the capital."
    assert response.provider == "cli"
    assert response.usage.completion_tokens == 4
    assert isinstance(body, dict)
    sent = str(body["messages"])
    assert "Human: I am in France." in sent
    assert "What is the capital?" in sent


@pytest.mark.parametrize(("status", "error_type"), [(401, AuthenticationError), (529, ProviderUnavailableError)])
async def test_api_errors(real_cli: str, status: int, error_type: type[LLMException]) -> None:
    async with FakeServer(default=Script(status=status)) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        with pytest.raises(error_type) as caught, anyio.fail_after(BOUND):
            async for _chunk in provider.stream(request()):
                pass
        assert server.request_count == 1  # CLAUDE_CODE_MAX_RETRIES=0: llmcomm owns retries
    assert caught.value.status_code == status
    assert "test-key" not in str(caught.value)


async def test_an_sse_error_mid_stream_still_yields_the_whole_text(real_cli: str) -> None:
    text = "one two three four five six"
    async with FakeServer(default=Script(text=text, sse_error_after=2)) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        with anyio.fail_after(BOUND):
            chunks = [c async for c in provider.stream(request())]
        assert server.request_count == 2  # the CLI asked again, without streaming
    assert "".join(c.text for c in chunks) == text


async def test_cancellation_mid_stream_leaves_no_process(real_cli: str) -> None:
    async with FakeServer(default=Script(tokens=20, stall_after=3)) as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        before = set(children())
        texts: list[str] = []
        with anyio.fail_after(BOUND):
            async with aclosing(open_stream(provider)) as chunks:
                async for chunk in chunks:
                    texts.append(chunk.text)
                    if len(texts) == 3:
                        break
                started = set(children()) - before
                assert len(started) == 1
            (pid,) = started
            assert not Path(f"/proc/{pid}").exists()  # ended and reaped: no zombie
            assert set(children()) <= before
            await server.wait_closed(server.requests[-1], timeout=2.0)
    assert texts == ["tok0 ", "tok1 ", "tok2 "]
