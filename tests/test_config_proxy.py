"""Proxy settings from the environment: an unusable one is a `ConfigurationError` when the client opens.

httpx2 reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` itself; llmcomm
checks them where it builds its HTTP client, so a SOCKS proxy without socksio, a
malformed URL or an unknown scheme says which variable and what to do, instead of a
raw `ImportError`. A working proxy keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from llmcomm import ConfigurationError, LLMCommunication, LLMException, ProviderConfig
from llmcomm.providers._http import check_proxy_environment, proxy_variables
from llmcomm.testing import FakeServer

from .helpers import config, provider

Kind = Literal["anthropic", "openai"]
KINDS: tuple[Kind, ...] = ("anthropic", "openai")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_socksio(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOCKS support not installed, whether or not it is here."""
    monkeypatch.setitem(sys.modules, "socksio", None)


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.usefixtures("no_socksio")
@pytest.mark.parametrize(
    ("environ", "named", "says"),
    [
        ({"ALL_PROXY": "socks5://127.0.0.1:9"}, "ALL_PROXY", "pip install socksio"),
        ({"all_proxy": "socks5h://proxy.internal:1080"}, "all_proxy", "pip install socksio"),
        ({"HTTPS_PROXY": "socks5://user:hunter2hunter2@127.0.0.1:9"}, "HTTPS_PROXY", "pip install socksio"),
        ({"HTTP_PROXY": "ftp://127.0.0.1:21"}, "HTTP_PROXY", "ftp:// proxy"),
        ({"HTTPS_PROXY": "socks4://127.0.0.1:1080"}, "HTTPS_PROXY", "socks4:// proxy"),
        ({"HTTP_PROXY": "http://:8080"}, "HTTP_PROXY", "not a proxy URL"),
        ({"HTTP_PROXY": "http://127.0.0.1:port"}, "HTTP_PROXY", "not a proxy URL"),
        ({"HTTPS_PROXY": "http://[::1"}, "HTTPS_PROXY", "not a proxy URL"),
        ({"https_proxy": "ftp://127.0.0.1:1", "HTTPS_PROXY": "http://127.0.0.1:3128"}, "https_proxy", "ftp://"),
    ],
)
def test_an_unusable_proxy_variable_is_named_with_what_to_do(environ: dict[str, str], named: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_proxy_environment(environ)
    message = str(caught.value)
    assert f"{named}=" in message and says in message
    assert "unset" in message
    assert "hunter2" not in message


@pytest.mark.usefixtures("no_socksio")
@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"HTTP_PROXY": "http://127.0.0.1:3128", "HTTPS_PROXY": "https://user:pw@proxy.internal:443"},
        {"HTTP_PROXY": "127.0.0.1:3128"},  # no scheme: httpx2 assumes http://
        {"ALL_PROXY": "socks5://127.0.0.1:9", "NO_PROXY": "localhost, *"},  # every proxy off
        {"HTTP_PROXY": "ftp://127.0.0.1:21", "REQUEST_METHOD": "GET"},  # ignored in a CGI request, as by urllib
        {"HTTP_PROXY": ""},
        {"FTP_PROXY": "ftp://127.0.0.1:21"},  # not a scheme httpx2 proxies
    ],
)
def test_usable_or_ignored_proxy_settings_pass(environ: dict[str, str]) -> None:
    check_proxy_environment(environ)


def test_lowercase_wins_over_uppercase_as_in_urllib() -> None:
    chosen = proxy_variables({"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:2"})
    assert chosen == {"https": ("https_proxy", "http://b:2")}


@pytest.mark.anyio
@pytest.mark.usefixtures("no_socksio")
@pytest.mark.parametrize("kind", KINDS)
async def test_a_socks_proxy_without_socksio_fails_when_the_client_opens(
    server: FakeServer, kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
    llm = LLMCommunication(config(provider(server, kind)))
    with pytest.raises(ConfigurationError, match="ALL_PROXY") as caught:
        await llm.__aenter__()
    assert not caught.value.retryable
    assert server.requests == []


class ForwardProxy:
    """A loopback HTTP forward proxy: every request goes to one upstream port, whatever host it names."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.targets: list[str] = []

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            reader = BufferedByteReceiveStream(client)
            head = await reader.receive_until(b"\r\n\r\n", 65536)
            request_line, _, headers = head.partition(b"\r\n")
            method, target, version = request_line.split(b" ")
            self.targets.append(target.decode())
            path = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
            async with await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
                await upstream.send(b" ".join([method, path, version]) + b"\r\n" + headers + b"\r\n\r\n")
                async with anyio.create_task_group() as group:

                    async def up() -> None:
                        if reader.buffer:
                            await upstream.send(bytes(reader.buffer))
                        async for data in client:
                            await upstream.send(data)
                        group.cancel_scope.cancel()

                    async def down() -> None:
                        async for data in upstream:
                            await client.send(data)
                        group.cancel_scope.cancel()

                    group.start_soon(up)
                    group.start_soon(down)


@asynccontextmanager
async def forward_proxy(upstream_port: int) -> AsyncIterator[tuple[ForwardProxy, int]]:
    proxy = ForwardProxy(upstream_port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, proxy.handle)
        yield proxy, listener.extra(anyio.abc.SocketAttribute.local_port)
        group.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_working_http_proxy_from_the_environment_keeps_working(
    server: FakeServer, kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy(server.port) as (proxy, port):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        base_url = "http://llm.proxied.invalid" + ("/v1" if kind == "openai" else "")
        entry = ProviderConfig(name=kind, kind=kind, api_key="sk-test-0000000000", base_url=base_url)
        async with LLMCommunication(config(entry)) as llm:
            with anyio.fail_after(10):
                try:
                    text = await llm.generate_text("hi")
                except LLMException as error:  # pragma: no cover - the assertion below says what went wrong
                    pytest.fail(f"the call through the proxy failed: {error!r}")
    assert text == "Hello from llmcomm.testing."
    assert len(server.requests) == 1
    assert proxy.targets and proxy.targets[0].startswith("http://llm.proxied.invalid/")
