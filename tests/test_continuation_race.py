"""continue_on_interrupt in virtual time, with scripted providers: which replies are continued, and closes.

trio's MockClock jumps to the next deadline; the providers record the request they received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio
import pytest
import trio.testing

from llmcomm import LLMException, ProviderUnavailableError, Request, StreamChunk, StreamInterruptedError

from .routing_fakes import FINISH, Scripted, Step, client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


class Prefill(Scripted):
    """A scripted provider that declares `prefill` and keeps the requests it was sent."""

    capabilities = frozenset({"prefill"})

    def __init__(self, name: str, *scripts: Sequence[Step]) -> None:
        super().__init__(name, *scripts)
        self.requests: list[Request] = []

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        self.requests.append(request)
        async for chunk in super().stream(request):
            yield chunk


class Thinking(Scripted):
    """Its first chunk is reasoning, then text."""

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        yield StreamChunk("", self.name, self.model, reasoning="hmm")
        async for chunk in super().stream(request):
            yield chunk


BROKEN: list[Step] = ["Hello ", 0.1, "wor", 0.1, ProviderUnavailableError("connection reset")]


async def test_the_prefill_is_the_exact_text_and_the_reply_goes_on() -> None:
    primary = Scripted("primary", BROKEN)
    backup = Prefill("backup", [0.2, "ld", "!", FINISH])
    async with client(primary, backup, continue_on_interrupt=True) as llm:
        t0 = anyio.current_time()
        response = await llm.generate_response("hi")
    assert response.content == "Hello world!"
    assert response.continued
    assert response.time_to_first_token == pytest.approx(0.0, abs=1e-6)  # the primary's first token
    assert backup.started[0] - t0 == pytest.approx(0.2, abs=1e-6)
    (sent,) = backup.requests
    assert sent.messages[-1].role == "assistant"
    assert sent.messages[-1].content == "Hello wor"
    assert [m.content for m in sent.messages[:-1]] == ["hi"]
    assert response.usage.completion_tokens == 2  # the continuation's own closing chunk


async def test_a_second_break_goes_on_to_the_next_prefill_provider() -> None:
    primary = Scripted("primary", BROKEN)
    second = Prefill("second", ["ld", ProviderUnavailableError("reset again")])
    third = Prefill("third", [" again", FINISH])
    async with client(primary, second, third, continue_on_interrupt=True) as llm:
        response = await llm.generate_response("hi")
    assert response.content == "Hello world again"
    assert [(a.provider, a.outcome) for a in response.attempts] == [
        ("primary", "failed"),
        ("second", "failed"),
        ("third", "continued"),
    ]
    assert third.requests[0].messages[-1].content == "Hello world"


async def test_a_reply_that_began_with_reasoning_is_not_continued() -> None:
    primary = Thinking("primary", BROKEN)
    backup = Prefill("backup", ["ld", FINISH])
    async with client(primary, backup, continue_on_interrupt=True) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_response("hi")
    assert info.value.partial_text == "Hello wor"
    assert backup.requests == []


async def test_a_reply_with_tools_asked_for_is_not_continued() -> None:
    primary = Scripted("primary", BROKEN)
    backup = Prefill("backup", ["ld", FINISH])
    async with client(primary, backup, continue_on_interrupt=True) as llm:
        with pytest.raises(StreamInterruptedError):
            await llm.generate_response("hi", extra={"tools": []})
    assert backup.requests == []


async def test_closing_the_client_during_a_continuation_ends_the_stream_at_once() -> None:
    primary = Scripted("primary", BROKEN)
    backup = Prefill("backup", [3600, "never"])
    async with client(primary, backup, continue_on_interrupt=True) as llm:
        texts: list[str] = []
        errors: list[LLMException] = []
        t0 = anyio.current_time()

        async def close_soon() -> None:
            await anyio.sleep(5)
            await llm.aclose()

        async with llm.generate_stream("hi") as stream, anyio.create_task_group() as tg:
            tg.start_soon(close_soon)
            try:
                async for chunk in stream:
                    texts.append(chunk.text)
            except LLMException as exc:  # raised inside the group, so caught here, not wrapped
                errors.append(exc)
        t = anyio.current_time() - t0
    assert "".join(texts) == "Hello wor"
    (error,) = errors
    assert "closed" in str(error)
    assert not isinstance(error, StreamInterruptedError)
    assert t == pytest.approx(5.0, abs=1e-6)  # the close ended the continuing attempt at once
    assert backup.started[0] - t0 == pytest.approx(0.2, abs=1e-6)
    assert [c - t0 for c in backup.closed] == [pytest.approx(5.0, abs=1e-6)]
