"""What llmcomm sends itself equals what the official SDK sends for the same call.

For each row of the table, `llmcomm.testing.FakeServer` records the request the
direct path sends (`_wire._requests` + `providers._send`) and the one the SDK
client sends, configured the way the SDK-backed providers configure it; method,
path, query, parsed JSON body and headers must be equal, less the headers each
client names itself by (`user-agent`, `x-stainless-*`, `content-length`,
`accept-encoding`). The table grows with every request feature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx2
import pytest

from llmcomm import ConfigurationError, InvalidRequestError, LLMException, ProviderConfig
from llmcomm._request import build_request
from llmcomm._wire._requests import ANTHROPIC_VERSION, encode_body, endpoint, join_url
from llmcomm.providers._send import send
from llmcomm.testing import FakeServer, RecordedRequest

from .helpers import KEY, provider

Kind = Literal["anthropic", "openai"]
KINDS = [pytest.param("anthropic", id="anthropic"), pytest.param("openai", id="openai")]

#: headers that name the client, or that each client sets for itself
VOLATILE = frozenset({"user-agent", "content-length", "accept-encoding"})
#: body fields each SDK takes by name (as the SDK-backed providers pass them); the rest go in extra_body
SDK_FIELDS: Mapping[Kind, frozenset[str]] = {
    "anthropic": frozenset({"model", "max_tokens", "messages", "stream", "system"}),
    "openai": frozenset({"model", "messages", "stream"}),
}
#: what the providers read from the environment through the SDK
ENVIRONMENT = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)


def sdk_client(config: ProviderConfig, http: httpx2.AsyncClient) -> Any:
    """The official SDK client of `config`'s kind, as the SDK-backed providers build it."""
    options: dict[str, Any] = {
        "base_url": config.base_url,
        "max_retries": 0,
        "http_client": http,
        "default_headers": dict(config.headers) or None,
    }
    if config.kind == "anthropic":
        import anthropic

        return anthropic.AsyncAnthropic(api_key=config.api_key, **options)
    import openai

    return openai.AsyncOpenAI(api_key=config.api_key or "unused", **options)


def body_for(config: ProviderConfig, prompt: object, options: Mapping[str, Any]) -> dict[str, Any]:
    """The wire body the provider of `config` builds for a call (its client is never opened)."""
    from llmcomm.providers._anthropic import AnthropicProvider
    from llmcomm.providers._openai import OpenAIProvider

    request = build_request(prompt, options)
    unused = httpx2.AsyncClient()
    if config.kind == "anthropic":
        return AnthropicProvider(config, unused).build_body(request)
    return OpenAIProvider(config, unused).build_body(request)


async def send_with_sdk(config: ProviderConfig, http: httpx2.AsyncClient, body: Mapping[str, Any]) -> bytes:
    """Send `body` through the SDK client; the raw reply body. SDK errors propagate."""
    client = sdk_client(config, http)
    named = SDK_FIELDS[config.kind]  # type: ignore[index]
    arguments = {k: v for k, v in body.items() if k in named}
    if extra := {k: v for k, v in body.items() if k not in named}:
        arguments["extra_body"] = extra
    resource = client.messages if config.kind == "anthropic" else client.chat.completions
    async with resource.with_streaming_response.create(**arguments) as response:
        data: bytes = await response.http_response.aread()
    return data


async def send_direct(
    config: ProviderConfig, http: httpx2.AsyncClient, body: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> bytes:
    """Send `body` the direct way; the raw reply body."""
    async with send(http, endpoint(config, environ), encode_body(body), config=config, model=str(body["model"])) as r:
        return await r.aread()


def comparable(record: RecordedRequest) -> dict[str, Any]:
    headers = {k: v for k, v in record.headers.items() if k not in VOLATILE and not k.startswith("x-stainless-")}
    return {
        "method": record.method,
        "path": record.path,
        "query": record.query,
        "body": record.body,
        "headers": headers,
    }


@dataclass(frozen=True)
class Row:
    """One call: a prompt (or messages) and options, on a provider configured with `provider`."""

    id: str
    prompt: object = "Say hello."
    options: Mapping[str, Any] = field(default_factory=dict)
    provider: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    path: str = ""  # appended to the fake's base URL (a gateway prefix)


ROWS = [
    Row("plain"),
    Row("non-ascii", prompt='Grüße, 世界 — ☃ "quoted" \\ back\nslash'),
    Row("system", options={"system": "Answer in one word."}),
    Row(
        "conversation",
        prompt=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "And now?"},
        ],
    ),
    Row("model-max-tokens", options={"model": "other-model", "max_tokens": 17}),
    Row("temperature", options={"temperature": 0.25}),
    Row("temperature-zero", options={"temperature": 0.0}),
    Row("extra-fields", options={"extra": {"top_p": 0.9, "metadata": {"user_id": "u-1"}, "stop": ["\n\n"]}}),
    Row("extra-overrides-built", options={"extra": {"max_tokens": 5, "temperature": None}}),
    Row(
        "every-option",
        options={"system": "S", "model": "m2", "max_tokens": 9, "temperature": 1.0, "extra": {"seed": 3}},
    ),
    Row("config-max-tokens", provider={"max_tokens": 40960}),
    Row("config-headers", provider={"headers": {"x-gateway-tenant": "t-1", "X-Trace": "abc"}}),
    Row("header-overrides-default", provider={"headers": {"Accept": "text/event-stream"}}),
    Row("gateway-prefix", path="/gateway/route"),
    Row("trailing-slash", path="/"),
    # The conversation features: what the wire body holds is ours; the request around it must
    # be what the SDK makes of the same body.
    Row(
        "tools",
        options={
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "The weather in a city.",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    },
                }
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
    ),
    Row(
        "tool-result-turn",
        prompt=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ],
        options={"tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]},
    ),
    Row(
        "image",
        prompt=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    ),
    Row("reasoning", options={"reasoning_effort": "high", "max_tokens": 4096}),
    Row("sampling-hints", options={"stop": ["END"], "top_p": 0.5, "seed": 7, "user": "u-1"}),
    Row("cache-breakpoint", options={"system": "A long shared manual.", "cache": True}),
]


@pytest.fixture(params=[pytest.param(row, id=row.id) for row in ROWS])
def row(request: pytest.FixtureRequest) -> Row:
    value: Row = request.param
    return value


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


async def record_both(
    server: FakeServer, config: ProviderConfig, body: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[RecordedRequest, RecordedRequest]:
    """The request the SDK sent and the one the direct path sent, for the same `body`."""
    async with httpx2.AsyncClient() as http:
        for attempt in (send_with_sdk(config, http, body), send_direct(config, http, body, environ)):
            try:
                await attempt
            except LLMException:  # a gateway prefix the fake does not serve: the request is what counts
                pass
            except Exception as exc:  # the SDK's own status error
                if not type(exc).__module__.startswith(("anthropic", "openai")):
                    raise
    assert len(server.requests) == 2
    return server.requests[0], server.requests[1]


@pytest.mark.anyio
@pytest.mark.usefixtures("clean_environment")
async def test_direct_request_equals_the_sdk_request(server: FakeServer, kind: Kind, row: Row) -> None:
    config = provider(server, kind, **row.provider)
    if row.path:
        config = replace(config, base_url=f"{config.base_url}{row.path}")
    body = body_for(config, row.prompt, row.options)
    sdk, direct = await record_both(server, config, body)
    assert comparable(direct) == comparable(sdk)
    assert direct.headers["user-agent"].startswith("llmcomm/")
    assert not [name for name in direct.headers if name.startswith("x-stainless")]


@pytest.mark.anyio
async def test_environment_the_sdk_reads_is_read_alike(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenAI organisation and project come from the environment, as the SDK reads them."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-parity")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-parity")
    config = provider(server, "openai")
    sdk, direct = await record_both(server, config, body_for(config, "hi", {}), os.environ)
    assert comparable(direct) == comparable(sdk)
    assert direct.headers["openai-organization"] == "org-parity"


@pytest.mark.anyio
@pytest.mark.usefixtures("clean_environment")
async def test_keyless_openai_server_gets_what_it_got_before(server: FakeServer) -> None:
    config = provider(server, "openai", api_key=None)
    sdk, direct = await record_both(server, config, body_for(config, "hi", {}))
    assert comparable(direct) == comparable(sdk)
    assert direct.headers["authorization"] == "Bearer unused"


# -- the endpoint, without I/O -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "base_url", "url"),
    [
        ("anthropic", None, "https://api.anthropic.com/v1/messages"),
        ("anthropic", "http://127.0.0.1:9", "http://127.0.0.1:9/v1/messages"),
        ("anthropic", "http://127.0.0.1:9/", "http://127.0.0.1:9/v1/messages"),
        ("anthropic", "https://gw.example/anthropic", "https://gw.example/anthropic/v1/messages"),
        ("openai", None, "https://api.openai.com/v1/chat/completions"),
        ("openai", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/chat/completions"),
        ("openai", "http://127.0.0.1:9/v1/", "http://127.0.0.1:9/v1/chat/completions"),
        ("openai", "http://127.0.0.1:9/openai/v1", "http://127.0.0.1:9/openai/v1/chat/completions"),
    ],
)
def test_endpoint_url(kind: Kind, base_url: str | None, url: str) -> None:
    assert endpoint(ProviderConfig(name="p", kind=kind, api_key=KEY, base_url=base_url)).url == url


def test_endpoint_headers_per_kind() -> None:
    anthropic = endpoint(ProviderConfig(name="a", kind="anthropic", api_key=KEY)).headers
    openai = endpoint(ProviderConfig(name="o", kind="openai", api_key=KEY)).headers
    assert anthropic["anthropic-version"] == ANTHROPIC_VERSION
    assert anthropic["authorization"] == openai["authorization"] == f"Bearer {KEY}"
    for headers in (anthropic, openai):
        assert headers["content-type"] == headers["accept"] == "application/json"
        assert headers["user-agent"].startswith("llmcomm/")
        assert all(name == name.lower() and not name.startswith("x-stainless") for name in headers)
    assert "anthropic-version" not in openai


@pytest.mark.parametrize(
    ("auth_header", "name", "value"),
    [
        ("x-api-key", "x-api-key", KEY),
        ("api-key", "api-key", KEY),
        ("Authorization", "authorization", f"Bearer {KEY}"),
    ],
)
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_auth_header_for_gateways(kind: Kind, auth_header: str, name: str, value: str) -> None:
    headers = endpoint(ProviderConfig(name="g", kind=kind, api_key=KEY, auth_header=auth_header)).headers
    assert headers[name] == value
    assert [h for h, v in headers.items() if KEY in v] == [name]


def test_environment_fills_what_the_config_leaves_unset() -> None:
    environ = {"ANTHROPIC_BASE_URL": "http://env.example", "ANTHROPIC_API_KEY": KEY}
    found = endpoint(ProviderConfig(name="a", kind="anthropic"), environ)
    assert found.url == "http://env.example/v1/messages"
    assert found.headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in endpoint(ProviderConfig(name="a", kind="anthropic")).headers
    configured = endpoint(ProviderConfig(name="a", kind="anthropic", api_key="k" * 20, base_url="http://c"), environ)
    assert (configured.url, configured.headers["authorization"]) == ("http://c/v1/messages", f"Bearer {'k' * 20}")


@pytest.mark.parametrize(
    "options",
    [
        {"api_key": "sk-secret-\u00e9-0123456789"},
        {"api_key": "sk-secret-\r\nx-injected: 1"},
        {"headers": {"x-ok": "value\nx-injected: 1"}},
        {"headers": {"bad name": "v"}},
        {"headers": {"x-ok": "sk-secret-\u2603"}},
        {"auth_header": "bad header"},
    ],
)
def test_unsendable_headers_are_a_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        endpoint(ProviderConfig(name="p", kind="openai", **options))
    assert "sk-secret" not in str(info.value)
    assert "fix" in str(info.value)


def test_cli_kind_has_no_http_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="not sent over HTTP"):
        endpoint(ProviderConfig(name="c", kind="claude_cli", cli_path="/bin/true"))


@pytest.mark.parametrize("value", [{1, 2}, object(), 2**70, {1: "non-str key"}])
def test_unencodable_body_is_refused_before_io(value: object) -> None:
    with pytest.raises(InvalidRequestError, match="cannot be sent as JSON"):
        encode_body({"model": "m", "extra": value})


def test_join_url_keeps_the_base_path() -> None:
    assert join_url("http://h", "v1/messages") == "http://h/v1/messages"
    assert join_url("http://h/p/", "/chat/completions") == "http://h/p/chat/completions"
