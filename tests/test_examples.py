"""The examples run and stay true: the tour in simulator mode, and example.env against the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmcomm import Configuration, ConfigurationError
from llmcomm._config import read_dotenv
from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY, example_env, run_example

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENV_FILE = EXAMPLES / "example.env"
#: how llmcomm's code reads a variable: env.get("X"), os.environ.get("X"), _number(env, "X"), ...
READ_PATTERN = re.compile(r'(?:\.get|_number|_int|_env_int)\(\s*(?:env,\s*)?"([A-Z][A-Z0-9_]+)"')
NOT_SETTINGS = {"PATH"}


def test_the_tour_runs_on_the_simulator_and_exits_0(tmp_path: Path) -> None:
    result = run_example("example.py", example_env(tmp_path), tmp_path)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "llmcomm tour — using the loopback simulator (no provider configured: set ANTHROPIC_API_KEY or "
        "OPENAI_API_KEY, or put `claude` on PATH, to use real providers)"
    )
    for number in range(1, 9):
        assert any(line.startswith(f"── {number}. ") for line in lines), f"stop {number} is missing"
    out = result.stdout
    assert "one, two, three, four, five, six, seven, eight, nine, ten." in out
    assert "This reply comes from openai, the provider the call named." in out
    assert re.search(r"silent\s+cancelled", out)
    assert re.search(r"anthropic\s+won", out)
    assert "fallbacks counted in this client's metrics: 1" in out
    assert "llm_call: Legacy code still works." in out
    assert "(failed: False," in out
    assert "llmcomm_requests_total" in out
    assert result.stderr == ""
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LLM_TIMEOUT", "30s"), ("LLM_FALLBACK_TIMEOUT", "abc"), ("OPENAI_BASE_URL", "not a url")],
)
def test_a_configuration_mistake_stops_the_tour_instead_of_using_the_simulator(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {**example_env(tmp_path), "OPENAI_API_KEY": KEY, variable: value}
    result = run_example("example.py", env, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "simulator" not in result.stdout
    assert "configuration error" in result.stderr
    assert variable in result.stderr
    assert KEY not in result.stdout + result.stderr


def test_a_bad_dotenv_line_stops_the_web_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}\nLLM_TIMEOUT=thirty\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LLM_TIMEOUT", "LLM_PROVIDERS", "CLAUDE_CLI_PATH"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = importlib.util.spec_from_file_location("flask_app_under_test", EXAMPLES / "flask_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ConfigurationError, match="LLM_TIMEOUT") as caught:
        module.create_app()
    assert not caught.value.nothing_configured


def test_the_tour_uses_configured_providers_when_there_are_some(tmp_path: Path) -> None:
    with FakeServer(default=Script(text="A configured provider answered.")) as server:
        env = {**example_env(tmp_path), "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.anthropic_base_url}
        result = run_example("example.py", env, tmp_path)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = result.stdout
    assert out.splitlines()[0] == "llmcomm tour — using real providers: anthropic (claude-sonnet-5-5)"
    assert re.search(r"offline\s+failed .*ProviderUnavailableError", out)
    assert re.search(r"anthropic\s+won", out)
    assert out.count("A configured provider answered.") == 9
    assert KEY not in out


def variables_llmcomm_reads() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "llmcomm").rglob("*.py"):
        if "testing" not in path.relative_to(ROOT).parts:
            names.update(READ_PATTERN.findall(path.read_text(encoding="utf-8")))
    return names - NOT_SETTINGS


def test_example_env_lists_every_variable_llmcomm_reads() -> None:
    text = ENV_FILE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    read = variables_llmcomm_reads()
    assert len(read) >= 15
    assert read <= listed, f"not in examples/example.env: {sorted(read - listed)}"
    for line in text.splitlines():
        assert not line or line.startswith("#") or re.fullmatch(r"[A-Z][A-Z0-9_]+=", line), line
    for name in listed:
        # every variable has a one-line explanation right above it
        above = text.split(f"\n{name}=")[0] if f"\n{name}=" in text else text.split(f"\n# {name}=")[0]
        assert above.splitlines()[-1].startswith("# "), name


def test_example_env_copied_to_dotenv_sets_no_provider(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(ENV_FILE.read_bytes())
    assert set(read_dotenv(dotenv)) == {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        Configuration.from_env(environ={"PATH": str(tmp_path)}, dotenv_path=dotenv)


def test_example_env_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    # Uncomment every documented default: the configuration must not change.
    text = ENV_FILE.read_text(encoding="utf-8")
    defaults = dict(re.findall(r"^# ([A-Z][A-Z0-9_]+)=(\S+)$", text, flags=re.MULTILINE))
    assert {"LLM_TIMEOUT", "LLM_FALLBACK_TIMEOUT", "ANTHROPIC_MODEL", "OPENAI_MODEL"} <= set(defaults)
    keys = {"ANTHROPIC_API_KEY": "sk-ant-0123456789abcdef", "OPENAI_API_KEY": "sk-oai-0123456789abcdef"}
    claude = tmp_path / "claude"
    claude.write_text("#!/bin/sh\n")
    claude.chmod(0o755)
    base = {"PATH": str(tmp_path), **keys}
    assert Configuration.from_env(environ={**base, **defaults}) == Configuration.from_env(environ=base)
    assert [p.kind for p in Configuration.from_env(environ=base).providers] == ["anthropic", "openai", "claude_cli"]


def test_a_placeholder_key_is_named_when_the_tour_falls_back_to_the_simulator(tmp_path: Path) -> None:
    env = {**example_env(tmp_path), "ANTHROPIC_API_KEY": "your-anthropic-api-key"}
    result = run_example("example.py", env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "using the loopback simulator" in result.stdout.splitlines()[0]
    assert "note: ANTHROPIC_API_KEY looks like a placeholder" in result.stderr


def test_a_placeholder_key_beside_a_base_url_is_called_a_placeholder_not_missing() -> None:
    env = {"ANTHROPIC_API_KEY": "xxxxxxxx", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "PATH": ""}
    with pytest.raises(ConfigurationError) as caught:
        Configuration.from_env(environ=env)
    assert "placeholder" in str(caught.value)
    assert "is missing" not in str(caught.value)
