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
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, final

import anyio
import orjson
from anyio.abc import ByteReceiveStream, Process

from .._config import ProviderConfig
from .._errors import InvalidRequestError, LLMException, ProviderUnavailableError
from .._types import Message, Request, StreamChunk, UsageInfo
from .._wire._sse import DEFAULT_MAX_LINE_BYTES, JSONLinesDecoder, OversizedMessageError
from ._base import error_for_status, scrub

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

#: how long a child may take to exit after SIGTERM before it gets SIGKILL
TERM_GRACE = 1.0
#: how long the child may take to exit on its own once its stdout has ended
EXIT_GRACE = 1.0
#: the most any shutdown may take, however stuck the child is
SHUTDOWN_BOUND = 5.0
#: system prompts longer than this go through a file, not argv (Linux caps one argument at 128 KiB)
ARGV_SYSTEM_LIMIT = 64 * 1024
#: how much of the child's stderr is read back for an error message
STDERR_TAIL_BYTES = 4096

_NOT_FOUND_HINT = "install @anthropic-ai/claude-code or set CLAUDE_CLI_PATH"


@final
class ClaudeCLIProvider:
    """A `BaseProvider` that runs the Claude Code CLI (`claude -p`) once per call.

    The child runs as::

        claude -p [--bare] --output-format stream-json --verbose --include-partial-messages
               --tools "" --no-session-persistence --max-turns 1 --strict-mcp-config
               --model MODEL [--system-prompt TEXT | --system-prompt-file FILE]

    with the prompt on stdin. A single user message is passed verbatim. A longer
    conversation is rendered as a transcript of the earlier turns followed by the
    last user message::

        <transcript>
        Human: first question

        Assistant: first answer
        </transcript>

        last user message

    The child gets a small environment: the locale, `PATH`, CA-certificate and
    proxy variables of this process; `ANTHROPIC_BASE_URL`/`ANTHROPIC_API_KEY` from
    the configuration (or, when the configuration sets neither key nor URL, the
    Anthropic credentials of this process); `CLAUDE_CODE_MAX_RETRIES=0` (llmcomm
    owns retries); `API_TIMEOUT_MS` from `timeout`; `CLAUDE_CODE_MAX_OUTPUT_TOKENS`
    from `max_tokens`; a private temporary `HOME`, working directory and scratch
    directories, removed after the call; and `config.env` last, so it overrides
    all of these (set `HOME` there to use a logged-in CLI's own credentials).
    Secrets never appear in argv. `--bare` (no hooks, plugins or keychain; key
    from `ANTHROPIC_API_KEY` only) is passed whenever the child has an API key.
    `temperature` and `extra` have no CLI equivalent and are ignored.

    The reply is streamed from the CLI's `text_delta` events; success is a `result`
    line with `is_error: false`, whose usage and stop reason go on the closing
    chunk. `last_result` holds the most recent `result` line as a dict (with
    `total_cost_usd`, `duration_ms`, ...), for callers who want the cost.
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

    def build_env(self, request: Request, workdir: _Workdir) -> dict[str, str]:
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
        env.update(config.env)
        return env

    def build_argv(self, request: Request, model: str, env: Mapping[str, str], workdir: _Workdir) -> list[str]:
        """The child's argv for `request` (no secret ever goes here)."""
        argv = [self.cli_path, "-p"]
        if env.get("ANTHROPIC_API_KEY"):
            argv.append("--bare")
        argv += [
            "--output-format", "stream-json", "--verbose", "--include-partial-messages",
            "--tools", "", "--no-session-persistence", "--max-turns", "1", "--strict-mcp-config",
            "--model", model,
        ]  # fmt: skip
        if request.system:
            if len(request.system.encode()) > ARGV_SYSTEM_LIMIT:
                argv += ["--system-prompt-file", str(workdir.write_system(request.system))]
            else:
                argv += ["--system-prompt", request.system]
        if request.response_format is not None:  # the CLI validates the reply against it itself
            argv += ["--json-schema", orjson.dumps(request.response_format.anthropic_schema).decode()]
        return argv

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Run the CLI for `request` and stream its reply."""
        model = request.model or self.model
        try:
            prompt = render_prompt(request.messages).encode()
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                f"the prompt is not valid text ({exc.reason}); remove lone surrogate characters", provider=self.name
            ) from exc
        workdir = _Workdir.create()
        process: Process | None = None
        stopped = False
        try:
            env = self.build_env(request, workdir)
            secrets = [env.get("ANTHROPIC_API_KEY"), env.get("ANTHROPIC_AUTH_TOKEN")]
            argv = self.build_argv(request, model, env, workdir)
            process = await self._launch(argv, env, workdir)
            await _send_prompt(process, prompt)
            assert process.stdout is not None
            state = _CLIStream(self.name, model)
            decoder = JSONLinesDecoder(self.max_line_bytes)
            done = False
            while not done:
                data = await self._receive(process.stdout)
                done = not data
                for line in self._lines(decoder, data):
                    chunk = state.handle(line)
                    if chunk is not None:
                        yield chunk
                    if state.result is not None:
                        done = True
                        break
            if state.result is None:
                returncode = await _shutdown(process, exit_grace=EXIT_GRACE)
                stopped = True
                raise ProviderUnavailableError(
                    f"the claude CLI {_describe_exit(returncode)} before its result line"
                    f"{_stderr_note(workdir.stderr_tail(), secrets)}; check that it runs: `{self.cli_path} -p`",
                    provider=self.name,
                )
            # The result line is final: the child has nothing more to say.
            await _shutdown(process)
            stopped = True
            self.last_result = state.result
            for chunk in state.finish(secrets):
                yield chunk
        finally:
            if process is not None and not stopped:
                await _shutdown(process)
            workdir.remove()

    async def _launch(self, argv: Sequence[str], env: Mapping[str, str], workdir: _Workdir) -> Process:
        with self._map_launch_errors(), workdir.open_stderr() as stderr:
            # Shielded: a cancellation while spawning must not lose the handle of a started child.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    cwd=workdir.home,
                    env=env,
                    start_new_session=True,  # its own process group, so the whole group can be ended
                )
            return process  # noqa: RET504 - returning inside the shield would hide the return from type checkers

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


def render_prompt(messages: Sequence[Message]) -> str:
    """The text written to the CLI's stdin: see `ClaudeCLIProvider` for the format."""
    *history, last = messages
    if not history:
        return last.text
    turns = "\n\n".join(f"{'Human' if m.role == 'user' else 'Assistant'}: {m.text}" for m in history)
    return f"<transcript>\n{turns}\n</transcript>\n\n{last.text}"


@final
class _CLIStream:
    """Position, model and result while one CLI stdout is decoded (sans I/O)."""

    __slots__ = ("index", "model", "parts", "provider", "result", "stop_reason")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.index = 0
        self.parts: list[str] = []
        self.stop_reason: str | None = None
        self.result: dict[str, Any] | None = None

    def handle(self, line: bytes) -> StreamChunk | None:
        """Take one stdout line; return a content chunk when it carries text."""
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None  # the CLI may print a stray warning on stdout
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "result":
            self.result = event
        elif kind == "stream_event" and isinstance(inner := event.get("event"), dict):
            inner_kind = inner.get("type")
            if inner_kind == "content_block_delta":
                delta = inner.get("delta")
                if isinstance(delta, dict) and delta.get("type") == "text_delta":
                    return self._text(delta.get("text"))
            elif inner_kind == "message_start":
                message = inner.get("message")
                if isinstance(message, dict) and isinstance(message.get("model"), str) and message["model"]:
                    self.model = message["model"]
            elif inner_kind == "message_delta":
                delta = inner.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                    self.stop_reason = delta["stop_reason"]
        return None

    def _text(self, text: object) -> StreamChunk | None:
        if not isinstance(text, str) or not text:
            return None
        self.parts.append(text)
        chunk = StreamChunk(text, self.provider, self.model, self.index)
        self.index += 1
        return chunk

    def finish(self, secrets: Sequence[str | None]) -> Iterator[StreamChunk]:
        """The chunks that close a stream whose result line arrived, or its error."""
        result = self.result
        assert result is not None
        if result.get("is_error") is not False:
            raise self._error(result, secrets)
        final = result.get("result")
        streamed = "".join(self.parts)
        # After an SSE error mid-stream the CLI asks again without streaming, so the
        # deltas may fall short of the final text. When they are its beginning, the
        # rest is sent; when they say something else, what was sent cannot be taken
        # back and nothing more is sent (the final text stays in `last_result`).
        structured = result.get("structured_output")  # with --json-schema the value comes here, not as text
        if structured is not None and not streamed:
            final = orjson.dumps(structured).decode()
        if isinstance(final, str) and final.startswith(streamed) and (rest := self._text(final[len(streamed) :])):
            yield rest
        reason = _first_str(result.get("stop_reason"), self.stop_reason, result.get("terminal_reason")) or "end_turn"
        yield StreamChunk("", self.provider, self.model, self.index, reason, _usage(result.get("usage")))

    def _error(self, result: Mapping[str, Any], secrets: Sequence[str | None]) -> LLMException:
        text = _first_str(result.get("result")) or "; ".join(map(str, result.get("errors") or ())) or "no detail"
        detail = _scrub_all(text[:1000], secrets)
        status = result.get("api_error_status")
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            return error_for_status(
                status,
                f"the claude CLI reported: {detail}",
                provider=self.provider,
                key_hint="ANTHROPIC_API_KEY",
                model=self.model,
                code=_first_str(result.get("api_error_type")),
            )
        what = ", ".join(s for s in (_first_str(result.get("subtype")), _first_str(result.get("terminal_reason"))) if s)
        return ProviderUnavailableError(
            f"the claude CLI reported an error ({what or 'unknown'}): {detail}; try again or check the CLI",
            provider=self.provider,
        )


@final
class _Workdir:
    """One call's private scratch directory: HOME, temp files and the child's stderr."""

    __slots__ = ("home", "root", "run", "stderr", "tmp")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.run = root / "run"
        self.stderr = root / "stderr.log"

    @classmethod
    def create(cls) -> _Workdir:
        workdir = cls(Path(tempfile.mkdtemp(prefix="llmcomm-claude-")))
        for path in (workdir.home, workdir.tmp, workdir.run):
            path.mkdir(mode=0o700)
        return workdir

    @contextmanager
    def open_stderr(self) -> Iterator[Any]:
        # stderr goes to a file: the child can never block on a full pipe, and no task
        # has to drain it while the stream is being consumed.
        with self.stderr.open("wb") as file:
            yield file

    def write_system(self, text: str) -> Path:
        path = self.root / "system-prompt.txt"
        path.write_text(text, encoding="utf-8")
        return path

    def stderr_tail(self) -> str:
        """The last non-empty line of the child's stderr, read from its last few KiB."""
        try:
            with self.stderr.open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES))
                tail = file.read()
        except OSError:
            return ""
        lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1][:500] if lines else ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


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


async def _shutdown(process: Process, *, exit_grace: float = 0.0) -> int | None:
    """End the child and its process group, reap it and close its pipes; its exit status.

    Shielded and bounded, so it completes on every path (cancellation included) and
    never leaves a zombie or an orphan: SIGTERM to the group, SIGKILL after
    `TERM_GRACE`.
    """
    with anyio.move_on_after(SHUTDOWN_BOUND, shield=True):
        if process.returncode is None and exit_grace > 0:
            with anyio.move_on_after(exit_grace):
                await process.wait()
        if process.returncode is None:
            _signal_group(process, signal.SIGTERM)
            with anyio.move_on_after(TERM_GRACE):
                await process.wait()
        if process.returncode is None:
            _signal_group(process, signal.SIGKILL)
            await process.wait()
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.aclose()
    return process.returncode


def _signal_group(process: Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the child leads its own group (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        with suppress(ProcessLookupError):
            process.send_signal(sig)


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "closed its output but did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


def _stderr_note(line: str, secrets: Sequence[str | None]) -> str:
    return f" (stderr: {_scrub_all(line, secrets)})" if line else " (stderr was empty)"


def _scrub_all(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        text = scrub(text, secret)
    return text


def _first_str(*values: object) -> str | None:
    return next((v for v in values if isinstance(v, str) and v), None)


def _usage(raw: object) -> UsageInfo | None:
    if not isinstance(raw, dict):
        return None

    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt = count("input_tokens") + count("cache_creation_input_tokens") + count("cache_read_input_tokens")
    return UsageInfo.of(prompt, count("output_tokens"))
