"""The points where a call reports what happens to it.

The race (`llmcomm._routing`) tells the `Observer` of its `ProviderManager` about
every call's start, first token, retries, fallbacks, end, failure and
cancellation; every call that started (on its first read) ends with exactly one
of `request_end`, `request_error` and `request_cancelled`. Logging, metrics,
hooks and OpenTelemetry hear of them through one observer (`llmcomm._observability`);
the race knows nothing of them. Callbacks are
synchronous and must be cheap: they run on the request's path, in the caller's
task (or an attempt's task during a hedged race). Whatever one raises is logged
and the call goes on.

Each call tells its own observer, which `call_observer()` picks when the call is
made: the manager's `Observer` itself, or, when the manager was given a
`PerCallObserver` (an `LLMCommunication`'s observability is one), the observer it
makes for that call. What is kept about a call therefore lives with the call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from ._errors import LLMException
from ._types import LLMResponse, Request

#: how a `fallback` reason starts when the provider rejected the request itself (a 400):
#: such a fallback is worth a WARNING, since every call pays for the doomed request
REJECTED = "request rejected"


class Observer(Protocol):
    """Receives the events of every call a `ProviderManager` serves."""

    def request_start(self, request: Request, providers: tuple[str, ...]) -> None:
        """A call began; `providers` is the order it will try."""

    def attempt_start(self, request: Request, provider: str, model: str, reason: str) -> None:
        """An attempt began: `reason` is "first", "fallback", "hedge" or "retry"."""

    def first_token(self, request: Request, provider: str, model: str, seconds: float) -> None:
        """The winning attempt produced its first content, `seconds` after the call began."""

    def retry(self, request: Request, provider: str, error: LLMException, delay: float) -> None:
        """`provider` failed with a retryable error and is tried again after `delay` s."""

    def fallback(self, request: Request, from_provider: str, to_provider: str, reason: str) -> None:
        """The next provider starts because the running one failed or stayed silent.

        `reason` is the error's class name, a "no first token within N s" note, or,
        when the provider rejected the request itself, `REJECTED` followed by the
        status and the provider's message.
        """

    def request_end(self, request: Request, response: LLMResponse) -> None:
        """The call finished with `response`."""

    def request_error(self, request: Request, error: LLMException, seconds: float) -> None:
        """The call failed with `error` after `seconds`."""

    def request_cancelled(self, request: Request, seconds: float) -> None:
        """The call was closed or cancelled after `seconds`, before it finished or failed."""


class NullObserver:
    """An `Observer` that ignores everything."""

    def request_start(self, request: Request, providers: tuple[str, ...]) -> None:
        pass

    def attempt_start(self, request: Request, provider: str, model: str, reason: str) -> None:
        pass

    def first_token(self, request: Request, provider: str, model: str, seconds: float) -> None:
        pass

    def retry(self, request: Request, provider: str, error: LLMException, delay: float) -> None:
        pass

    def fallback(self, request: Request, from_provider: str, to_provider: str, reason: str) -> None:
        pass

    def request_end(self, request: Request, response: LLMResponse) -> None:
        pass

    def request_error(self, request: Request, error: LLMException, seconds: float) -> None:
        pass

    def request_cancelled(self, request: Request, seconds: float) -> None:
        pass


class PerCallObserver(ABC):
    """Makes an `Observer` for each call, one that keeps what it needs about that call."""

    @abstractmethod
    def for_call(self, request: Request) -> Observer:
        """The observer of the call of `request` (asked once, when the call is made)."""


def call_observer(observer: Observer | PerCallObserver, request: Request) -> Observer:
    """The `Observer` the call of `request` tells: `observer`, or the one it makes for the call."""
    return observer.for_call(request) if isinstance(observer, PerCallObserver) else observer
