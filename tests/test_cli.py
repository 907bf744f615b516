"""The `llmcomm` command, in-process through `main()` and once as a real `python -m llmcomm`."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcomm.__main__ import main
from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY, clear_provider_environment, default_sigint, refused_url


class TerminalInput(io.StringIO):
    """stdin that is a terminal: nothing was piped."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No provider in the environment, no `.env`, no `claude` on PATH, and a terminal on stdin."""
    clear_provider_environment(monkeypatch, tmp_path)
    monkeypatch.setattr(sys, "stdin", TerminalInput())
    return monkeypatch


@pytest.fixture
def server(clean_env: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A threaded fake server, configured through the environment as a user would."""
    with FakeServer() as fake:
        clean_env.setenv("ANTHROPIC_API_KEY", KEY)
        clean_env.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        yield fake


def user_text(server: FakeServer, index: int = 0) -> str:
    content: str = server.requests[index].body["messages"][-1]["content"]
    return content


# -- llmcomm "prompt" ---------------------------------------------------------------------


def test_streams_the_reply_to_stdout(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.default = Script(chunks=("Hello", " from", " the", " terminal."))
    assert main(["Say", "hi"]) == 0
    out, err = capsys.readouterr()
    assert out == "Hello from the terminal.\n"
    assert err == ""
    assert user_text(server) == "Say hi"
    assert server.requests[0].stream


def test_options_reach_the_provider(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-m", "model-x", "-s", "Be brief.", "--max-tokens", "7", "--temperature", "0.5", "--no-stream", "-v", "hi"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "Hello from llmcomm.testing.\n"
    body = server.requests[0].body
    assert (body["model"], body["system"], body["max_tokens"], body["temperature"]) == ("model-x", "Be brief.", 7, 0.5)
    assert err.startswith("[anthropic · model-x · ")
    assert err.count("\n") == 1


def test_reads_the_prompt_from_stdin_when_piped(
    server: FakeServer, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setattr(sys, "stdin", io.StringIO("def add(a, b):\n    return a - b\n"))
    assert main(["Find", "the", "bug"]) == 0
    clean_env.setattr(sys, "stdin", io.StringIO("Only piped text"))
    assert main([]) == 0
    assert user_text(server, 0) == "def add(a, b):\n    return a - b\n\nFind the bug"
    assert user_text(server, 1) == "Only piped text"


def test_forcing_a_provider(
    server: FakeServer, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("OPENAI_BASE_URL", server.openai_base_url)
    assert main(["--provider", "openai", "hi"]) == 0
    assert server.requests[0].api == "openai"
    assert main(["--provider", "nope", "hi"]) == 2  # refused before any request: a usage error
    err = capsys.readouterr().err
    assert err.startswith("llmcomm: unknown provider 'nope'; configured providers are ['anthropic', 'openai']")
    assert err.count("\n") == 1


def test_no_prompt_is_a_usage_error(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("llmcomm: no prompt: give one as an argument")
    assert main(["--max-tokens", "many", "hi"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert server.requests == []


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "llmcomm providers" in out
    assert "llmcomm demo" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("llmcomm ")


def test_no_provider_is_one_line_saying_what_to_set(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hi"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("llmcomm: no LLM provider found in the environment: set ANTHROPIC_API_KEY")
    assert "llmcomm demo" in err


def test_a_provider_error_is_one_line_with_a_next_step(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.default = Script(status=401, error_message="invalid x-api-key")
    assert main(["hi"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("llmcomm: [anthropic]")
    assert "check that provider's API key" in err
    assert KEY not in err


def test_an_interrupted_stream_keeps_its_text_and_fails(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.default = Script(chunks=("one ", "two ", "three "), reset_after=2)
    assert main(["count"]) == 1
    out, err = capsys.readouterr()
    assert out == "one two \n"
    assert "the reply above is incomplete" in err
    assert err.count("\n") == 1


# -- llmcomm providers / demo -------------------------------------------------------------


def test_providers_shows_the_chain_masked_and_probes_each(
    server: FakeServer, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("OPENAI_BASE_URL", refused_url("openai"))
    clean_env.setenv("OPENAI_API_KEY", "sk-openai-secret-0123456789")
    assert main(["providers"]) == 1
    out, err = capsys.readouterr()
    assert KEY not in out
    assert "sk-openai-secret-0123456789" not in out
    lines = out.splitlines()
    assert lines[0] == "2 provider(s), in fallback order:"
    assert "anthropic" in lines[1]
    assert "key sk-…cdef" in lines[1]
    assert server.anthropic_base_url in lines[1]
    assert "openai" in lines[2]
    ok = next(line for line in lines if line.startswith("  1. anthropic"))
    assert " ok " in ok
    assert " ms" in ok
    failed = next(line for line in lines if line.startswith("  2. openai"))
    assert "failed" in failed
    assert "ProviderUnavailableError" in failed
    assert err == "llmcomm: 1 of 2 provider(s) did not answer: openai\n"
    assert [r.body["max_tokens"] for r in server.requests] == [1]


def test_providers_without_probing_sends_nothing(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "--no-probe"]) == 0
    assert "probing" not in capsys.readouterr().out
    assert server.requests == []
    assert main(["providers"]) == 0
    assert "  1. anthropic  ok" in capsys.readouterr().out


def test_providers_with_nothing_configured(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers"]) == 1
    assert capsys.readouterr().err.startswith("llmcomm: no LLM provider found")


def test_demo_runs_against_the_simulator(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "What", "is", "fallback?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("llmcomm demo — starting the loopback simulator on 127.0.0.1 …\nllmcomm demo — the loopback")
    assert "'What is fallback?'" in out
    assert "[backup · simulated-gpt" in out
    assert "primary  cancelled" in out
    assert "backup   won" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--temperature", "3", "hi"],
        ["--temperature", "-0.1", "hi"],
        ["--temperature", "warm", "hi"],
        ["--max-tokens", "0", "hi"],
        ["--max-tokens", "-5", "hi"],
        ["--timeout", "0", "hi"],
        ["--timeout", "inf", "hi"],
        ["--timeout", "nan", "hi"],
    ],
)
def test_an_option_out_of_range_is_a_usage_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 2  # before any provider is looked for
    err = capsys.readouterr().err
    assert f"argument {argv[0]}" in err


def test_timeout_advice_is_given_once_in_the_command_s_terms() -> None:
    from llmcomm import LLMTimeoutError
    from llmcomm._cli import describe_error

    error = LLMTimeoutError(
        "no complete reply within the call's timeout of 5 s; raise timeout= or LLM_TIMEOUT, or check the providers"
    )
    line = describe_error(error)
    assert "timeout=" not in line
    assert line.count("LLM_TIMEOUT") == 1
    assert "--timeout" in line


def test_help_names_the_provider_variables_not_a_file_pip_users_lack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "example.env" not in out
    assert "ANTHROPIC_API_KEY" in out
    assert "OPENAI_API_KEY" in out


# -- a real process -----------------------------------------------------------------------


def subprocess_env(server: FakeServer, tmp_path: Path, kind: str = "anthropic") -> dict[str, str]:
    """Only what the command needs: the fake server as the one provider, no `claude` on PATH."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PYTHONIOENCODING": "utf-8"}
    if kind == "anthropic":
        env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.anthropic_base_url)
    else:
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.openai_base_url)
    if "SYSTEMROOT" in os.environ:
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return env


def test_python_dash_m_llmcomm_streams_and_exits_0(tmp_path: Path) -> None:
    with FakeServer(default=Script(chunks=("Real ", "process ", "reply."))) as server:
        result = subprocess.run(
            [sys.executable, "-m", "llmcomm", "-v", "Hello"],
            env=subprocess_env(server, tmp_path),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Real process reply.\n"
    assert result.stderr.startswith("[anthropic · ")
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "Hello"}]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics differ on Windows")
def test_ctrl_c_exits_130_and_closes_the_upstream_request(tmp_path: Path) -> None:
    with FakeServer(default=Script(tokens=500, token_delay=0.02)) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmcomm", "count"],
            env=subprocess_env(server, tmp_path, kind="openai"),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_sigint,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.read(5) == "tok0 "  # streaming has begun
            process.send_signal(signal.SIGINT)
            interrupted_at = time.monotonic()
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        assert process.returncode == 130, err
        assert err.strip().endswith("llmcomm: interrupted")
        assert "Traceback" not in err
        upstream = server.requests[0]
        deadline = time.monotonic() + 1.0
        while upstream.client_closed_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert upstream.client_closed_at is not None
        assert upstream.client_closed_at - interrupted_at < 1.0
        assert upstream.finished_at is None


def test_a_provider_s_own_400_is_a_failed_call_not_a_usage_error(
    server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.default = Script(status=400, error_message="max_tokens: too large")
    assert main(["hi"]) == 1
    assert "too large" in capsys.readouterr().err
