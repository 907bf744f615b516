"""Per-provider options: `stop`, `top_p`, `seed`, `user` mapped per wire, hints a model does not take
left out (and listed in the attempt), `extra` aimed at one provider or kind, and a rejected request
that led to a fallback logged at WARNING with the provider's message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from llmcomm import Configuration, InvalidRequestError, LLMCommunication, ProviderConfig
from llmcomm._model_facts import dropped_hints
from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789abcdef"
ALL_HINTS = frozenset({"temperature", "top_p", "seed", "user"})


def both(server: FakeServer, **anthropic: Any) -> Configuration:
    return Configuration(
        providers=[
            ProviderConfig(
                name="claude", kind="anthropic", api_key=KEY, base_url=server.anthropic_base_url, **anthropic
            ),
            ProviderConfig(name="gpt", kind="openai", api_key=KEY, base_url=server.openai_base_url),
        ]
    )


async def test_each_wire_gets_the_options_in_its_own_form(server: FakeServer) -> None:
    options: dict[str, Any] = {"stop": ["END", "STOP"], "top_p": 0.5, "seed": 7, "user": "user-42", "temperature": 0.2}
    async with LLMCommunication(both(server, model="claude-sonnet-4-5")) as llm:
        claude = await llm.generate_response("hi", provider="claude", **options)
        gpt = await llm.generate_response("hi", provider="gpt", **options)
    anthropic_body, openai_body = (r.body for r in server.requests)
    assert anthropic_body["stop_sequences"] == ["END", "STOP"]
    assert (anthropic_body["top_p"], anthropic_body["temperature"]) == (0.5, 0.2)
    assert anthropic_body["metadata"] == {"user_id": "user-42"}
    assert "seed" not in anthropic_body  # Anthropic has no seed: a hint, left out
    assert claude.attempts[-1].dropped == ("seed",)
    assert openai_body["stop"] == ["END", "STOP"]
    assert (openai_body["top_p"], openai_body["seed"], openai_body["temperature"]) == (0.5, 7, 0.2)
    assert openai_body["safety_identifier"] == "user-42"
    assert gpt.attempts[-1].dropped == ()


@pytest.mark.parametrize(
    ("kind", "model", "dropped"),
    [
        ("anthropic", "claude-sonnet-4-5", ("seed",)),
        ("anthropic", "claude-opus-4-6", ("temperature", "top_p", "seed")),
        ("anthropic", "claude-sonnet-5-5", ("temperature", "top_p", "seed")),
        ("anthropic", "some-compatible-model", ("seed",)),
        ("openai", "gpt-4o-mini", ()),
        ("openai", "o3-mini", ("temperature", "top_p")),
        ("openai", "gpt-5", ("temperature", "top_p")),
        ("openai", "openrouter/gpt-5-mini", ("temperature", "top_p")),
        ("openai", "llama-3.3-70b", ()),
    ],
)
def test_which_hints_each_model_takes(kind: str, model: str, dropped: tuple[str, ...]) -> None:
    assert dropped_hints(kind, model, ALL_HINTS) == dropped


async def test_a_current_claude_gets_no_sampling_options_and_the_attempt_says_so(server: FakeServer) -> None:
    async with LLMCommunication(both(server, model="claude-sonnet-5-5")) as llm:
        response = await llm.generate_response("hi", provider="claude", temperature=0.3, top_p=0.9, stop="X")
    body = server.requests[0].body
    assert "temperature" not in body and "top_p" not in body
    assert body["stop_sequences"] == ["X"]  # a requirement, never dropped
    assert response.attempts[-1].dropped == ("temperature", "top_p")


async def test_extra_by_provider_name_or_kind_goes_to_that_provider_only(server: FakeServer) -> None:
    extra = {
        "gpt": {"logprobs": True},
        "anthropic": {"metadata": {"tier": "gold"}},
        "shared_field": 1,
        "openai": "not a dict: goes to everyone",
    }
    async with LLMCommunication(both(server)) as llm:
        await llm.generate_response("hi", provider="claude", extra=extra, user="u-1")
        await llm.generate_response("hi", provider="gpt", extra=extra)
    anthropic_body, openai_body = (r.body for r in server.requests)
    assert anthropic_body["metadata"] == {"user_id": "u-1", "tier": "gold"}  # deep-merged
    assert "logprobs" not in anthropic_body
    assert anthropic_body["shared_field"] == openai_body["shared_field"] == 1
    assert anthropic_body["openai"] == openai_body["openai"] == "not a dict: goes to everyone"
    assert openai_body["logprobs"] is True
    assert "metadata" not in openai_body


async def test_a_400_that_leads_to_a_fallback_is_a_warning_with_the_provider_s_message(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.route(
        model="claude-rejects", script=Script(status=400, error_message="top_k: Extra inputs are not permitted")
    )
    caplog.set_level(logging.INFO, logger="llmcomm")
    async with LLMCommunication(both(server, model="claude-rejects")) as llm:
        response = await llm.generate_response("hi", extra={"top_k": 5})
    assert response.provider == "gpt"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "falling back" in r.getMessage()]
    assert len(warnings) == 1
    assert "top_k: Extra inputs are not permitted" in warnings[0].getMessage()
    assert "HTTP 400" in warnings[0].getMessage()


async def test_a_timeout_fallback_stays_at_info(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server.route(model="claude-overloaded", script=Script(status=529, retry_after=0))
    caplog.set_level(logging.INFO, logger="llmcomm")
    async with LLMCommunication(both(server, model="claude-overloaded")) as llm:
        await llm.generate_response("hi")
    fallbacks = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert fallbacks and all(r.levelno == logging.INFO for r in fallbacks)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"stop": ""}, "stop"),
        ({"stop": []}, "stop"),
        ({"stop": ["ok", 3]}, "stop"),
        ({"stop": ["x"] * 17}, "at most 16"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": True}, "top_p"),
        ({"seed": 1.5}, "seed"),
        ({"seed": False}, "seed"),
        ({"user": ""}, "user"),
        ({"user": 5}, "user"),
        ({"extra": {"gpt": {"model": "other"}}}, "extra\\['gpt'\\] may not set"),
    ],
)
async def test_bad_options_are_refused_before_any_io(server: FakeServer, options: dict[str, Any], says: str) -> None:
    async with LLMCommunication(both(server)) as llm:
        with pytest.raises(InvalidRequestError, match=says) as caught:
            await llm.generate_response("hi", **options)
    assert caught.value.request_id
    assert server.requests == []


async def test_streams_to_api_openai_com_leave_out_obfuscation_padding() -> None:
    from llmcomm import OpenAIProvider
    from llmcomm._types import Message, Request

    request = Request(messages=(Message("user", "hi"),))
    official = OpenAIProvider(ProviderConfig(name="o", kind="openai", api_key=KEY))
    compatible = OpenAIProvider(ProviderConfig(name="c", kind="openai", api_key=KEY, base_url="http://127.0.0.1:9/v1"))
    try:
        assert official.build_body(request)["stream_options"] == {"include_usage": True, "include_obfuscation": False}
        assert compatible.build_body(request)["stream_options"] == {"include_usage": True}
    finally:
        await official.aclose()
        await compatible.aclose()


@pytest.mark.parametrize(("options", "says"), [({"timeout": 0}, "timeout"), ({"provider": "nope"}, "unknown provider")])
async def test_every_refusal_carries_the_request_id(server: FakeServer, options: dict[str, Any], says: str) -> None:
    async with LLMCommunication(both(server)) as llm:
        with pytest.raises(InvalidRequestError, match=says) as caught:
            await llm.generate_response("hi", request_id="LLM-1700000000000-0badc0de", **options)
    assert caught.value.request_id == "LLM-1700000000000-0badc0de"
    assert server.requests == []
