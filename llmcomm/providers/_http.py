"""The HTTP client llmcomm shares between the SDKs, and transport failures mapped once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2

from .._config import ProviderConfig
from .._errors import LLMException, ProviderUnavailableError

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


def sdk_arguments(body: dict[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """SDK call arguments for a wire `body`.

    Only the fields every SDK version takes by name are passed by name; the rest go
    in `extra_body`, so options the SDK's signature does not list (or no longer
    lists) still reach the server unchanged.
    """
    arguments = {k: v for k, v in body.items() if k in named}
    extra = {k: v for k, v in body.items() if k not in named}
    if extra:
        arguments["extra_body"] = extra
    return arguments


def sdk_timeout(timeout: float) -> httpx2.Timeout:
    """Per-attempt timeouts: `timeout` is also the longest silence tolerated on a connection."""
    return httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout), pool=min(POOL_TIMEOUT, timeout))


def new_http_client(max_connections: int = MAX_CONNECTIONS, pool_timeout: float = POOL_TIMEOUT) -> httpx2.AsyncClient:
    """The pooled client one `LLMCommunication` hands to every SDK it uses."""
    return httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=MAX_KEEPALIVE),
        timeout=httpx2.Timeout(60.0, connect=CONNECT_TIMEOUT, pool=pool_timeout),
        follow_redirects=False,
    )


def map_transport_error(exc: BaseException, provider: str, config: ProviderConfig) -> LLMException:
    """A connection-level failure (raw httpx2 or wrapped by an SDK) as an llmcomm error."""
    cause: BaseException = exc
    # SDK connection errors wrap the httpx2 error that says what really happened.
    while not isinstance(cause, httpx2.HTTPError) and cause.__cause__ is not None:
        cause = cause.__cause__
    where = config.base_url or f"the {config.kind} API"
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
