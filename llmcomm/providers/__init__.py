"""Providers: each turns a `Request` into wire calls and wire events into `StreamChunk`s.

The SDK behind each is imported only when a provider of its kind is built.
"""

from typing import TYPE_CHECKING, Any

from ._base import BaseProvider as BaseProvider

if TYPE_CHECKING:
    from ._anthropic import AnthropicProvider as AnthropicProvider
    from ._claude_cli import ClaudeCLIProvider as ClaudeCLIProvider
    from ._openai import OpenAIProvider as OpenAIProvider

_LAZY = {
    "AnthropicProvider": "._anthropic",
    "OpenAIProvider": "._openai",
    "ClaudeCLIProvider": "._claude_cli",
}

__all__ = ["AnthropicProvider", "BaseProvider", "ClaudeCLIProvider", "OpenAIProvider"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import llmcomm` never imports an SDK.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
