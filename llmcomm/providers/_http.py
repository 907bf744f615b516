"""The pooled HTTP client every HTTP provider sends over, and transport failures mapped once."""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import AsyncIterator, Mapping

import anyio
import httpx2

from .._config import ProviderConfig
from .._errors import ConfigurationError, LLMException, ProviderUnavailableError
from .._secrets import mask_url
from ._watch import watch_connections

# Enough for a thousand concurrent streams on one client; a request that cannot get
# a connection within POOL_TIMEOUT fails with a typed error instead of hanging.
MAX_CONNECTIONS = 1000
MAX_KEEPALIVE = 100
POOL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0


#: how long the end of a body may take once its terminal event arrived
DRAIN_TIMEOUT = 1.0


async def drain(body: AsyncIterator[bytes]) -> None:
    """Read what is left of a body after its terminal event.

    A response read to its end returns its connection to the pool for the next
    request; one closed early costs a new TCP (and TLS) handshake.
    """
    with anyio.move_on_after(DRAIN_TIMEOUT):
        async for _ in body:
            pass


def request_timeout(timeout: float, pool: float | None = None) -> httpx2.Timeout:
    """Per-attempt timeouts: `timeout` is also the longest silence tolerated on a connection.

    `pool` is how long a request may wait for a free connection (default `POOL_TIMEOUT`).
    """
    return httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout), pool=min(pool or POOL_TIMEOUT, timeout))


def new_http_client(
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout: float = POOL_TIMEOUT,
    environ: Mapping[str, str] | None = None,
    *,
    proxy: str | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> httpx2.AsyncClient:
    """The pooled client one `LLMCommunication` sends every HTTP request over.

    `proxy` (a URL: http://, https://, socks5://, socks5h://) carries every request;
    without it, proxies come from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
    `ALL_PROXY`, `NO_PROXY`, either case) as httpx2 reads them. `verify` is False
    (no TLS verification), the path of a CA bundle (a file, or a directory of
    certificates) or an `ssl.SSLContext`. Raises `ConfigurationError`
    naming the setting when a proxy cannot be used (a SOCKS proxy without the
    socksio package, a malformed URL, an unknown scheme).
    """
    if proxy is not None:
        check_proxy_setting("proxy", proxy, "Configuration(proxy=...)")
    else:
        check_proxy_environment(os.environ if environ is None else environ)
    failure = None
    try:
        if isinstance(verify, str):
            if os.path.isdir(verify):
                verify = ssl.create_default_context(capath=verify)
            else:
                verify = ssl.create_default_context(cafile=verify)
        client = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=MAX_KEEPALIVE),
            timeout=httpx2.Timeout(60.0, connect=CONNECT_TIMEOUT, pool=pool_timeout),
            follow_redirects=False,
            proxy=proxy,
            verify=verify,
        )
        watch_connections(client)
        return client
    except (ImportError, ValueError, httpx2.InvalidURL) as exc:  # a proxy setting this check does not know
        failure = type(exc).__name__
    except (OSError, ssl.SSLError) as exc:  # a CA bundle that cannot be read
        raise ConfigurationError(
            f"the CA bundle given as verify= cannot be read ({type(exc).__name__}); check the path"
        ) from None
    setting = "Configuration(proxy=...)" if proxy is not None else "HTTP_PROXY, HTTPS_PROXY and ALL_PROXY"
    raise ConfigurationError(
        f"the HTTP client cannot be built from the proxy settings ({failure}); check {setting}, or unset them"
    )


#: proxy schemes httpx2 can use, and what each needs
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def proxy_variables(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The proxy settings httpx2 would use: scheme ("http", "https", "all") -> (variable, value).

    The rules of `urllib.request.getproxies_environment`: a lowercase variable wins
    over its uppercase twin, `HTTP_PROXY` is ignored in a CGI request, and
    `NO_PROXY=*` turns every proxy off.
    """
    chosen: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        scheme = name.lower().removesuffix("_proxy")
        if name.lower().endswith("_proxy") and scheme in ("http", "https", "all", "no") and value:
            if name == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
                continue
            if scheme not in chosen or name.islower():
                chosen[scheme] = (name, value)
    no_proxy = chosen.pop("no", ("", ""))[1]
    if "*" in (host.strip() for host in no_proxy.split(",")):
        return {}
    return chosen


def check_proxy_environment(environ: Mapping[str, str]) -> None:
    """Raise `ConfigurationError` naming the variable when a proxy setting cannot be used.

    The value is shown with its credentials masked; the message says what to do.
    """
    for name, value in proxy_variables(environ).values():
        check_proxy_setting(name, value, f"unset {name}")


def check_proxy_setting(name: str, value: str, otherwise: str) -> None:
    """Raise `ConfigurationError` when the proxy URL `value` (set as `name`) cannot be used.

    `otherwise` ends the advice (what else the user may do). Credentials are masked.
    """
    url = value.strip() if "://" in value else f"http://{value.strip()}"
    shown = f"{name}={mask_url(value)!r}"
    try:
        parsed = httpx2.URL(url)
        scheme, host = parsed.scheme, parsed.host
    except (httpx2.InvalidURL, ValueError, TypeError):
        scheme, host = "", ""
    if not host:
        raise ConfigurationError(f"{shown} is not a proxy URL; set it like http://host:port, or {otherwise}")
    if scheme not in _PROXY_SCHEMES:
        raise ConfigurationError(
            f"{shown} names a {scheme}:// proxy, which is not supported; use http://, https://, socks5:// "
            f"or socks5h://, or {otherwise}"
        )
    if scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise ConfigurationError(
            f"{shown} names a SOCKS proxy, but SOCKS support is not installed: "
            f"pip install socksio (or 'httpx2[socks]'), or {otherwise}"
        )


def map_transport_error(exc: BaseException, provider: str, config: ProviderConfig) -> LLMException:
    """A connection-level failure (raw httpx2 or wrapped by an SDK) as an llmcomm error."""
    cause: BaseException = exc
    # SDK connection errors wrap the httpx2 error that says what really happened.
    while not isinstance(cause, httpx2.HTTPError) and cause.__cause__ is not None:
        cause = cause.__cause__
    where = mask_url(config.base_url) or f"the {config.kind} API"
    if isinstance(cause, httpx2.PoolTimeout):
        message = "no free connection in the pool in time; lower the concurrency or raise the pool size"
    elif isinstance(cause, httpx2.ConnectTimeout):
        message = f"connecting to {where} timed out; check the base URL and the network"
    elif isinstance(cause, httpx2.TimeoutException) or "timed out" in str(exc).lower():
        message = f"{where} sent nothing for {config.timeout:g} s; try again or raise the provider timeout"
    elif isinstance(cause, httpx2.ConnectError):
        message = f"cannot connect to {where}; check the base URL and that the server is running"
    elif isinstance(cause, httpx2.RemoteProtocolError | httpx2.ReadError | httpx2.WriteError):
        message = f"the connection to {where} broke mid-response; try again"
    else:
        message = f"transport failure talking to {where} ({type(cause).__name__}); try again"
    return ProviderUnavailableError(message, provider=provider)
