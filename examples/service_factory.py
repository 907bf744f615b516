"""llmcomm in an application's service factory: `initialize()` → getters → `shutdown()`.

The factory below has the shape of the legacy one: it creates its services in
`initialize()`, hands them out through getters, and closes them in `shutdown()`.
llmcomm slots in with one call each way. Request handlers keep calling the legacy
`SimpleLLMService` and `SimpleLLMManager` exactly as before, from worker threads,
including the one that makes a new event loop for every request.

With no provider key in the environment it runs against `llmcomm.testing`, the
loopback fake of the provider APIs:

    python examples/service_factory.py
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import cast

from llmcomm import LLMMessage, LLMServices, SimpleLLMManager, SimpleLLMService, register_llm_services
from llmcomm.testing import FakeServer, Script


class ServiceFactory:
    """The application's service factory."""

    def __init__(self) -> None:
        self._services: dict[str, object] = {}
        self._llm: LLMServices | None = None

    def initialize(self) -> None:
        # One call puts llmcomm's services into the registry (no network I/O yet).
        self._llm = register_llm_services(self._services)

    def get_llm_service(self) -> SimpleLLMService:
        return cast(SimpleLLMService, self._services["llm_service"])

    def get_llm_manager(self) -> SimpleLLMManager:
        return cast(SimpleLLMManager, self._services["llm_manager"])

    def shutdown(self) -> None:
        # One call closes the connections, the portal thread and any child processes.
        if self._llm is not None:
            self._llm.shutdown()
        self._services.clear()


def handle_chat(factory: ServiceFactory, question: str) -> str:
    """A legacy Flask handler: a sync call from a worker thread."""
    reply = factory.get_llm_service().simple_llm(question)
    if reply.startswith(("API错误", "调用失败")):
        return f"sorry: {reply}"
    return reply


def handle_role_play(factory: ServiceFactory, task: str) -> str:
    """A legacy handler that runs the async manager in a brand-new event loop."""
    manager = factory.get_llm_manager()
    messages = manager.build_context_messages({"name": "Ada", "role": "tutor"}, {"prompt": task})
    loop = asyncio.new_event_loop()
    try:
        response = loop.run_until_complete(manager.generate_response(messages=messages))
    finally:
        loop.close()
    return f"{response.content} [{response.provider}, {response.usage['total_tokens']} tokens]"


def main() -> None:
    with ExitStack() as stack:
        if not any(os.environ.get(name) for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")):
            server = stack.enter_context(FakeServer(default=Script(text="Hello from the fake provider.")))
            os.environ.update(
                ANTHROPIC_API_KEY="example-key-0123456789",
                ANTHROPIC_BASE_URL=server.anthropic_base_url,
                LLM_PROVIDERS="anthropic",
            )
            print(f"no provider key set: using llmcomm.testing at {server.anthropic_base_url}")
        # The legacy service also writes logs/llm_requests.log; this example keeps the disk clean.
        os.environ.setdefault("ENABLE_LLM_SPECIAL_LOG", "false")

        factory = ServiceFactory()
        factory.initialize()
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                chats = pool.map(lambda i: handle_chat(factory, f"Question {i}: say hello."), range(4))
                plays = pool.map(lambda i: handle_role_play(factory, f"Exercise {i}: greet me."), range(4))
                for line in [*chats, *plays]:
                    print(line)
            service = factory.get_llm_service()
            system_first = [LLMMessage("system", "Answer in one word."), LLMMessage("user", "Greeting?")]
            print(service.generate_response(system_first).content)
            print("available providers:", factory.get_llm_manager().list_available_providers())
        finally:
            factory.shutdown()
    print("shut down cleanly")


if __name__ == "__main__":
    main()
