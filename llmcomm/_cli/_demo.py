"""`llmcomm demo`: llmcomm against its built-in loopback simulator, no keys needed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from .._client import LLMCommunication
from .._config import Configuration, ProviderConfig
from ..testing import FakeServer, Script
from . import PROG, summarize

DEFAULT_PROMPT = "What is llmcomm?"
#: the simulated primary stays silent this long, well past the demo's fallback timeout
SILENCE = 30.0
FALLBACK_TIMEOUT = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo",
        description=(
            "Run llmcomm against the loopback simulator (a fake Anthropic and OpenAI server on "
            "127.0.0.1): a streamed reply, then a fallback from a silent provider to its backup."
        ),
    )
    parser.add_argument("prompt", nargs="*", help=f"what to ask (default: {DEFAULT_PROMPT!r})")
    return parser


def run_demo(argv: Sequence[str]) -> int:
    """`llmcomm demo [prompt]`: always 0 unless the simulator itself fails."""
    args = _parser().parse_args(argv)
    prompt = " ".join(args.prompt).strip() or DEFAULT_PROMPT
    # Starting takes a moment on a cold machine: say what is happening before it does.
    print(f"{PROG} demo — starting the loopback simulator on 127.0.0.1 …", flush=True)
    # The simulator serves from its own thread, so the demo's errors reach `main` as they are.
    with FakeServer() as server:
        print(f"{PROG} demo — the loopback simulator on 127.0.0.1:{server.port} stands in for two providers")
        anyio.run(_demo, server, prompt)
    print(
        "\nThat was the simulator. For a real model, set ANTHROPIC_API_KEY or OPENAI_API_KEY (OPENAI_BASE_URL "
        "for a compatible server; LLM_PROVIDERS for the order), or put `claude` on PATH, then: "
        'llmcomm "your question"'
    )
    return 0


def demo_config(server: FakeServer) -> Configuration:
    """Two simulated providers: "primary" (Anthropic wire protocol) and "backup" (OpenAI)."""
    return Configuration(
        providers=[
            ProviderConfig(
                name="primary",
                kind="anthropic",
                model="simulated-claude",
                api_key="sk-demo-not-a-real-key",
                base_url=server.anthropic_base_url,
            ),
            ProviderConfig(
                name="backup",
                kind="openai",
                model="simulated-gpt",
                api_key="sk-demo-not-a-real-key",
                base_url=server.openai_base_url,
            ),
        ],
        fallback_timeout=FALLBACK_TIMEOUT,
        max_retries=0,
    )


async def _demo(server: FakeServer, prompt: str) -> None:
    async with LLMCommunication(demo_config(server)) as llm:
        print(f"\n1. A streamed reply, token by token.\n> {prompt}")
        server.default = Script(
            text=(
                f"This reply comes from the simulator, one token at a time; a real model would "
                f"answer {prompt!r}. llmcomm streams Anthropic, OpenAI-compatible servers and the "
                f"Claude Code CLI through one interface, with fallback."
            ),
            token_delay=0.02,
        )
        async with llm.generate_stream(prompt) as stream:
            async for chunk in stream:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
        print()
        assert stream.response is not None
        print(summarize(stream.response))

        print(
            f"\n2. Fallback: the primary accepts the request but sends nothing; after "
            f"{FALLBACK_TIMEOUT:g} s the backup joins the race and wins."
        )
        server.route(model="simulated-claude", script=Script(delay_before_first_token=SILENCE))
        server.default = Script(text="The backup answered; the silent primary was cancelled.")
        response = await llm.generate_response("Are you there?")
        print(response.content)
        print(summarize(response))
        for attempt in response.attempts:
            ttft = f", first token after {attempt.time_to_first_token:.2f} s" if attempt.time_to_first_token else ""
            print(f"   {attempt.provider:8} {attempt.outcome:9} {attempt.seconds:.2f} s{ttft}")
