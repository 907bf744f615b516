"""The legacy drop-in: `SimpleLLMService`, `LLMMessage`, `SimpleLLMManager` and their singletons.

LEGACY.md beside DESIGN.md describes the interface these reproduce. The
process-wide instances are made on first use, behind a lock: importing llmcomm
reads no environment, starts no thread and touches no network.
"""

from __future__ import annotations

import threading

from ._legacy_manager import SimpleLLMManager
from ._legacy_service import LLMMessage, SimpleLLMService

__all__ = ["LLMMessage", "SimpleLLMManager", "SimpleLLMService", "get_llm_manager", "get_llm_service"]

_lock = threading.Lock()
_service: SimpleLLMService | None = None
_manager: SimpleLLMManager | None = None


def get_llm_service() -> SimpleLLMService:
    """The process-wide `SimpleLLMService`, made from the environment on first use."""
    global _service
    service = _service
    if service is not None:
        return service
    with _lock:
        if _service is None:
            _service = SimpleLLMService()
        return _service


def get_llm_manager() -> SimpleLLMManager:
    """The process-wide `SimpleLLMManager`; its default service is `get_llm_service()`."""
    global _manager
    manager = _manager
    if manager is not None:
        return manager
    service = get_llm_service()
    with _lock:
        if _manager is None:
            manager = SimpleLLMManager()
            manager.register_service(manager.default_provider, service)  # one set of connections
            _manager = manager
        return _manager


def current_legacy_singletons() -> tuple[SimpleLLMService | None, SimpleLLMManager | None]:
    """The process-wide instances made so far (None where none was)."""
    return _service, _manager


def _reset_legacy_singletons() -> None:
    """Close and forget the process-wide instances; the next getter call makes new ones.

    For tests (between cases, after changing the environment) and for
    `shutdown_llm_services()`.
    """
    global _service, _manager
    with _lock:
        service, manager = _service, _manager
        _service = _manager = None
    if manager is not None:
        manager.close()
    if service is not None:
        service.close()
