"""llmcomm: one async-first streaming interface to Anthropic, OpenAI and the Claude Code CLI.

    async with LLMCommunication() as llm:
        async with llm.generate_stream("Tell me a joke") as stream:
            async for chunk in stream:
                print(chunk.text, end="")

Importing llmcomm never imports a provider SDK, reads the environment or touches
the network: that happens when an `LLMCommunication` is built and opened.
"""

from typing import TYPE_CHECKING, Any

from ._client import LLMCommunication as LLMCommunication
from ._config import Configuration as Configuration
from ._config import ProviderConfig as ProviderConfig
from ._errors import AllProvidersFailedError as AllProvidersFailedError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import LLMException as LLMException
from ._errors import LLMTimeoutError as LLMTimeoutError
from ._errors import ProviderUnavailableError as ProviderUnavailableError
from ._errors import RateLimitError as RateLimitError
from ._errors import StreamInterruptedError as StreamInterruptedError
from ._events import Observer as Observer
from ._manager import ProviderManager as ProviderManager
from ._retry import CooldownTracker as CooldownTracker
from ._retry import RetryHandler as RetryHandler
from ._stream import LLMStream as LLMStream
from ._types import Attempt as Attempt
from ._types import LLMResponse as LLMResponse
from ._types import Message as Message
from ._types import Request as Request
from ._types import StreamChunk as StreamChunk
from ._types import UsageInfo as UsageInfo
from .providers._base import BaseProvider as BaseProvider

if TYPE_CHECKING:
    from .providers._anthropic import AnthropicProvider as AnthropicProvider
    from .providers._claude_cli import ClaudeCLIProvider as ClaudeCLIProvider
    from .providers._openai import OpenAIProvider as OpenAIProvider

__version__ = "0.1.0"

_LAZY = {
    "AnthropicProvider": "llmcomm.providers._anthropic",
    "ClaudeCLIProvider": "llmcomm.providers._claude_cli",
    "OpenAIProvider": "llmcomm.providers._openai",
}

__all__ = [
    "AllProvidersFailedError",
    "AnthropicProvider",
    "Attempt",
    "AuthenticationError",
    "BaseProvider",
    "ClaudeCLIProvider",
    "Configuration",
    "ConfigurationError",
    "CooldownTracker",
    "InvalidRequestError",
    "LLMCommunication",
    "LLMException",
    "LLMResponse",
    "LLMStream",
    "LLMTimeoutError",
    "Message",
    "Observer",
    "OpenAIProvider",
    "ProviderConfig",
    "ProviderManager",
    "ProviderUnavailableError",
    "RateLimitError",
    "Request",
    "RetryHandler",
    "StreamChunk",
    "StreamInterruptedError",
    "UsageInfo",
]


def __getattr__(name: str) -> Any:
    # Provider classes load lazily: `import llmcomm` stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmcomm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
