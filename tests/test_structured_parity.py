"""The response_format llmcomm sends equals what the official SDKs' own `parse` methods send, over real HTTP."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import anthropic
import httpx2
import openai
import pydantic
import pytest

from llmcomm import LLMCommunication, OutputValidationError
from llmcomm.testing import FakeServer, Script

from .helpers import KEY, config, provider
from .test_structured import OBJECT_MODELS

pytestmark = pytest.mark.anyio

#: object roots only: for another root the SDKs send it as it is, which the APIs refuse; llmcomm wraps it
TABLE = OBJECT_MODELS
#: openai's `parse` takes only pydantic models (the other types are compared with its helper in test_structured)
OPENAI_TABLE = [m for m in OBJECT_MODELS if isinstance(m, type) and issubclass(m, pydantic.BaseModel)]
#: the reply need not fit the model: only the request is compared
REPLY = Script(text='{"x": 1}')


async def sdk_sends(server: FakeServer, kind: Literal["anthropic", "openai"], model: Any) -> dict[str, Any]:
    server.enqueue(Script(text='{"x": 1}', stream_as_json=True))
    messages: Any = [{"role": "user", "content": "x"}]
    async with httpx2.AsyncClient() as http:
        with contextlib.suppress(pydantic.ValidationError, openai.OpenAIError, anthropic.AnthropicError, ValueError):
            if kind == "openai":
                client = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, http_client=http)
                await client.chat.completions.parse(model="m", messages=messages, response_format=model)
            else:
                claude = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.anthropic_base_url, http_client=http)
                await claude.messages.parse(model="m", max_tokens=64, messages=messages, output_format=model)
    assert len(server.requests) == 2, "the SDK sent nothing"
    body: dict[str, Any] = server.requests[-1].body
    return body


async def llmcomm_sends(server: FakeServer, kind: Literal["anthropic", "openai"], model: Any) -> dict[str, Any]:
    server.enqueue(REPLY)
    async with LLMCommunication(config(provider(server, kind, model="m"))) as llm:
        with contextlib.suppress(OutputValidationError):
            await llm.generate_response("x", response_format=model, output_retries=0)
    body: dict[str, Any] = server.requests[-1].body
    return body


@pytest.mark.parametrize("model", OPENAI_TABLE, ids=lambda m: getattr(m, "__name__", str(m)))
async def test_openai_response_format_equals_the_sdk_parse(server: FakeServer, model: Any) -> None:
    ours = await llmcomm_sends(server, "openai", model)
    assert ours["response_format"] == (await sdk_sends(server, "openai", model))["response_format"]


@pytest.mark.parametrize("model", TABLE, ids=lambda m: getattr(m, "__name__", str(m)))
async def test_anthropic_output_config_equals_the_sdk_parse(server: FakeServer, model: Any) -> None:
    ours = await llmcomm_sends(server, "anthropic", model)
    assert ours["output_config"] == (await sdk_sends(server, "anthropic", model))["output_config"]
