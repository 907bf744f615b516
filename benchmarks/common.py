"""What every measured subject provides, and the small helpers they share."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Api = Literal["anthropic", "openai"]
APIS: tuple[Api, ...] = ("anthropic", "openai")
PROMPT = "Say something."
API_KEY = "bench"
#: environment every subject process runs with: no network look-ups, no telemetry
QUIET_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "ANTHROPIC_LOG": "",
    "OPENAI_LOG": "",
}

#: awaited once a stream has its first content token (the 1000-stream run holds every stream there)
Hold = Callable[[], Awaitable[None]]


def model_for(tokens: int, gate: int = 0) -> str:
    """The model name that makes `benchmarks.server` reply with `tokens` content tokens.

    With `gate`, the server holds each reply after its first token until `gate`
    of them are open (see `benchmarks.server.parse_model`).
    """
    return f"bench-{tokens}-gate{gate}" if gate else f"bench-{tokens}"


def base_url(api: Api, origin: str) -> str:
    """What `base_url` means to the official SDK of `api` (DESIGN.md)."""
    return f"{origin}/v1" if api == "openai" else origin


class Client(Protocol):
    """One subject's client, open on one API of the benchmark server."""

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        """Stream a reply from `model` (see `model_for`); return the content tokens seen and when the first came.

        The time is `time.perf_counter()` at the first non-empty content token.
        """
        ...

    async def complete(self) -> None:
        """Make one tiny request the way a user of this subject would (non-streaming where possible)."""
        ...

    async def aclose(self) -> None:
        """Release the client's connections."""
        ...


@dataclass(frozen=True, slots=True)
class Subject:
    """A measured way of talking to an LLM API."""

    name: str
    apis: tuple[Api, ...]
    #: modules a user imports to use it (the cold-import measurement)
    imports: tuple[str, ...]
    open: Callable[[Api, str], Awaitable[Client]]
    #: what it is, for the report
    description: str
    #: the anyio backend its measurements run on
    backend: str = "asyncio"


def rss_bytes() -> int:
    """This process's resident set size now."""
    return _status_field("VmRSS")


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far."""
    return _status_field("VmHWM")


def _status_field(name: str) -> int:
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
