"""The process-wide legacy instances, made on first use behind a lock.

Importing llmcomm (or `llmcomm.legacy`) reads no environment, starts no thread
and touches no network: the instances are made by the first getter call, or by
the first access to `llmcomm.legacy.llm_manager` / `simple_llm_service`.
"""

from __future__ import annotations

import threading

from ._manager import SimpleLLMManager
from ._service import SimpleLLMService

# Re-entrant: making the manager asks for the service.
_lock = threading.RLock()
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
    """The process-wide `SimpleLLMManager`; its `simple_llm_service` is `get_llm_service()`."""
    global _manager
    manager = _manager
    if manager is not None:
        return manager
    with _lock:
        if _manager is None:
            _manager = SimpleLLMManager()
        return _manager


def current_legacy_singletons() -> tuple[SimpleLLMService | None, SimpleLLMManager | None]:
    """The process-wide instances made so far (None where none was)."""
    return _service, _manager


def _reset_legacy_singletons() -> None:
    """Close and forget the process-wide instances; the next getter call makes new ones.

    For tests (between cases, after changing the environment) and for
    `shutdown_llm_services()`. Names bound earlier (`from llmcomm.legacy import
    llm_manager`) keep the closed instances.
    """
    global _service, _manager
    with _lock:
        service, manager = _service, _manager
        _service = _manager = None
    if manager is not None:
        manager.close()
    if service is not None:
        service.close()
