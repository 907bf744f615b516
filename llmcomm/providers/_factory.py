"""Providers from configuration: the kind → class table, kept out of the facade.

Each kind's module is imported only when a provider of that kind is built, so a
client of one kind never loads the others' code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import httpx2

from .._config import ProviderConfig
from ._base import BaseProvider

#: the kinds sent over HTTP (they share the client's connection pool)
HTTP_KINDS = frozenset({"anthropic", "openai"})


def build_provider(
    config: ProviderConfig, http_client: httpx2.AsyncClient | None, extra_headers: Mapping[str, str] | None = None
) -> BaseProvider:
    """The provider `config` describes; HTTP kinds send over `http_client`.

    `extra_headers` (the configuration-wide `Configuration.extra_headers`) go with
    every HTTP request; a provider's own `headers` win over them.
    """
    if config.kind in HTTP_KINDS and extra_headers:
        config = replace(config, headers={**extra_headers, **config.headers})
    if config.kind == "anthropic":
        from ._anthropic import AnthropicProvider

        return AnthropicProvider(config, http_client)
    if config.kind == "openai":
        from ._openai import OpenAIProvider

        return OpenAIProvider(config, http_client)
    from ._claude_cli import ClaudeCLIProvider

    return ClaudeCLIProvider(config)
