"""One masking rule (`llmcomm._secrets`) and values that cannot be sent: keys, base URLs, headers.

A key that cannot go into an HTTP header is a `ConfigurationError` before any I/O,
never a retried transport failure; URL credentials show nowhere (errors, reprs, log
records), on both wires and both event loops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import anyio
import pytest

from llmcomm import (
    Configuration,
    ConfigurationError,
    LLMCommunication,
    ProviderConfig,
    ProviderUnavailableError,
    RedactingFilter,
)
from llmcomm.__main__ import main
from llmcomm._secrets import check_sendable, mask_secret, mask_url, redact, split_credentials
from llmcomm._types import Message, Request
from llmcomm.providers._http import new_http_client
from llmcomm.testing import FakeServer, Script

from .helpers import clear_provider_environment, config, provider, refused_url
from .reliability._support import DEBUG_LOGGERS, LogCapture, error_texts

Kind = Literal["anthropic", "openai"]
KINDS: tuple[Kind, ...] = ("anthropic", "openai")
SECRET = "CANARYabcdefghijklmnop"
PASSWORD = "S3cretProxyPassw0rd"

#: keys that cannot be sent in an HTTP header, each with its SECRET inside
UNSENDABLE_KEYS = {
    "em-dash": f"sk-proj\u2014{SECRET}",
    "non-ascii-letter": f"sk-ant-{SECRET}\u00e9",
    "newline-inside": f"sk-ant-{SECRET}\nmore",
    "trailing-newline": f"sk-ant-{SECRET}\n",
    "carriage-return": f"sk-ant-{SECRET}\r",
    "nul": f"sk-ant-\x00{SECRET}",
    "space-inside": f"sk-ant {SECRET}",
    "tab-inside": f"sk-ant\t{SECRET}",
    "leading-space": f" sk-ant-{SECRET}",
    "zero-width-space": f"sk-ant-\u200b{SECRET}",
    "non-breaking-space": f"sk-ant-{SECRET}\u00a0",
}


def leaks(error: BaseException, secret: str = SECRET) -> list[str]:
    """Where `secret` shows in `error`, its args, tracebacks and whole cause/context chain."""
    return [f"{where}: {text[:200]!r}" for where, text in error_texts(error) if secret in text]


# -- the rule ------------------------------------------------------------------------------


def test_mask_secret_shows_at_most_three_and_four_characters() -> None:
    assert mask_secret("sk-ant-api03-abcdefghijklmnop") == "sk-…mnop"
    assert mask_secret("short-secret") == "****"
    assert mask_secret("") == "****"
    assert mask_secret(None) == "****"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://proxyuser:{PASSWORD}@127.0.0.1:9/v1", "http://****@127.0.0.1:9/v1"),
        (f"https://{PASSWORD}@gateway.example/v1", "https://****@gateway.example/v1"),
        (f"http://user:pa/{PASSWORD}@host/v1", "http://****@host/v1"),  # an unencoded / in the password
        (f"https://x.example/v1?api-version=1&api-key={PASSWORD}", "https://x.example/v1?api-version=1&api-key=****"),
        (f"https://x.example/v1beta?key={PASSWORD}#frag", "https://x.example/v1beta?key=****#frag"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert PASSWORD not in redact(f"cannot connect to {url}; check it")


def test_redact_masks_a_known_secret_in_every_form_it_may_be_printed_in() -> None:
    key = f"sk-x/{SECRET}\n+é"
    for text in (key, quote(key, safe=""), repr(key), repr(key.encode("utf-8", "backslashreplace"))):
        assert SECRET not in redact(f"error: {text} rejected", [key]), text


def test_split_credentials_moves_userinfo_into_a_basic_header() -> None:
    url, header = split_credentials(f"http://proxy%40user:{PASSWORD}@127.0.0.1:9/v1")
    assert url == "http://127.0.0.1:9/v1"
    assert header == "Basic cHJveHlAdXNlcjpTM2NyZXRQcm94eVBhc3N3MHJk"  # base64 of proxy@user:<password>
    assert split_credentials("http://127.0.0.1:9/v1") == ("http://127.0.0.1:9/v1", None)


@pytest.mark.parametrize("name", sorted(UNSENDABLE_KEYS))
def test_check_sendable_says_why_without_the_value(name: str) -> None:
    problem = check_sendable(UNSENDABLE_KEYS[name], "OPENAI_API_KEY")
    assert problem is not None and "OPENAI_API_KEY" in problem
    assert SECRET not in problem
    assert check_sendable("Bearer abc", "header 'x'", spaces_inside=True) is None
    assert check_sendable("sk-ant-api03-" + SECRET, "key") is None


def test_redacting_filter_masks_url_credentials_in_records() -> None:
    record = logging.LogRecord(
        "httpx2", logging.INFO, __file__, 1, "HTTP Request: POST %s", (f"http://u:{PASSWORD}@h/v1",), None
    )
    RedactingFilter(from_env=False).filter(record)
    assert PASSWORD not in record.getMessage()
    assert "http://****@h/v1" in record.getMessage()


def test_reprs_mask_keys_and_url_credentials() -> None:
    entry = ProviderConfig(
        name="compat", kind="openai", api_key=f"sk-{SECRET}", base_url=f"http://proxyuser:{PASSWORD}@127.0.0.1:9/v1"
    )
    cfg = Configuration(providers=[entry])
    for text in (repr(entry), str(entry), repr(cfg), str(cfg)):
        assert PASSWORD not in text and SECRET not in text
        assert "http://****@127.0.0.1:9/v1" in text


# -- values that cannot be sent: refused before any I/O -----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(UNSENDABLE_KEYS))
async def test_an_unsendable_key_is_a_configuration_error_before_any_io(
    server: FakeServer, kind: Kind, name: str
) -> None:
    cfg = config(provider(server, kind, api_key=UNSENDABLE_KEYS[name]), max_retries=2)
    with pytest.raises(ConfigurationError) as caught:
        LLMCommunication(cfg)
    error = caught.value
    assert not error.retryable
    assert error.provider == kind
    assert "api_key" in str(error)
    assert not leaks(error), leaks(error)
    assert server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("openai", "em-dash"),
        ("openai", "non-breaking-space"),
        ("openai", "newline-inside"),
        ("anthropic", "newline-inside"),  # its SDK sends a non-ASCII key as UTF-8 bytes; the check above stops it
    ],
)
async def test_the_http_path_refuses_an_unsendable_key_without_retrying_or_leaking(
    server: FakeServer, kind: Kind, name: str
) -> None:
    """The net under the check: a provider built directly still fails typed, with its chain scrubbed."""
    from llmcomm.providers._anthropic import AnthropicProvider
    from llmcomm.providers._openai import OpenAIProvider

    entry = provider(server, kind, api_key=UNSENDABLE_KEYS[name])
    async with new_http_client() as http_client:
        built = AnthropicProvider(entry, http_client) if kind == "anthropic" else OpenAIProvider(entry, http_client)
        with pytest.raises(ConfigurationError) as caught, anyio.fail_after(5):
            async for _ in built.stream(Request(messages=(Message("user", "hi"),))):
                pass
    assert not caught.value.retryable
    assert not leaks(caught.value), leaks(caught.value)
    assert server.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1\n",
        "http://127.0.0.1:8080/v 1",
        "ftp://127.0.0.1/v1",
        "127.0.0.1:8080",
        "http://",
        "http://127.0.0.1:port/v1",
        f"http://user:{PASSWORD}@127.0.0.1:99999/v1",
    ],
)
def test_an_unsendable_base_url_is_a_configuration_error(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url") as caught:
        LLMCommunication(Configuration(providers=[ProviderConfig(name="p", kind="openai", base_url=base_url)]))
    assert not leaks(caught.value, PASSWORD)


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X-Trace": f"caf\u00e9-{SECRET}"}, "X-Trace"),
        ({"X-Token": f"{SECRET}\r\nInjected: yes"}, "X-Token"),
        ({"Authorization": f" Bearer {SECRET}"}, "Authorization"),
        ({"bad name": SECRET}, "bad name"),
        ({"X-Count": 3}, "X-Count"),
    ],
)
def test_unsendable_header_options_are_refused_by_name(headers: dict[str, Any], named: str) -> None:
    entry = ProviderConfig(name="p", kind="anthropic", api_key="sk-ant-fine-0123456789", headers=headers)
    with pytest.raises(ConfigurationError) as caught:
        LLMCommunication(Configuration(providers=[entry]))
    assert named in str(caught.value)
    assert not leaks(caught.value)


# -- credentials in base_url: nowhere but on the wire -------------------------------------


@pytest.fixture
def debug_log() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in DEBUG_LOGGERS}
    root.addHandler(capture)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://proxyuser:{PASSWORD}@", 1)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_base_url_credentials_reach_the_server_and_no_log_record(
    server: FakeServer, kind: Kind, debug_log: LogCapture
) -> None:
    base_url = with_credentials(server.anthropic_base_url if kind == "anthropic" else server.openai_base_url)
    entry = ProviderConfig(name=kind, kind=kind, api_key="sk-test-0000000000", base_url=base_url)
    async with LLMCommunication(config(entry)) as llm:
        assert await llm.generate_text("hi") == "Hello from llmcomm.testing."
        server.default = Script(status=500, error_message="upstream broke")
        with pytest.raises(ProviderUnavailableError) as caught:
            await llm.generate_text("hi")
    assert server.requests[0].headers["authorization"] == "Basic cHJveHl1c2VyOlMzY3JldFByb3h5UGFzc3cwcmQ="
    assert not leaks(caught.value, PASSWORD)
    records = [text for _, text in debug_log.texts()]
    assert any(f"{server.port}" in text for text in records)  # the HTTP stack did log its URLs
    for secret in (PASSWORD, "cHJveHl1c2VyOlMzY3JldFByb3h5UGFzc3cwcmQ"):
        assert not [text for text in records if secret in text]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_base_url_credentials_stay_out_of_connection_errors(kind: Kind) -> None:
    entry = ProviderConfig(
        name="compat", kind=kind, api_key="sk-test-0000000000", base_url=with_credentials(refused_url(kind))
    )
    async with LLMCommunication(config(entry)) as llm:
        with pytest.raises(ProviderUnavailableError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
    assert "http://****@127.0.0.1" in str(caught.value)
    assert not leaks(caught.value, PASSWORD)


def test_llmcomm_providers_shows_url_credentials_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear_provider_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://proxyuser:{PASSWORD}@127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", f"sk-proj-{SECRET}")
    assert main(["providers", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "http://****@127.0.0.1:9/v1" in out and "sk-…mnop" in out
    assert PASSWORD not in out and SECRET not in out


@pytest.mark.parametrize("value", [float("nan"), 0.0, -1.0])
def test_timeouts_must_be_positive_numbers(value: float) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        ProviderConfig(name="p", kind="openai", timeout=value)
    with pytest.raises(ConfigurationError, match="timeout"):
        Configuration(timeout=value)
