"""A tour of llmcomm in one runnable file.

    python examples/example.py

With provider credentials in the environment (or in `.env`: copy examples/example.env
there and fill it in) the tour talks to the real providers. Without any, it starts
llmcomm's loopback simulator (`llmcomm.testing.FakeServer`, a fake Anthropic and
OpenAI server on 127.0.0.1) and says so in its first line; then it needs no network
and finishes in a few seconds.

The stops, in order: `generate_text`, `generate_response`, streaming to the terminal,
forcing one provider, a fallback, the blocking facade, the legacy `SimpleLLMService`,
and a metrics snapshot.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import ExitStack

import anyio

from llmcomm import (
    Configuration,
    ConfigurationError,
    LLMCommunication,
    LLMException,
    LLMMessage,
    LLMResponse,
    ProviderConfig,
    SimpleLLMService,
    SyncLLMCommunication,
)
from llmcomm.testing import FakeServer, Script

#: replies stay short: with real providers every stop costs a few tokens
MAX_TOKENS = 120


class Tour:
    """The configuration the tour uses and, in simulator mode, the simulator behind it."""

    def __init__(self, config: Configuration, server: FakeServer | None) -> None:
        self.config = config
        self.server = server

    def simulate(self, text: str, token_delay: float = 0.01) -> None:
        """Simulator mode only: what the simulated provider answers next (real providers answer for themselves)."""
        if self.server is not None:
            self.server.enqueue(Script(text=text, token_delay=token_delay))

    def fallback_config(self) -> Configuration:
        """The tour's providers behind one that cannot answer: silent (simulator) or unreachable (real)."""
        if self.server is not None:
            # The simulated "silent" provider accepts the request and then sends nothing.
            self.server.route(model="claude-silent", script=Script(delay_before_first_token=30.0))
            broken = ProviderConfig(
                name="silent",
                kind="anthropic",
                model="claude-silent",
                api_key="sk-simulator",
                base_url=self.server.anthropic_base_url,
            )
        else:
            broken = ProviderConfig(name="offline", kind="openai", api_key="unused", base_url=_refused_url())
        # A short first-token deadline keeps the demonstration quick; the default is 2 s.
        return Configuration(providers=[broken, *self.config.providers], fallback_timeout=0.5, max_retries=0)


def _refused_url() -> str:
    """An OpenAI-style base URL on 127.0.0.1 where nothing listens: connecting fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def simulator_config(server: FakeServer) -> Configuration:
    """Two simulated providers, as `Configuration.from_env()` would find two real ones."""
    return Configuration(
        providers=[
            ProviderConfig(
                name="anthropic",
                kind="anthropic",
                model="claude-simulated",
                api_key="sk-simulator",
                base_url=server.anthropic_base_url,
            ),
            ProviderConfig(
                name="openai",
                kind="openai",
                model="gpt-simulated",
                api_key="sk-simulator",
                base_url=server.openai_base_url,
            ),
        ]
    )


def heading(title: str) -> None:
    print(f"\n── {title} " + "─" * max(3, 66 - len(title)))


def describe(response: LLMResponse) -> str:
    ttft = f", first token after {response.time_to_first_token:.2f} s" if response.time_to_first_token else ""
    return (
        f"[{response.provider} · {response.model} · {response.usage.prompt_tokens} in + "
        f"{response.usage.completion_tokens} out tokens · {response.response_time:.2f} s{ttft}]"
    )


# -- the async API ------------------------------------------------------------------------


async def async_stops(tour: Tour) -> LLMCommunication:
    """Stops 1-5; returns the client of stops 1-4, whose metrics the last stop reads."""
    llm = LLMCommunication(tour.config)
    async with llm:
        heading("1. await llm.generate_text(...)")
        tour.simulate("A token is a small piece of text, often part of a word, that a model reads or writes.")
        print(await llm.generate_text("In one sentence: what is a token, for an LLM?", max_tokens=MAX_TOKENS))

        heading("2. await llm.generate_response(...)")
        tour.simulate("Paris.")
        response = await llm.generate_response(
            [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            max_tokens=MAX_TOKENS,
        )
        print(response.content)
        print(describe(response), "request id", response.request_id)

        heading("3. async for chunk in llm.generate_stream(...)")
        tour.simulate("one, two, three, four, five, six, seven, eight, nine, ten.", token_delay=0.05)
        async with llm.generate_stream("Count from one to ten in words, on one line.", max_tokens=MAX_TOKENS) as stream:
            async for chunk in stream:
                print(chunk.text, end="", flush=True)
        print()
        assert stream.response is not None
        print(describe(stream.response))

        heading("4. provider=...: force one provider")
        name = tour.config.providers[-1].name
        tour.simulate(f"This reply comes from {name}, the provider the call named.")
        forced = await llm.generate_response("Say hello in five words.", provider=name, max_tokens=MAX_TOKENS)
        print(forced.content)
        print(describe(forced))

    heading("5. Fallback: the first provider cannot answer, the next one does")
    fallback = tour.fallback_config()
    print("providers in order:", ", ".join(p.name for p in fallback.providers))
    tour.simulate("The backup answered; the provider that stayed silent was cancelled.")
    async with LLMCommunication(fallback) as racing:
        response = await racing.generate_response("Reply with a short greeting.", max_tokens=MAX_TOKENS)
        print(response.content)
        print(describe(response))
        for attempt in response.attempts:
            note = f"  ({attempt.error})" if attempt.error else ""
            print(f"   {attempt.provider:10} {attempt.outcome:10} {attempt.seconds:5.2f} s{note}")
        print("fallbacks counted in this client's metrics:", racing.metrics.snapshot()["total"]["fallbacks"])
    return llm  # closed now; its metrics stay readable


def print_metrics(llm: LLMCommunication) -> None:
    heading("8. llm.metrics: per provider and model (the client of stops 1-4)")
    for series in llm.metrics.snapshot()["series"]:
        latency = series["latency_seconds"]
        ttft = series["time_to_first_token_seconds"]
        print(
            f"{series['provider']:10} {series['model']:20} requests {series['requests']}, "
            f"errors {series['error_count']}, p50 latency {_seconds(latency.get('p50'))}, "
            f"p50 first token {_seconds(ttft.get('p50'))}, output tokens {series['output_tokens']}"
        )

    exposition = llm.metrics.prometheus().splitlines()
    print(f"llm.metrics.prometheus(): {len(exposition)} lines of Prometheus text, e.g.")
    for line in exposition[:3]:
        print("  ", line)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


# -- blocking code ------------------------------------------------------------------------


def sync_stops(tour: Tour) -> None:
    heading("6. SyncLLMCommunication: the same calls, blocking")
    with SyncLLMCommunication(tour.config) as llm:
        tour.simulate("Hello from a blocking call.")
        print(llm.generate_text("Say hello from a blocking call, in five words.", max_tokens=MAX_TOKENS))
        tour.simulate("Red, orange, yellow, green, blue, indigo, violet.", token_delay=0.03)
        with llm.generate_stream("List the colours of the rainbow, comma-separated.", max_tokens=MAX_TOKENS) as stream:
            for chunk in stream:
                print(chunk.text, end="", flush=True)
        print()

    heading("7. SimpleLLMService: legacy code, unchanged")
    # The legacy service also keeps its own log file (logs/llm_requests.log); the tour leaves it off.
    os.environ.setdefault("ENABLE_LLM_SPECIAL_LOG", "false")
    service = SimpleLLMService()
    try:
        tour.simulate("Legacy code still works.")
        print("llm_call:", service.llm_call("Say 'legacy code still works' and nothing else."))
        tour.simulate("Bonjour.")
        reply = service.generate_response(
            [LLMMessage("system", "Answer with one word."), LLMMessage("user", "Hello in French?")],
            max_tokens=MAX_TOKENS,
        )
        failed = reply.content.startswith(("调用失败", "Anthropic API错误"))  # the legacy way to check
        print("generate_response:", reply.content, f"(failed: {failed}, usage: {dict(reply.usage)})")
    finally:
        service.close()


def main() -> int:
    with ExitStack() as stack:
        try:
            config = Configuration.from_env()
        except ConfigurationError as error:
            if not error.nothing_configured:
                # A mistake in the configuration must stop the tour, never hide behind canned text.
                print(f"llmcomm tour — configuration error: {error}", file=sys.stderr)
                return 2
            for note in error.notes:  # e.g. a placeholder key: the user meant to configure something
                print(f"llmcomm tour — note: {note}", file=sys.stderr)
            server = stack.enter_context(FakeServer())
            server.default = Script(text="Hello from llmcomm's loopback simulator.", token_delay=0.01)
            # Legacy code reads its provider from the environment: point it at the simulator.
            os.environ["ANTHROPIC_API_KEY"] = "sk-simulator"
            os.environ["ANTHROPIC_BASE_URL"] = server.anthropic_base_url
            os.environ["ANTHROPIC_MODEL"] = "claude-simulated"
            tour = Tour(simulator_config(server), server)
            print(
                "llmcomm tour — using the loopback simulator (no provider configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
                "or put `claude` on PATH, to use real providers)"
            )
        else:
            chain = ", ".join(f"{p.name} ({getattr(p, 'model', '?')})" for p in config.providers)
            tour = Tour(config, None)
            print(f"llmcomm tour — using real providers: {chain}")
        try:
            first_client = anyio.run(async_stops, tour)
            sync_stops(tour)
            print_metrics(first_client)
        except LLMException as error:
            print(f"\nthe tour stopped: {type(error).__name__}: {error}", file=sys.stderr)
            print("check the provider settings with `llmcomm providers`", file=sys.stderr)
            return 1
    print("\nDone. Next: README.md, `llmcomm --help`, examples/fastapi_app.py and examples/flask_app.py.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
