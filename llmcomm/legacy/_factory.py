"""Putting llmcomm into an application's service factory, and taking it out again.

    services = register_llm_services(registry)   # in the factory's initialize()
    ...                                          # getters hand out registry entries
    services.shutdown()                          # in the factory's shutdown()

`shutdown_llm_services()` is the process-wide switch: it closes the legacy
singletons and stops llmcomm's portal thread, cancelling whatever still runs on
it (which closes its connections and child processes).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from types import TracebackType
from typing import Final, Protocol, final, runtime_checkable

from .._portal import SHARED, STOP_TIMEOUT
from .._sync import SyncLLMCommunication
from ._manager import SimpleLLMManager
from ._service import SimpleLLMService
from ._singletons import _reset_legacy_singletons, current_legacy_singletons, get_llm_manager, get_llm_service

#: the registry names, in registration order: the sync facade, the legacy service, the legacy manager
SERVICE_NAMES: Final = ("llm_communication", "llm_service", "llm_manager")


@runtime_checkable
class ServiceRegistry(Protocol):
    """A registry with a `register(name, instance)` method."""

    def register(self, name: str, instance: object, /) -> object:
        """Make `instance` available under `name`."""
        ...


@final
class LLMServices:
    """What `register_llm_services()` registered; `shutdown()` closes it.

    `communication` is the `SyncLLMCommunication` the service and the manager share
    (None when no provider is configured), `service` is `get_llm_service()`,
    `manager` is `get_llm_manager()`, and `names` maps each to its registry name.
    """

    def __init__(
        self,
        communication: SyncLLMCommunication | None,
        service: SimpleLLMService,
        manager: SimpleLLMManager,
        names: dict[str, str],
    ) -> None:
        self.communication = communication
        self.service = service
        self.manager = manager
        self.names = names
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<LLMServices {state} names={sorted(self.names.values())}>"

    def __enter__(self) -> LLMServices:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Close the connections of these services (idempotent).

        When they were still the process-wide legacy instances, those are forgotten
        too, so `get_llm_service()` makes a fresh one afterwards. The portal thread
        stops once no other `SyncLLMCommunication` uses it.
        """
        if self.closed:
            return
        self.closed = True
        if current_legacy_singletons() == (self.service, self.manager):
            _reset_legacy_singletons()
        self.manager.close()
        self.service.close()


def register_llm_services(registry: MutableMapping[str, object] | ServiceRegistry, *, prefix: str = "") -> LLMServices:
    """Register llmcomm's services into an application's service registry, in one call.

    `registry` is a dict-like mapping or an object with a `register(name, instance)`
    method. The names (after `prefix`) are `llm_communication` (the
    `SyncLLMCommunication`, None when no provider is configured), `llm_service`
    (`get_llm_service()`) and `llm_manager` (`get_llm_manager()`). Nothing touches
    the network: connections open on the first call. Close them with the returned
    handle's `shutdown()` (or `shutdown_llm_services()`).
    """
    service = get_llm_service()
    manager = get_llm_manager()
    instances: tuple[object, ...] = (service.client, service, manager)
    names = {key: f"{prefix}{key}" for key in SERVICE_NAMES}
    for key, instance in zip(SERVICE_NAMES, instances, strict=True):
        if isinstance(registry, MutableMapping):
            registry[names[key]] = instance
        else:
            registry.register(names[key], instance)
    return LLMServices(service.client, service, manager, names)


def shutdown_llm_services(timeout: float = STOP_TIMEOUT) -> bool:
    """Shut llmcomm down in this process: close the legacy singletons, stop the portal thread.

    Anything still running on the portal (calls, streams, a `SyncLLMCommunication`
    someone left open) is cancelled, which closes its connections and child
    processes; such a facade then refuses calls. Returns True when the portal
    thread has ended within `timeout` seconds. Safe to call more than once.
    """
    _reset_legacy_singletons()
    return SHARED.shutdown(timeout)
