"""`Configuration.from_env()`: `.env` by python-dotenv's rules, placeholders, and loud mistakes.

A configuration mistake never looks like "no provider configured": every invalid
value is a `ConfigurationError` naming the variable (or the file and line), the bad
value (a key's never) and what to set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from llmcomm import Configuration, ConfigurationError, ProviderConfig
from llmcomm._config_env import is_placeholder, merged_environment, read_dotenv

from .reliability._support import error_texts

KEY = "sk-ant-abc123456789"
OPENAI_KEY = "sk-proj-0123456789abcdefghij"
TAIL = "".join(reversed("987654321cba"))  # never written out, so no traceback's source line shows it


def only(config: Configuration) -> ProviderConfig:
    (entry,) = config.providers
    assert isinstance(entry, ProviderConfig)
    return entry


def from_dotenv(tmp_path: Path, text: str | bytes, environ: dict[str, str] | None = None) -> Configuration:
    path = tmp_path / ".env"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return Configuration.from_env(environ={"PATH": "", **(environ or {})}, dotenv_path=path)


# -- .env by python-dotenv's rules -------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        f'ANTHROPIC_API_KEY="{KEY}" # prod key\n',
        f"ANTHROPIC_API_KEY='{KEY}'  # prod key\n",
        f"ANTHROPIC_API_KEY={KEY}\t# prod key\n",
        f"ANTHROPIC_API_KEY={KEY} # prod key\n",
        f"export ANTHROPIC_API_KEY={KEY}\n",
        f'export ANTHROPIC_API_KEY="{KEY}"\n',
        f"ANTHROPIC_API_KEY = {KEY}\n",
        f"  ANTHROPIC_API_KEY={KEY}  \n",
        f"ANTHROPIC_API_KEY={KEY}\r\n",
        f"\ufeffANTHROPIC_API_KEY={KEY}\n",  # a byte-order mark from a Windows editor
        f"# comment\n\nANTHROPIC_API_KEY={KEY}\nOTHER\n",  # a bare name sets nothing
        "PREFIX=sk-ant\nANTHROPIC_API_KEY=${PREFIX}-abc123456789\n",
    ],
    ids=[
        "double-quotes-comment",
        "single-quotes-comment",
        "tab-comment",
        "space-comment",
        "export",
        "export-quoted",
        "spaces-around-equals",
        "indented",
        "crlf",
        "bom",
        "comment-blank-bare-name",
        "interpolation",
    ],
)
def test_dotenv_lines_read_as_python_dotenv_reads_them(tmp_path: Path, line: str) -> None:
    assert only(from_dotenv(tmp_path, line)).api_key == KEY


def test_dotenv_escapes_multiline_values_and_literal_hashes(tmp_path: Path) -> None:
    values = read_dotenv(
        _write(
            tmp_path,
            'ANTHROPIC_MODEL="claude\\tx"\n'
            "SINGLE='no \\n escape'\n"
            'MULTI="line one\nline two"\n'
            "HASH=abc#def\n"
            'QUOTED_HASH="abc # def"\n'
            "EMPTY=\n",
        )
    )
    assert values == {
        "ANTHROPIC_MODEL": "claude\tx",
        "SINGLE": "no \\n escape",
        "MULTI": "line one\nline two",
        "HASH": "abc#def",
        "QUOTED_HASH": "abc # def",
        "EMPTY": "",
    }


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "values.env"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_key_with_an_escaped_newline_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY") as caught:
        from_dotenv(tmp_path, f'ANTHROPIC_API_KEY="sk-ant\\n{TAIL}"\n')
    assert not [text for _, text in error_texts(caught.value) if TAIL in text]


def test_an_unparsable_line_names_the_file_and_line_but_not_its_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"\.env:3") as caught:
        from_dotenv(tmp_path, f"ANTHROPIC_API_KEY={KEY}\n\n  this is {KEY} not an assignment\nOK=1\n")
    assert KEY not in str(caught.value)


def test_dotenv_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        Configuration.from_env(environ={}, dotenv_path=tmp_path / "missing.env")
    (tmp_path / "dir.env").mkdir()
    with pytest.raises(ConfigurationError, match=r"dir\.env.*directory"):
        Configuration.from_env(environ={}, dotenv_path=tmp_path / "dir.env")
    with pytest.raises(ConfigurationError, match="not UTF-8") as caught:
        from_dotenv(tmp_path, f"ANTHROPIC_API_KEY={KEY}\nNAME=caf\xe9\n".encode("latin-1"))
    assert not [text for _, text in error_texts(caught.value) if KEY in text]


def test_dotenv_without_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".env"
    path.write_text(f"ANTHROPIC_API_KEY={KEY}\n")
    if os.geteuid() == 0:  # root reads any file: refuse the read the way the kernel would for anyone else

        def refuse(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", refuse)
    else:
        path.chmod(0)
    try:
        with pytest.raises(ConfigurationError, match=r"\.env.*permission denied"):
            Configuration.from_env(environ={}, dotenv_path=path)
    finally:
        path.chmod(0o600)


def test_a_dot_env_directory_in_the_working_directory_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()
    with pytest.raises(ConfigurationError, match=r"'\.env' is a directory"):
        merged_environment()


def test_merged_environment_lets_the_environment_win(tmp_path: Path) -> None:
    path = _write(tmp_path, f"ANTHROPIC_API_KEY={KEY}\nANTHROPIC_MODEL=from-file\n")
    env = merged_environment({"ANTHROPIC_MODEL": "from-env"}, path)
    assert (env["ANTHROPIC_API_KEY"], env["ANTHROPIC_MODEL"]) == (KEY, "from-env")


# -- placeholders: not configured, with a warning ----------------------------------------

PLACEHOLDERS = [
    "your-openai-api-key",
    "YOUR_API_KEY_HERE",
    "<your key>",
    "<OPENAI_API_KEY>",
    "xxxxxxxxxxxx",
    "XXX-XXX",
    "changeme",
    "sk-xxxxxxxxxxxxxxxx",
    "sk-...",
    "sk-ant-xxxxxxxx",
    "sk-proj-........",
    "",
    "   ",
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_a_placeholder_key_creates_no_provider_and_one_warning(value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmcomm"):
        config = Configuration.from_env(environ={"PATH": "", "ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": value})
    assert [p.name for p in config.providers] == ["anthropic"]
    warnings = [r.getMessage() for r in caplog.records if "OPENAI_API_KEY" in r.getMessage()]
    assert len(warnings) == 1, warnings


@pytest.mark.parametrize("value", PLACEHOLDERS[:4])
def test_only_a_placeholder_is_nothing_configured_and_says_so(value: str) -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as caught:
        Configuration.from_env(environ={"PATH": "", "OPENAI_API_KEY": value})
    assert caught.value.nothing_configured


@pytest.mark.parametrize("value", [KEY, OPENAI_KEY, "sk-ant-api03-xAbC0123456789", "xai-0123456789", "gsk_abcdef0123"])
def test_real_keys_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


# -- every mistake is loud, and names the variable ----------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_TIMEOUT", "30s"),
        ("LLM_TIMEOUT", "nan"),
        ("LLM_TIMEOUT", "inf"),
        ("LLM_TIMEOUT", "0"),
        ("LLM_FALLBACK_TIMEOUT", "abc"),
        ("LLM_FALLBACK_TIMEOUT", "-1"),
        ("LLM_STREAM_IDLE_TIMEOUT", "1e999"),
        ("ANTHROPIC_MAX_TOKENS", "-1"),
        ("ANTHROPIC_MAX_TOKENS", "4k"),
        ("OPENAI_MAX_TOKENS", "1.5"),
        ("ANTHROPIC_BASE_URL", "localhost:8080"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:port/v1"),
        ("LLM_PROVIDERS", "anthropic,gemini"),
        ("CLAUDE_CLI_PATH", "/nonexistent/claude"),
    ],
)
@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "no-key"])
def test_an_invalid_value_names_the_variable_and_the_value(name: str, value: str, with_key: bool) -> None:
    environ = {"PATH": "", name: value}
    if with_key:
        environ["OPENAI_API_KEY"] = OPENAI_KEY
    with pytest.raises(ConfigurationError) as caught:
        Configuration.from_env(environ=environ)
    message = str(caught.value)
    assert name in message and repr(value) in message
    assert not caught.value.nothing_configured
    assert OPENAI_KEY not in message


@pytest.mark.parametrize("value", [f"sk-ant\u2014{KEY}", f"sk-ant {KEY}", f"{KEY}\x00"])
def test_an_unsendable_key_variable_is_named_without_its_value(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY") as caught:
        Configuration.from_env(environ={"PATH": "", "ANTHROPIC_API_KEY": value})
    assert not [text for _, text in error_texts(caught.value) if KEY in text]


def test_base_url_credentials_in_a_bad_value_are_masked() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL") as caught:
        Configuration.from_env(environ={"PATH": "", "OPENAI_BASE_URL": "ftp://user:hunter2hunter2@host/v1"})
    assert "hunter2" not in str(caught.value)


def test_anthropic_base_url_without_its_key_says_the_key_is_missing(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY is missing") as caught:
        Configuration.from_env(environ={"PATH": "", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    assert not caught.value.nothing_configured
    # A placeholder is called one, not "missing": the user did set it.
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY looks like a placeholder"):
        Configuration.from_env(
            environ={"PATH": "", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "your-key"}
        )
    with caplog.at_level(logging.WARNING, logger="llmcomm"):
        config = Configuration.from_env(
            environ={"PATH": "", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "OPENAI_API_KEY": OPENAI_KEY}
        )
    assert [p.name for p in config.providers] == ["openai"]
    assert any("ANTHROPIC_API_KEY is missing" in r.getMessage() for r in caplog.records)


def test_openai_base_url_alone_is_a_keyless_compatible_server() -> None:
    entry = only(Configuration.from_env(environ={"PATH": "", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}))
    assert (entry.kind, entry.base_url) == ("openai", "http://127.0.0.1:8080/v1")


def test_nothing_configured_lists_the_variables_instead_of_a_file() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Configuration.from_env(environ={"PATH": ""})
    message = str(caught.value)
    assert caught.value.nothing_configured
    assert "example.env" not in message
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CLAUDE_CLI_PATH", "LLM_TIMEOUT"):
        assert name in message
    with pytest.raises(ConfigurationError) as empty:
        Configuration().require_providers()
    assert empty.value.nothing_configured and "example.env" not in str(empty.value)


def test_llm_providers_naming_a_missing_provider(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmcomm"):
        config = Configuration.from_env(
            environ={"PATH": "", "ANTHROPIC_API_KEY": KEY, "LLM_PROVIDERS": "openai,anthropic"}
        )
    assert [p.name for p in config.providers] == ["anthropic"]
    assert any("OPENAI_API_KEY" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Configuration.from_env(environ={"PATH": "", "ANTHROPIC_API_KEY": KEY, "LLM_PROVIDERS": "openai"})
