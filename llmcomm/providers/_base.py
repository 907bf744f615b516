"""The provider protocol, and the failure classification every provider shares."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Protocol, runtime_checkable

from .._capabilities import declared
from .._config import ProviderConfig
from .._types import ChunkBatch, Request, StreamChunk


@runtime_checkable
class BaseProvider(Protocol):
    """What llmcomm needs from a provider.

    `stream(request)` is an async generator of `StreamChunk`s: content chunks with
    non-empty text, then one closing chunk with `finish_reason` (and `usage` when
    known). It raises only `LLMException`s, and closes whatever it opened (an HTTP
    response, a process) when it is closed early. `aclose()` releases what the
    provider owns. A user's own provider (a local model, a test double) implements
    the same four members and can be placed in a `Configuration`.

    Optional members, read through the functions here (and `_capabilities`) only:
    `config` (the `ProviderConfig` a built-in was made from: its `timeout` bounds
    each attempt, its `api_key` is kept out of errors, its prices give the cost),
    `timeout` (seconds, the per-attempt bound of a provider without a `config`;
    without either, only the call's deadline bounds an attempt), `capabilities`
    (`llmcomm._capabilities`) and `stream_batches(request)` (the reply in batches
    of chunks, as the built-in HTTP providers decode it).
    """

    name: str
    kind: str
    model: str

    def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        """Stream the reply to `request`."""
        ...

    async def aclose(self) -> None:
        """Release the provider's resources."""
        ...


def config_of(provider: BaseProvider) -> ProviderConfig | None:
    """The `ProviderConfig` `provider` was made from; None for a user's own provider object."""
    config = declared(provider, "config")
    return config if isinstance(config, ProviderConfig) else None


def secret_of(provider: BaseProvider) -> str | None:
    """The API key `provider` sends, to be kept out of whatever it raises (None: none known)."""
    config = config_of(provider)
    return config.api_key if config is not None else None


def attempt_timeout(provider: BaseProvider) -> float:
    """The longest one attempt on `provider` may take, in seconds (inf: the call's deadline alone).

    A built-in's `config.timeout`; for a user's own provider its `timeout`
    attribute, when it declares a positive one.
    """
    config = config_of(provider)
    limit = config.timeout if config is not None else declared(provider, "timeout")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        return math.inf
    return float(limit)


def stream_batches(provider: BaseProvider, request: Request) -> AsyncIterator[ChunkBatch]:
    """`provider`'s reply as batches of chunks, the form the race hands on.

    The built-in HTTP providers decode each network read into one batch
    (`stream_batches(request)`), so the per-token path costs no task hand-off; any
    other provider's chunks travel one per batch.
    """
    native = declared(provider, "stream_batches")
    if callable(native):
        batches: AsyncIterator[ChunkBatch] = native(request)
        return batches
    return _one_per_batch(provider.stream(request))


async def _one_per_batch(chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[ChunkBatch]:
    async with aclosing(chunks):  # type: ignore[type-var]
        async for chunk in chunks:
            yield [chunk]


async def flatten(batches: AsyncIterator[ChunkBatch]) -> AsyncIterator[StreamChunk]:
    """The chunks of `batches`, one at a time: a built-in provider's `stream()`."""
    async with aclosing(batches):  # type: ignore[type-var]
        async for batch in batches:
            for chunk in batch:
                yield chunk
