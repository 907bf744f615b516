"""The Claude Code CLI (`claude -p`), run as a child process that streams JSON lines.

One call is one child: the prompt goes in on stdin (then closed), `stream-json`
lines come out on stdout and are decoded here, and the child (with its whole
process group) is gone and its scratch directory removed when the stream ends,
however it ends.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, final

import anyio
import orjson
from anyio.abc import ByteReceiveStream, Process

from .._config import ProviderConfig
from .._errors import InvalidRequestError, ProviderUnavailableError
from .._model_facts import anthropic_thinking
from .._types import Request, StreamChunk
from .._wire._sse import DEFAULT_MAX_LINE_BYTES, JSONLinesDecoder, OversizedMessageError
from ._claude_cli_events import CLIStream
from ._claude_cli_process import EXIT_GRACE, Child, Workdir, describe_exit, shutdown, spawn
from ._claude_cli_prompt import check_parts, last_has_content, prompt_blocks, user_message_line

#: variables the child inherits from this process; everything else is left behind
INHERITED_ENV = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
)
#: credentials the child inherits only when the provider's configuration sets none
INHERITED_AUTH_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN")

#: system prompts longer than this go through a file, not argv (Linux caps one argument at 128 KiB)
ARGV_SYSTEM_LIMIT = 64 * 1024
#: `reasoning_effort` values and the CLI's `--effort` level each maps to
EFFORT_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}
#: a spending cap (USD) any API response exceeds, so the CLI stops after the first one: its only
#: switch against the hidden follow-up requests it makes to continue a reply cut at max_tokens
#: (the child is also killed as soon as the stream says max_tokens; this closes the race)
ONE_RESPONSE_BUDGET_USD = "0.0000001"
#: the smallest thinking budget the API takes; extended thinking needs max_tokens above it
MIN_THINKING_BUDGET = 1024

_NOT_FOUND_HINT = "install @anthropic-ai/claude-code or set CLAUDE_CLI_PATH"


@final
class ClaudeCLIProvider:
    """A `BaseProvider` that runs the Claude Code CLI (`claude -p`) once per call.

    The child runs as::

        claude -p [--bare] --input-format stream-json --output-format stream-json --verbose
               --include-partial-messages --replay-user-messages --tools "" --no-session-persistence --max-turns 1
               --strict-mcp-config --max-budget-usd 0.0000001 --model MODEL [--effort LEVEL]
               [--system-prompt=TEXT | --system-prompt-file FILE]

    with one `user` message on stdin as a JSON line, then stdin closed. The text
    reaches the model literally: the CLI reads a message whose last text block
    starts with "/" as a slash command (`/cost` would answer locally and send
    nothing), so such a text is sent as two adjacent text blocks, split after its
    leading slashes, which the model reads as the same text. A single user
    message is passed verbatim, its images as image blocks (base64, or a url
    source for an http(s) URL, which the CLI passes on); a longer conversation is
    rendered as a transcript of the earlier turns, their images in place, followed
    by the last user message (see `_claude_cli_prompt`). A `DocumentPart` is
    refused with `InvalidRequestError`, and so are image bytes that are not PNG,
    JPEG, GIF or WebP; an image the CLI cannot decode (it decodes one to resize
    it) becomes a note in the message it replays (`--replay-user-messages`), and
    the call ends with `InvalidRequestError` as soon as that line arrives (the
    CLI sends its request at the same time; its reply is not read).
    A prompt with no visible character (only whitespace, byte-order marks,
    zero-width or control characters) is refused with `InvalidRequestError`
    before anything starts: the CLI would send a placeholder in its place.

    The child gets a small environment: the locale, `PATH`, CA-certificate and
    proxy variables of this process; `ANTHROPIC_BASE_URL`/`ANTHROPIC_API_KEY` from
    the configuration (or, when the configuration sets neither key nor URL, the
    Anthropic credentials of this process); `CLAUDE_CODE_MAX_RETRIES=0` (llmcomm
    owns retries); `API_TIMEOUT_MS` from `timeout`; `CLAUDE_CODE_MAX_OUTPUT_TOKENS`
    from `max_tokens`; `MAX_THINKING_TOKENS=0` unless the request asks for
    reasoning (`reasoning_effort` other than "none", which becomes `--effort`):
    the CLI would otherwise turn extended thinking on with a budget of up to
    `max_tokens - 1`, which the API refuses below 1025 tokens; a private
    temporary `HOME`, working directory and scratch directories, removed after
    the call; and `config.env` last, so it overrides all of these (set `HOME`
    there to use a logged-in CLI's own credentials). Secrets never appear in
    argv. `--bare` (no hooks, plugins or keychain; key from `ANTHROPIC_API_KEY`
    only) is passed whenever the child has an API key. `temperature` and `extra`
    have no CLI equivalent and are ignored.

    `--effort` turns thinking on: budgeted (`max_tokens - 1`) on models before
    4.6, where the CLI sends no effort, adaptive with `output_config.effort` on
    4.6 and later (the CLI lowers levels a model lacks to "high"). The reply is streamed
    from the CLI's `text_delta` events, its thinking from `thinking_delta` events
    as reasoning chunks; success is a `result`
    line with `is_error: false`, whose usage and stop reason go on the closing
    chunk. The CLI makes hidden follow-up requests to continue a reply cut at
    `max_tokens` (up to three, each streamed again); a spending cap that any
    one response exceeds stops it after the first, and the child is killed as
    soon as the API's `message_delta` says `max_tokens`: one request, the text
    once, and a closing chunk whose `finish_reason` is "length" ("max_tokens" raw). Under the cap
    a complete reply ends with a `result` whose subtype is `error_max_budget_usd`;
    it counts as success, with the text of the CLI's `assistant` line and the
    usage of the stream events. `last_result` holds the most recent `result` line
    as a dict (with `total_cost_usd`, `duration_ms`, ...), for callers who want
    the cost.

    The child lives under a watchdog (see `_claude_cli_process`): if this process
    dies, even by SIGKILL, the child is killed and its scratch directory removed.
    """

    kind = "claude_cli"

    def __init__(self, config: ProviderConfig, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.config = config
        self.name = config.name
        self.model = config.model
        self.cli_path = os.path.expanduser(config.cli_path or os.environ.get("CLAUDE_CLI_PATH") or "claude")
        self.max_line_bytes = max_line_bytes
        self.last_result: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ClaudeCLIProvider({self.config!r})"

    async def aclose(self) -> None:
        """Nothing to release: each call's child is gone when its stream ends."""

    def build_env(self, request: Request, workdir: Workdir) -> dict[str, str]:
        """The child's whole environment for `request`."""
        config = self.config
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        if config.api_key is None and config.base_url is None:
            env.update({name: os.environ[name] for name in INHERITED_AUTH_ENV if name in os.environ})
        if config.base_url:
            env["ANTHROPIC_BASE_URL"] = config.base_url
        if config.api_key:
            env["ANTHROPIC_API_KEY"] = config.api_key
        env.update(
            {
                "HOME": str(workdir.home),
                "TMPDIR": str(workdir.tmp),
                "CLAUDE_CODE_TMPDIR": str(workdir.tmp),
                "XDG_RUNTIME_DIR": str(workdir.run),
                "CLAUDE_CODE_MAX_RETRIES": "0",  # llmcomm owns retries: a hidden CLI retry would stall the fallback
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "API_TIMEOUT_MS": str(max(1, round(config.timeout * 1000))),
                "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(request.max_tokens or config.max_tokens),
            }
        )
        if effort_level(request) is None:
            env["MAX_THINKING_TOKENS"] = "0"  # thinking off: the API then gets `thinking: disabled`
        env.update(config.env)
        return env

    def build_argv(self, request: Request, model: str, env: Mapping[str, str], workdir: Workdir) -> list[str]:
        """The child's argv for `request` (no secret ever goes here)."""
        argv = [self.cli_path, "-p"]
        if env.get("ANTHROPIC_API_KEY"):
            argv.append("--bare")
        argv += [
            "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
            "--include-partial-messages", "--replay-user-messages", "--tools", "", "--no-session-persistence", "--max-turns", "1",
            "--strict-mcp-config", "--max-budget-usd", ONE_RESPONSE_BUDGET_USD, "--model", model,
        ]  # fmt: skip
        if (level := effort_level(request)) is not None:
            argv += ["--effort", level]
        if request.system:
            if len(request.system.encode()) > ARGV_SYSTEM_LIMIT:
                argv += ["--system-prompt-file", str(workdir.write_system(request.system))]
            else:
                argv.append(f"--system-prompt={request.system}")  # one argument: a leading "-" stays text
        if request.response_format is not None:  # the CLI validates the reply against it itself
            argv += ["--json-schema", orjson.dumps(request.response_format.anthropic_schema).decode()]
        return argv

    def check(self, request: Request) -> bytes:
        """Validate `request` for the CLI and return its stdin; `InvalidRequestError` when the CLI cannot take it."""
        check_parts(request.messages, self.name)
        if not last_has_content(request.messages[-1]):
            raise InvalidRequestError(
                "the prompt has no visible text (only whitespace, byte-order marks, zero-width or control "
                "characters) and no image, which the claude CLI cannot send; give the last message some text",
                provider=self.name,
            )
        level = effort_level(request)
        max_tokens = request.max_tokens or self.config.max_tokens
        model = request.model or self.model
        # A model that thinks with a budget gets one of max(1024, max_tokens - 1) from the CLI,
        # which the API refuses unless it is below max_tokens; adaptive thinking has no budget.
        if level is not None and max_tokens <= MIN_THINKING_BUDGET and anthropic_thinking(model) == "enabled":
            raise InvalidRequestError(
                f"reasoning through the claude CLI with {model} needs max_tokens above {MIN_THINKING_BUDGET} "
                f"(got {max_tokens}); raise max_tokens or set reasoning_effort='none'",
                provider=self.name,
            )
        try:
            return user_message_line(prompt_blocks(request.messages))
        except orjson.JSONEncodeError as exc:
            raise InvalidRequestError(
                "the prompt is not valid text (it holds a lone surrogate character); remove it", provider=self.name
            ) from exc

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Run the CLI for `request` and stream its reply.

        Raises `InvalidRequestError` (before starting anything) for input the CLI
        cannot take, and the `llmcomm.errors` class of what the CLI reports.
        """
        model = request.model or self.model
        prompt = self.check(request)
        self._resolve_cli()
        workdir = Workdir.create()
        child: Child | None = None
        stopped = False
        try:
            env = self.build_env(request, workdir)
            secrets = [env.get("ANTHROPIC_API_KEY"), env.get("ANTHROPIC_AUTH_TOKEN")]
            argv = self.build_argv(request, model, env, workdir)
            child = await self._launch(argv, env, workdir)
            process = child.process
            await _send_prompt(process, prompt)
            assert process.stdout is not None
            state = CLIStream(self.name, model, prompt.count(b'"type":"image"'))
            decoder = JSONLinesDecoder(self.max_line_bytes)
            done = False
            while not done:
                data = await self._receive(process.stdout)
                done = not data
                for line in self._lines(decoder, data):
                    chunk = state.handle(line)
                    if chunk is not None:
                        yield chunk
                    if state.result is not None or state.truncated or state.refused_image:
                        done = True
                        break
            if state.refused_image:
                await shutdown(child, kill_now=True)  # its request may be out already: its reply is not read
                stopped = True
                raise InvalidRequestError(
                    f"the claude CLI could not read an image ({state.refused_image[:300]}); "
                    "convert it to PNG or JPEG and send it again",
                    provider=self.name,
                )
            if state.truncated:
                # Killed before the CLI can ask the API to continue the cut reply.
                await shutdown(child, kill_now=True)
                stopped = True
                for chunk in state.flush():
                    yield chunk
                yield state.truncated_end()
                return
            if state.result is None:
                returncode = await shutdown(child, exit_grace=EXIT_GRACE)
                stopped = True
                raise state.exit_error(describe_exit(returncode), workdir.stderr_tail(), secrets, self.cli_path)
            # The result line is final: the child has nothing more to say.
            await shutdown(child)
            stopped = True
            self.last_result = state.result
            for chunk in state.finish(secrets):
                yield chunk
        finally:
            if child is not None:
                if not stopped:
                    await shutdown(child)
                child.release_watchdog()
            workdir.remove()

    async def _launch(self, argv: Sequence[str], env: Mapping[str, str], workdir: Workdir) -> Child:
        with self._map_launch_errors():
            return await spawn(argv, env, workdir)

    def _resolve_cli(self) -> None:
        if shutil.which(self.cli_path) is None:
            raise ProviderUnavailableError(
                f"claude CLI not found at {self.cli_path!r}; {_NOT_FOUND_HINT}", provider=self.name, retryable=False
            )

    @contextmanager
    def _map_launch_errors(self) -> Iterator[None]:
        # The one place where a failure to start the child becomes an llmcomm error.
        try:
            yield
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise ProviderUnavailableError(
                f"claude CLI not found at {self.cli_path!r}; {_NOT_FOUND_HINT}",
                provider=self.name,
                retryable=False,
            ) from exc
        except ValueError as exc:  # NUL or lone surrogate characters cannot pass through argv or the environment
            raise InvalidRequestError(
                f"the claude CLI cannot be started with this input: {exc}; remove NUL and lone surrogate characters",
                provider=self.name,
            ) from exc
        except OSError as exc:
            if exc.errno == errno.E2BIG:  # argv too long: only the system prompt can make it so
                raise InvalidRequestError(
                    "the command line of the claude CLI is too long; shorten the system prompt",
                    provider=self.name,
                ) from exc
            raise ProviderUnavailableError(
                f"could not start the claude CLI at {self.cli_path!r}: {exc}; {_NOT_FOUND_HINT}",
                provider=self.name,
                retryable=False,
            ) from exc

    async def _receive(self, stdout: ByteReceiveStream) -> bytes:
        """The next bytes of stdout; empty at its end."""
        timeout = self.config.timeout
        with anyio.move_on_after(timeout):
            try:
                return await stdout.receive()
            except anyio.EndOfStream:
                return b""
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise ProviderUnavailableError(
                    f"reading the claude CLI's output failed: {exc!r}; try again", provider=self.name
                ) from exc
        raise ProviderUnavailableError(
            f"the claude CLI wrote nothing for {timeout:g} s; raise ProviderConfig.timeout or check its network",
            provider=self.name,
        )

    def _lines(self, decoder: JSONLinesDecoder, data: bytes) -> list[bytes]:
        try:
            return decoder.feed(data) if data else decoder.flush()
        except OversizedMessageError as exc:
            raise ProviderUnavailableError(
                f"the claude CLI wrote a line over {self.max_line_bytes} bytes ({exc}); "
                "the child was stopped, check the CLI version",
                provider=self.name,
                retryable=False,
            ) from exc


def effort_level(request: Request) -> str | None:
    """The CLI's `--effort` level for the request's `reasoning_effort`; None: thinking off."""
    effort = getattr(request, "reasoning_effort", None)
    if effort is None or effort == "none":
        return None
    level = EFFORT_LEVELS.get(str(effort))
    if level is None:
        raise InvalidRequestError(f"reasoning_effort must be one of none, {', '.join(EFFORT_LEVELS)}; got {effort!r}")
    return level


async def _send_prompt(process: Process, prompt: bytes) -> None:
    """Write the prompt and close stdin: the CLI waits for EOF before it starts."""
    assert process.stdin is not None
    try:
        await process.stdin.send(prompt)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the child exited early: its exit status tells why
    finally:
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await process.stdin.aclose()
