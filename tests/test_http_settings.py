"""Bring your own HTTP settings: `Configuration(proxy=..., verify=..., extra_headers=...)`."""

from __future__ import annotations

import ssl

import anyio
import pytest

from llmcomm import Configuration, ConfigurationError, InvalidRequestError, LLMCommunication, ProviderConfig
from llmcomm.testing import FakeServer
from tests.test_config_proxy import KINDS, Kind, forward_proxy

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789abcdef"


def provider(server: FakeServer, kind: Kind, **options: object) -> ProviderConfig:
    base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    return ProviderConfig(name=kind, kind=kind, api_key=KEY, base_url=base_url, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
async def test_extra_headers_go_with_every_request_and_a_provider_s_own_win(server: FakeServer, kind: Kind) -> None:
    entry = provider(server, kind, headers={"x-team": "provider-wins"})
    config = Configuration(
        providers=[entry], extra_headers={"x-gateway-tenant": "acme", "x-team": "configuration", "x-trace": "1"}
    )
    async with LLMCommunication(config) as llm:
        await llm.generate_text("one")
        await llm.generate_text("two")
    assert len(server.requests) == 2
    for request in server.requests:
        assert request.headers["x-gateway-tenant"] == "acme"
        assert request.headers["x-trace"] == "1"
        assert request.headers["x-team"] == "provider-wins"


@pytest.mark.parametrize(
    ("headers", "named"),
    [({"x-bad\n": "v"}, "'x-bad\\n'"), ({"x-ok": "line\nbreak"}, "'x-ok'"), ({"x-num": 3}, "'x-num'")],
)
def test_unsendable_extra_headers_are_refused_before_any_io(headers: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match="extra_headers") as caught:
        Configuration(extra_headers=headers)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert "line\nbreak" not in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_configured_proxy_carries_every_request(server: FakeServer, kind: Kind) -> None:
    async with forward_proxy(server.port) as (proxy, port):
        base_url = "http://llm.behind-proxy.invalid" + ("/v1" if kind == "openai" else "")
        entry = ProviderConfig(name=kind, kind=kind, api_key=KEY, base_url=base_url)
        config = Configuration(providers=[entry], proxy=f"http://127.0.0.1:{port}")
        async with LLMCommunication(config) as llm:
            with anyio.fail_after(10):
                text = await llm.generate_text("hi")
    assert text == "Hello from llmcomm.testing."
    assert len(server.requests) == 1
    assert proxy.targets[0].startswith("http://llm.behind-proxy.invalid/")


@pytest.mark.parametrize(
    ("proxy", "says"),
    [
        ("ftp://127.0.0.1:21", "not supported"),
        ("http://", "not a proxy URL"),
        ("http://user:s3cret-proxy-pass@127.0.0.1:3128 x", "proxy"),
    ],
)
async def test_an_unusable_proxy_is_a_configuration_error_when_the_client_opens(
    server: FakeServer, proxy: str, says: str
) -> None:
    config = Configuration(providers=[provider(server, "anthropic")], proxy=proxy)
    with pytest.raises(ConfigurationError, match=says) as caught:
        async with LLMCommunication(config):
            pass
    assert "s3cret-proxy-pass" not in str(caught.value)
    assert "Configuration(proxy=...)" in str(caught.value)
    assert server.requests == []


def test_verify_names_an_existing_ca_bundle() -> None:
    with pytest.raises(ConfigurationError, match="CA bundle that does not exist"):
        Configuration(verify="/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="verify must be"):
        Configuration(verify=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("verify", [False, "ca-bundle"])
async def test_verify_false_or_a_ca_bundle_still_serves_calls(server: FakeServer, verify: bool | str) -> None:
    if verify == "ca-bundle":
        verify = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    config = Configuration(providers=[provider(server, "openai")], verify=verify)
    async with LLMCommunication(config) as llm:
        assert await llm.generate_text("hi") == "Hello from llmcomm.testing."


def test_the_settings_show_no_credentials_in_the_repr() -> None:
    config = Configuration(proxy="http://user:s3cret-proxy-pass@127.0.0.1:3128", extra_headers={"x-api": "s3cret-h"})
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_s_extra_headers_go_with_its_requests_only_and_win(server: FakeServer, kind: Kind) -> None:
    entry = provider(server, kind, headers={"x-team": "provider"})
    config = Configuration(providers=[entry], extra_headers={"x-tenant": "acme"})
    async with LLMCommunication(config) as llm:
        await llm.generate_text("one", extra_headers={"x-team": "this-call", "X-Trace-Id": "t-1"})
        await llm.generate_text("two")
    first, second = (r.headers for r in server.requests)
    assert (first["x-team"], first["x-trace-id"], first["x-tenant"]) == ("this-call", "t-1", "acme")
    assert (second["x-team"], second["x-tenant"]) == ("provider", "acme")
    assert "x-trace-id" not in second


@pytest.mark.parametrize(
    ("headers", "named"),
    [({"x-bad\n": "v"}, "x-bad"), ({"x-ok": "line\nbreak"}, "'x-ok'"), ({"x-num": 3}, "'x-num'"), ("x: y", "dict")],
)
async def test_unsendable_call_headers_are_refused_before_any_io(
    server: FakeServer, headers: object, named: str
) -> None:
    async with LLMCommunication(Configuration(providers=[provider(server, "openai")])) as llm:
        with pytest.raises(InvalidRequestError, match="extra_headers") as caught:
            await llm.generate_text("hi", extra_headers=headers)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert "line\nbreak" not in str(caught.value)
    assert caught.value.request_id
    assert server.requests == []
