"""Configuration from the environment and from `.env` files; keys stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcomm import Configuration, ConfigurationError, LLMCommunication, ProviderConfig

KEY = "sk-ant-canary-abcdefghijklmnop"


def test_nothing_configured_names_the_variables() -> None:
    with pytest.raises(ConfigurationError) as info:
        Configuration.from_env(environ={"PATH": ""})
    message = str(info.value)
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CLAUDE_CLI_PATH"):
        assert name in message


def test_llm_communication_without_providers_raises() -> None:
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        LLMCommunication(Configuration())


def test_anthropic_and_openai_detected_in_default_order() -> None:
    config = Configuration.from_env(
        environ={
            "PATH": "",
            "OPENAI_API_KEY": "sk-openai-0123456789abcdef",
            "OPENAI_MODEL": "gpt-x",
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
            "ANTHROPIC_MODEL": "claude-x",
            "ANTHROPIC_MAX_TOKENS": "123",
            "LLM_FALLBACK_TIMEOUT": "1.5",
            "LLM_TIMEOUT": "42",
        }
    )
    anthropic, openai = config.providers
    assert isinstance(anthropic, ProviderConfig) and isinstance(openai, ProviderConfig)
    assert (anthropic.kind, anthropic.model, anthropic.max_tokens, anthropic.base_url) == (
        "anthropic",
        "claude-x",
        123,
        "http://127.0.0.1:9",
    )
    assert (openai.kind, openai.model) == ("openai", "gpt-x")
    assert config.fallback_timeout == 1.5
    assert config.timeout == 42.0
    assert anthropic.timeout == 42.0


def test_llm_providers_sets_the_order(tmp_path: Path) -> None:
    cli = tmp_path / "claude"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    env = {"PATH": str(tmp_path), "ANTHROPIC_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    config = Configuration.from_env(environ={**env, "LLM_PROVIDERS": "claude_cli, openai,anthropic"})
    assert [p.name for p in config.providers] == ["claude_cli", "openai", "anthropic"]
    cli_config = config.providers[0]
    assert isinstance(cli_config, ProviderConfig) and cli_config.cli_path == str(cli)
    only = Configuration.from_env(environ={**env, "LLM_PROVIDERS": "openai"})
    assert [p.name for p in only.providers] == ["openai"]


def test_llm_providers_rejects_unknown_kinds() -> None:
    with pytest.raises(ConfigurationError, match="unknown kinds"):
        Configuration.from_env(environ={"ANTHROPIC_API_KEY": KEY, "LLM_PROVIDERS": "anthropic,gemini"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLM_TIMEOUT", "soon"), ("LLM_FALLBACK_TIMEOUT", "-1"), ("ANTHROPIC_MAX_TOKENS", "lots")],
)
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Configuration.from_env(environ={"ANTHROPIC_API_KEY": KEY, name: value})


def test_dotenv_fills_in_what_the_environment_does_not_set(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\n"
        f"export ANTHROPIC_API_KEY='{KEY}'\n"
        'ANTHROPIC_MODEL="from-dotenv"\n'
        "LLM_TIMEOUT=30 # trailing comment\n"
        "\n"
    )
    config = Configuration.from_env(environ={"ANTHROPIC_MODEL": "from-env"}, dotenv_path=dotenv)
    (provider,) = config.providers
    assert isinstance(provider, ProviderConfig)
    assert provider.api_key == KEY
    assert provider.model == "from-env"
    assert config.timeout == 30.0


def test_dotenv_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        Configuration.from_env(environ={}, dotenv_path=tmp_path / "missing.env")
    bad = tmp_path / "bad.env"
    bad.write_text("this is not an assignment\n")
    with pytest.raises(ConfigurationError, match=r"bad\.env:1"):
        Configuration.from_env(environ={}, dotenv_path=bad)


def test_keys_are_masked_in_repr_and_str() -> None:
    config = Configuration.from_env(environ={"ANTHROPIC_API_KEY": KEY, "PATH": ""})
    (provider,) = config.providers
    for text in (repr(config), str(config), repr(provider), str(provider), f"{provider}"):
        assert KEY not in text
    assert "sk-…mnop" in repr(provider)


def test_invalid_settings() -> None:
    with pytest.raises(ConfigurationError, match="kind"):
        ProviderConfig(name="x", kind="gemini")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_tokens"):
        ProviderConfig(name="x", kind="openai", max_tokens=0)
    with pytest.raises(ConfigurationError, match="unique"):
        Configuration(providers=[ProviderConfig(name="x", kind="openai"), ProviderConfig(name="x", kind="anthropic")])
    with pytest.raises(ConfigurationError, match="fallback_timeout"):
        Configuration(fallback_timeout=0)
