"""continue_on_interrupt: a stream that breaks after its first chunk goes on from a provider with `prefill`.

Over real HTTP to `llmcomm.testing.FakeServer`, on asyncio and trio, on both wires: the final
text is exactly what was delivered plus the continuation (never repeated, never lost), the
continuing provider received the delivered text as an assistant prefill, and the seam is marked.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from llmcomm import (
    Configuration,
    ConfigurationError,
    HookEvent,
    Hooks,
    LLMCommunication,
    ProviderConfig,
    StreamInterruptedError,
)
from llmcomm.testing import FakeServer, Script

from .helpers import KEY

pytestmark = pytest.mark.anyio

Kind = Literal["anthropic", "openai"]


def provider(server: FakeServer, kind: Kind, name: str, model: str, **options: Any) -> ProviderConfig:
    base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    return ProviderConfig(name=name, kind=kind, model=model, base_url=base_url, api_key=KEY, **options)


def setup(server: FakeServer, kind: Kind, broken: Script, rest: Script, **options: Any) -> Configuration:
    server.route(model="m-primary", script=broken)
    server.route(model="m-backup", script=rest)
    providers = [
        provider(server, kind, "primary", "m-primary"),
        provider(server, kind, "backup", "m-backup", capabilities={"prefill"}),
    ]
    options.setdefault("max_retries", 0)
    options.setdefault("continue_on_interrupt", True)
    return Configuration(providers=providers, **options)


def last_message(server: FakeServer, model: str) -> Any:
    (request,) = [r for r in server.requests if r.model == model]
    return request.body["messages"][-1]


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_reset_stream_goes_on_from_the_prefill_provider(server: FakeServer, kind: Kind) -> None:
    config = setup(server, kind, Script(chunks=("Hello ", "wor"), reset_after=2), Script(chunks=("ld", ", again.")))
    async with LLMCommunication(config) as llm, llm.generate_stream("hi") as stream:
        texts = [chunk.text async for chunk in stream]
    response = stream.response
    assert response is not None
    assert "".join(texts) == response.content == "Hello world, again."
    assert response.continued is True
    assert response.provider == "backup"
    assert [(a.provider, a.outcome, a.reason) for a in response.attempts] == [
        ("primary", "failed", "first"),
        ("backup", "continued", "continue"),
    ]
    assert last_message(server, "m-backup") == {"role": "assistant", "content": "Hello wor"}


async def test_anthropic_gets_the_prefill_without_trailing_whitespace_and_no_space_is_doubled(
    server: FakeServer,
) -> None:
    config = setup(server, "anthropic", Script(chunks=("Hello ", "big "), reset_after=2), Script(chunks=(" world",)))
    async with LLMCommunication(config) as llm:
        response = await llm.generate_response("hi")
    assert response.content == "Hello big world"
    assert last_message(server, "m-backup") == {"role": "assistant", "content": "Hello big"}


async def test_openai_gets_the_exact_text_as_prefill(server: FakeServer) -> None:
    config = setup(server, "openai", Script(chunks=("Hello ", "big "), sse_error_after=2), Script(chunks=("world",)))
    async with LLMCommunication(config) as llm:
        response = await llm.generate_response("hi")
    assert response.content == "Hello big world"
    assert last_message(server, "m-backup") == {"role": "assistant", "content": "Hello big "}


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_stalled_stream_is_continued_too(server: FakeServer, kind: Kind) -> None:
    config = setup(
        server, kind, Script(chunks=("one ", "two "), stall_after=2), Script(chunks=("three",)), stream_idle_timeout=0.3
    )
    async with LLMCommunication(config) as llm:
        response = await llm.generate_response("hi")
    assert response.content == "one two three"
    assert response.continued


async def test_off_by_default_the_error_is_as_before(server: FakeServer) -> None:
    config = setup(server, "anthropic", Script(chunks=("Hello ", "wor"), reset_after=2), Script(chunks=("ld",)))
    config = Configuration(providers=config.providers, max_retries=0)
    async with LLMCommunication(config) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_response("hi")
    assert info.value.partial_text == "Hello wor"
    assert [r.model for r in server.requests] == ["m-primary"]


async def test_never_to_a_provider_without_prefill(server: FakeServer) -> None:
    server.route(model="m-primary", script=Script(chunks=("Hello ", "wor"), reset_after=2))
    providers = [provider(server, "anthropic", "primary", "m-primary"), provider(server, "openai", "b", "m-b")]
    config = Configuration(providers=providers, max_retries=0, continue_on_interrupt=True)
    async with LLMCommunication(config) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_response("hi")
    assert info.value.partial_text == "Hello wor"
    assert [r.model for r in server.requests] == ["m-primary"]


async def test_a_failing_continuation_ends_with_the_original_interruption(server: FakeServer) -> None:
    config = setup(server, "openai", Script(chunks=("Hello ", "wor"), reset_after=2), Script(status=529))
    async with LLMCommunication(config) as llm:
        with pytest.raises(StreamInterruptedError) as info:
            await llm.generate_response("hi")
    assert info.value.partial_text == "Hello wor"
    assert info.value.provider == "primary"


async def test_the_seam_is_told_to_hooks(server: FakeServer) -> None:
    events: list[HookEvent] = []
    hooks = Hooks()
    hooks.on_fallback(events.append)
    config = setup(server, "anthropic", Script(chunks=("Hello ", "wor"), reset_after=2), Script(chunks=("ld",)))
    async with LLMCommunication(config, hooks=hooks) as llm:
        await llm.generate_response("hi")
    assert [(e.provider, e.to_provider, e.reason) for e in events] == [
        ("primary", "backup", "continue after 9 characters (ProviderUnavailableError)")
    ]


def test_capabilities_are_checked() -> None:
    assert ProviderConfig(name="a", kind="anthropic").capabilities is None  # the kind's defaults: no prefill
    declared = ProviderConfig(name="a", kind="anthropic", capabilities=frozenset({"prefill"}))
    assert declared.capabilities == frozenset({"prefill"})
    with pytest.raises(ConfigurationError, match="unknown capabilities"):
        ProviderConfig(name="a", kind="anthropic", capabilities=frozenset({"prefil"}))
    with pytest.raises(ConfigurationError, match="set of names"):
        ProviderConfig(name="a", kind="anthropic", capabilities="prefill")  # type: ignore[arg-type]
