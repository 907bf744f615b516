"""The legacy drop-in: the names of the application's `simple_llm.py` and `llm/manager.py`.

Each of those two files becomes one line::

    from llmcomm.legacy import *

which binds `SimpleLLMService`, `SimpleLLMManager`, `LLMResponse`, `LLMMessage`,
`get_llm_service`, `get_llm_manager` and the process-wide instances
`simple_llm_service` and `llm_manager`. The instances are made on first access,
once per process and thread-safely; importing this module reads no environment,
starts no thread and touches no network, and making them never fails when no
provider is configured (their calls then return the legacy failure strings, which
name the variables to set). LEGACY.md describes the interface.
"""

from typing import TYPE_CHECKING, Any

from .._types import LLMResponse
from ._manager import SimpleLLMManager
from ._service import LLMMessage, SimpleLLMService
from ._singletons import get_llm_manager, get_llm_service

if TYPE_CHECKING:
    llm_manager: SimpleLLMManager
    simple_llm_service: SimpleLLMService

__all__ = [
    "LLMMessage",
    "LLMResponse",
    "SimpleLLMManager",
    "SimpleLLMService",
    "get_llm_manager",
    "get_llm_service",
    "llm_manager",
    "simple_llm_service",
]

#: the instances made on first access, by the getter that makes each
_INSTANCES = {"llm_manager": get_llm_manager, "simple_llm_service": get_llm_service}


def __getattr__(name: str) -> Any:
    # Not cached in the module: after shutdown_llm_services() the next access gets a fresh instance.
    getter = _INSTANCES.get(name)
    if getter is None:
        raise AttributeError(f"module 'llmcomm.legacy' has no attribute {name!r}")
    return getter()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
