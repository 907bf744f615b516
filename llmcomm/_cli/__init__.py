"""The `llmcomm` command: ask from a terminal, list and probe the providers, run the demo.

    llmcomm "Explain HTTP keep-alive in two sentences"
    git diff | llmcomm -s "You review code." "Summarise this change"
    llmcomm providers
    llmcomm demo

The reply goes to stdout as it arrives; everything else (timings, progress,
errors) goes to stderr, so the reply can be piped on. Exit status: 0 done, 1 the
call failed (one line on stderr says what to do next), 2 usage error, 130
interrupted.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import anyio

from .._client import LLMCommunication
from .._errors import (
    AllProvidersFailedError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LLMException,
    LLMTimeoutError,
    OutputValidationError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from .._types import LLMResponse

PROG = "llmcomm"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_COMMANDS = ("providers", "demo")


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `llmcomm` command with `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "providers":
            from ._providers import run_providers

            return run_providers(args[1:])
        if args and args[0] == "demo":
            from ._demo import run_demo

            return run_demo(args[1:])
        return _run_ask(args)
    except SystemExit as exit_:  # argparse: --help, --version or a usage error
        if exit_.code is None:
            return EXIT_OK
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LLMException as error:
        print(f"{PROG}: {describe_error(error)}", file=sys.stderr)
        # Refused by llmcomm before any request (an unknown --provider, a prompt no provider can
        # take) is a usage error; a provider's own 400 has a status and is a failed call.
        refused = isinstance(error, InvalidRequestError) and error.status_code is None
        return EXIT_USAGE if refused else EXIT_FAILED
    except BrokenPipeError:
        # The reader of stdout went away (`llmcomm ... | head`): that is not a failure.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def describe_error(error: LLMException) -> str:
    """One line: what went wrong and what to do next, in the command's own terms."""
    message = " ".join(str(error).split())
    hint = _hint(error)
    if hint and isinstance(error, LLMTimeoutError):
        # The library's advice names the Python option (timeout=); the command has its own.
        message = message.split("; raise timeout=", 1)[0]
    return f"{message} — {hint}" if hint else message


def _hint(error: LLMException) -> str:
    if isinstance(error, ConfigurationError):
        return "or run `llmcomm demo` to try llmcomm against its built-in simulator"
    if isinstance(error, AuthenticationError):
        return "check that provider's API key; `llmcomm providers` shows which key each provider uses"
    if isinstance(error, RateLimitError):
        wait = f" {error.retry_after:g} s" if error.retry_after else " a little"
        return f"wait{wait} and try again, or configure a second provider to fall back to"
    if isinstance(error, ProviderUnavailableError):
        return "try again shortly, or configure a second provider; `llmcomm providers` probes each one"
    if isinstance(error, LLMTimeoutError):
        return "raise --timeout (or LLM_TIMEOUT), or check the providers with `llmcomm providers`"
    if isinstance(error, StreamInterruptedError):
        return "the reply above is incomplete; run the command again"
    if isinstance(error, AllProvidersFailedError):
        return "run `llmcomm providers` to probe each provider"
    if isinstance(error, InvalidRequestError):
        return "fix the request and try again"
    if isinstance(error, OutputValidationError):
        return f"the last reply was: {error.content[:200]!r}"
    return ""


# -- llmcomm "prompt" -------------------------------------------------------------------


def _ask_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Ask the configured LLM providers (with fallback) and stream the reply to the terminal.",
        epilog=(
            "other commands:\n"
            "  llmcomm providers   show the provider chain from the environment and probe each one\n"
            "  llmcomm demo        run against the built-in loopback simulator (no keys needed)\n\n"
            "The prompt is read from stdin when piped; with a prompt argument too, the piped text\n"
            "comes first. Providers come from the environment or ./.env: ANTHROPIC_API_KEY,\n"
            "OPENAI_API_KEY (+ OPENAI_BASE_URL for compatible servers), or `claude` on PATH;\n"
            "LLM_PROVIDERS sets the order, LLM_TIMEOUT and LLM_FALLBACK_TIMEOUT the times.\n"
            "Use `llmcomm -- demo` to send the word 'demo' as a prompt."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", nargs="*", help="the prompt (words are joined with spaces)")
    parser.add_argument("-m", "--model", help="model name (default: each provider's configured model)")
    parser.add_argument("--provider", metavar="NAME", help="use only this provider (see `llmcomm providers`)")
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument("--no-stream", action="store_true", help="print the reply once it is complete")
    parser.add_argument("--max-tokens", type=_positive(int), metavar="N", help="longest reply, in tokens")
    parser.add_argument("--temperature", type=_temperature, metavar="T", help="sampling temperature, 0 to 2")
    parser.add_argument("--timeout", type=_positive(float), metavar="SECONDS", help="deadline of the whole call")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="after the reply, show provider, tokens and timings on stderr"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    from ._structured import add_arguments

    add_arguments(parser)  # --json-schema FILE, --schema JSON, -i/--image PATH
    return parser


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number above 0, else a usage error (exit 2)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
        return value

    return parse


def _temperature(text: str) -> float:
    """An argparse type: a temperature from 0 to 2, as both providers accept."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a value from 0 to 2")
    return value


def _run_ask(argv: list[str]) -> int:
    args = _ask_parser().parse_args(argv)
    prompt = build_prompt(" ".join(args.prompt), sys.stdin)
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("model", args.model),
            ("provider", args.provider),
            ("system", args.system),
            ("max_tokens", args.max_tokens),
            ("temperature", args.temperature),
            ("timeout", args.timeout),
        )
        if value is not None
    }
    from ._structured import print_parsed, request_from

    messages, more = request_from(args, prompt)
    options.update(more)
    if "response_format" in options:  # the JSON is printed once complete and validated
        response = anyio.run(_ask, messages, options, False, print_parsed)
    else:
        response = anyio.run(_ask, messages, options, not args.no_stream)
    if args.verbose and response is not None:
        print(summarize(response), file=sys.stderr)
    return EXIT_OK


def build_prompt(argument: str, stdin: TextIO | None) -> str:
    """The prompt from the command line and, when piped, stdin (piped text first)."""
    piped = _read_piped(stdin)
    parts = [part for part in (piped.rstrip() if piped else "", argument.strip()) if part]
    if not parts:
        if piped is None:
            raise UsageError('no prompt: give one as an argument (llmcomm "Say hi") or pipe it on stdin')
        raise UsageError("the prompt on stdin is empty: pipe some text, or give the prompt as an argument")
    return "\n\n".join(parts)


def _read_piped(stdin: TextIO | None) -> str | None:
    """stdin's text when it is a pipe, a file or an in-memory stream; None for a terminal or nothing."""
    if stdin is None or stdin.closed:
        return None
    try:
        if stdin.isatty():
            return None
        mode = os.fstat(stdin.fileno()).st_mode
    except io.UnsupportedOperation:
        # No file descriptor: an in-memory stream, which cannot block.
        mode = stat.S_IFREG
    except (OSError, ValueError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return None  # /dev/null, a socket, a device: nothing was piped
    try:
        return stdin.read()
    except OSError:
        return None


async def _ask(
    prompt: object, options: dict[str, Any], stream: bool, show: Callable[[LLMResponse], None] | None = None
) -> LLMResponse | None:
    async with LLMCommunication() as llm:
        if not stream:
            response = await llm.generate_response(prompt, **options)  # type: ignore[arg-type]
            if show is not None:
                show(response)
            else:
                _emit(response.content, end=True)
            return response
        last = "\n"
        try:
            async with llm.generate_stream(prompt, **options) as reply:  # type: ignore[arg-type]
                async for chunk in reply:
                    if chunk.text:
                        sys.stdout.write(chunk.text)
                        sys.stdout.flush()
                        last = chunk.text[-1]
        finally:
            if last != "\n":
                _emit("", end=True)
        return reply.response


def _emit(text: str, *, end: bool) -> None:
    sys.stdout.write(text)
    if end and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def summarize(response: LLMResponse) -> str:
    """One line about a finished call: who answered, tokens and timings, and any fallback."""
    parts = [f"{response.provider} · {response.model}"]
    usage = response.usage
    if usage.total_tokens:
        parts.append(f"{usage.prompt_tokens} in + {usage.completion_tokens} out tokens")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    parts.append(f"{response.response_time:.2f} s")
    tried = [a for a in response.attempts if a.outcome != "won"]
    if tried:
        parts.append("also tried " + ", ".join(f"{a.provider} ({a.outcome})" for a in tried))
    return "[" + " · ".join(parts) + "]"
