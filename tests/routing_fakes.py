"""Scripted providers for the routing tests: no sockets, every step on the event loop's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from llmcomm import Configuration, LLMCommunication, Request, StreamChunk, UsageInfo

#: a step that ends the reply: the closing chunk with finish_reason "stop" and usage
FINISH = "<finish>"
#: a step that yields an empty chunk (a keep-alive: not progress)
PING = "<ping>"

Step = float | int | str | BaseException


class Scripted:
    """A provider that plays `scripts` in turn, one per attempt (the last one repeats).

    A number sleeps that many seconds, a string is a text chunk (`FINISH` ends the
    reply, `PING` is an empty chunk), an exception is raised. Each attempt's start
    and close times (`anyio.current_time()`) are recorded.
    """

    kind = "custom"

    def __init__(self, name: str, *scripts: Sequence[Step], timeout: float | None = None, model: str = "m") -> None:
        self.name = name
        self.model = model
        self.scripts = list(scripts) or [["hello", FINISH]]
        self.started: list[float] = []
        self.closed: list[float] = []
        if timeout is not None:
            self.timeout = timeout  # a user's provider declares its per-attempt limit so

    def __repr__(self) -> str:
        return f"Scripted({self.name!r})"

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        script = self.scripts[min(len(self.started), len(self.scripts) - 1)]
        self.started.append(anyio.current_time())
        try:
            for step in script:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, int | float):
                    await anyio.sleep(step)
                elif step == FINISH:
                    yield StreamChunk("", self.name, self.model, 0, "stop", UsageInfo.of(3, 2))
                elif step == PING:
                    yield StreamChunk("", self.name, self.model)
                else:
                    yield StreamChunk(step, self.name, self.model)
        finally:
            self.closed.append(anyio.current_time())

    async def aclose(self) -> None:
        pass


def client(*providers: Any, **options: Any) -> LLMCommunication:
    """A client of scripted providers; retries off unless asked for."""
    options.setdefault("max_retries", 0)
    return LLMCommunication(Configuration(providers=providers, **options))
