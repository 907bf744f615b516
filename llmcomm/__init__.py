"""llmcomm: one async-first streaming interface to Anthropic, OpenAI and the Claude Code CLI.

    async with LLMCommunication() as llm:
        async with llm.generate_stream("Tell me a joke") as stream:
            async for chunk in stream:
                print(chunk.text, end="")

Importing llmcomm never imports a provider SDK, reads the environment or touches
the network: that happens when an `LLMCommunication` is built and opened.
"""

from typing import TYPE_CHECKING, Any

from ._call_options import CallOptions as CallOptions
from ._client import LLMCommunication as LLMCommunication
from ._config import Configuration as Configuration
from ._config import ProviderConfig as ProviderConfig
from ._errors import AllProvidersFailedError as AllProvidersFailedError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import LLMException as LLMException
from ._errors import LLMTimeoutError as LLMTimeoutError
from ._errors import OutputValidationError as OutputValidationError
from ._errors import ProviderUnavailableError as ProviderUnavailableError
from ._errors import RateLimitError as RateLimitError
from ._errors import StreamInterruptedError as StreamInterruptedError
from ._errors import ToolLoopError as ToolLoopError
from ._events import Observer as Observer
from ._messages import DocumentPart as DocumentPart
from ._messages import ImagePart as ImagePart
from ._messages import Message as Message
from ._messages import ReasoningPart as ReasoningPart
from ._messages import TextPart as TextPart
from ._messages import Tool as Tool
from ._messages import ToolCall as ToolCall
from ._messages import ToolCallDelta as ToolCallDelta
from ._observability import HookEvent as HookEvent
from ._observability import Hooks as Hooks
from ._observability import JSONFormatter as JSONFormatter
from ._observability import Metrics as Metrics
from ._observability import OpenTelemetry as OpenTelemetry
from ._observability import RedactingFilter as RedactingFilter
from ._observability import RequestIdFilter as RequestIdFilter
from ._observability import current_request_id as current_request_id
from ._observability import enable_legacy_log_file as enable_legacy_log_file
from ._routing import AdaptiveHedge as AdaptiveHedge
from ._routing import CooldownTracker as CooldownTracker
from ._routing import ProviderManager as ProviderManager
from ._routing import RetryHandler as RetryHandler
from ._stream import LLMStream as LLMStream
from ._sync import SyncLLMCommunication as SyncLLMCommunication
from ._sync import SyncLLMStream as SyncLLMStream
from ._types import Attempt as Attempt
from ._types import LLMResponse as LLMResponse
from ._types import Request as Request
from ._types import StreamChunk as StreamChunk
from ._types import UsageInfo as UsageInfo
from .legacy import LLMMessage as LLMMessage
from .legacy import SimpleLLMManager as SimpleLLMManager
from .legacy import SimpleLLMService as SimpleLLMService
from .legacy import get_llm_manager as get_llm_manager
from .legacy import get_llm_service as get_llm_service
from .legacy._factory import LLMServices as LLMServices
from .legacy._factory import register_llm_services as register_llm_services
from .legacy._factory import shutdown_llm_services as shutdown_llm_services
from .providers._base import BaseProvider as BaseProvider

if TYPE_CHECKING:
    from .providers._anthropic import AnthropicProvider as AnthropicProvider
    from .providers._claude_cli import ClaudeCLIProvider as ClaudeCLIProvider
    from .providers._openai import OpenAIProvider as OpenAIProvider

from ._version import __version__ as __version__

_LAZY = {
    "AnthropicProvider": "llmcomm.providers._anthropic",
    "ClaudeCLIProvider": "llmcomm.providers._claude_cli",
    "OpenAIProvider": "llmcomm.providers._openai",
}

__all__ = [
    "AdaptiveHedge",
    "AllProvidersFailedError",
    "AnthropicProvider",
    "Attempt",
    "AuthenticationError",
    "BaseProvider",
    "CallOptions",
    "ClaudeCLIProvider",
    "Configuration",
    "ConfigurationError",
    "CooldownTracker",
    "DocumentPart",
    "HookEvent",
    "Hooks",
    "ImagePart",
    "InvalidRequestError",
    "JSONFormatter",
    "LLMCommunication",
    "LLMException",
    "LLMMessage",
    "LLMResponse",
    "LLMServices",
    "LLMStream",
    "LLMTimeoutError",
    "Message",
    "Metrics",
    "Observer",
    "OpenAIProvider",
    "OpenTelemetry",
    "OutputValidationError",
    "ProviderConfig",
    "ProviderManager",
    "ProviderUnavailableError",
    "RateLimitError",
    "ReasoningPart",
    "RedactingFilter",
    "Request",
    "RequestIdFilter",
    "RetryHandler",
    "SimpleLLMManager",
    "SimpleLLMService",
    "StreamChunk",
    "StreamInterruptedError",
    "SyncLLMCommunication",
    "SyncLLMStream",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolLoopError",
    "UsageInfo",
    "current_request_id",
    "enable_legacy_log_file",
    "get_llm_manager",
    "get_llm_service",
    "register_llm_services",
    "shutdown_llm_services",
]


def __getattr__(name: str) -> Any:
    # Provider classes load lazily: `import llmcomm` stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmcomm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
