"""Images, reasoning effort and thinking through the real `claude` binary, checked at `FakeServer`.

What the CLI sent is read from the recorded request body: image blocks in the user
message, `thinking` and `output_config.effort` per effort level. Skipped without the
binary (see `test_claude_cli_real.py`).
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import anyio
import pytest

from llmcomm import Configuration, LLMCommunication
from llmcomm._messages import ImagePart, Message, TextPart
from llmcomm._types import Request
from llmcomm.errors import InvalidRequestError
from llmcomm.providers._claude_cli import ClaudeCLIProvider
from llmcomm.testing import FakeServer, Script

from .test_claude_cli_media import PNG, PNG_B64, URL, image_block
from .test_claude_cli_real import BOUND, config, real_cli
from .test_claude_cli_real_reliability import api_requests, body_of, run

__all__ = ["real_cli"]

pytestmark = [pytest.mark.anyio, pytest.mark.real_cli]

THINKING = Script(blocks=(("thinking", "Two and two make four."), ("text", "Four.")))


def user_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The last user message's blocks, without the cache marker the CLI adds."""
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return [{k: v for k, v in block.items() if k != "cache_control"} for block in content]


async def test_images_reach_the_api_as_image_blocks(real_cli: str) -> None:
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        parts = (TextPart("Compare "), ImagePart(PNG, None, "image/png"), TextPart(" with "), ImagePart(None, URL))
        chunks = await run(provider, Request(messages=(Message("user", parts),)))
        (recorded,) = api_requests(server)
    assert "".join(c.text for c in chunks) == Script().text
    assert user_blocks(body_of(recorded)) == [
        {"type": "text", "text": "Compare "},
        image_block(),
        {"type": "text", "text": " with "},
        {"type": "image", "source": {"type": "url", "url": URL}},  # passed on: the API fetches it
    ]


async def test_a_data_url_image_alone_and_an_earlier_turns_image(real_cli: str) -> None:
    url = f"data:image/png;base64,{PNG_B64}"
    conversation = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]},
        {"role": "assistant", "content": "A dot."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]},
    ]
    async with FakeServer() as server:
        async with LLMCommunication(Configuration(providers=[config(real_cli, server)])) as llm:
            alone = await llm.generate_response(conversation[-1:])
            later = await llm.generate_response(conversation)
        first, second = (body_of(r) for r in api_requests(server))
    assert alone.content == later.content == Script().text
    assert user_blocks(first) == [image_block()]
    assert user_blocks(second) == [
        {"type": "text", "text": "<transcript>\nHuman: "},
        image_block(),
        {"type": "text", "text": "\n\nAssistant: A dot.\n</transcript>\n\n"},
        image_block(),
    ]


def png(width: int, height: int) -> bytes:
    """A grey RGB PNG of `width` x `height` pixels."""
    rows = b"".join(b"\x00" + b"\x80" * (width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_the_cli_decodes_images_itself(real_cli: str) -> None:
    wide = png(2500, 20)
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        for part in (ImagePart(PNG, None, "image/jpeg"), ImagePart(wide, None, "image/png")):
            await run(provider, Request(messages=(Message("user", (TextPart("See."), part)),)))
        with pytest.raises(InvalidRequestError, match="not PNG, JPEG, GIF or WebP"):
            await run(
                provider, Request(messages=(Message("user", (TextPart("See."), ImagePart(b"BM?", None, "image/bmp"))),))
            )
        labelled, resized = (user_blocks(body_of(r))[1]["source"] for r in api_requests(server))
    assert labelled == image_block()["source"]  # the media type the bytes say, not the label
    assert resized["media_type"] == "image/png"
    assert base64.b64decode(resized["data"]) != wide  # over 2000 px a side: resized before sending


async def test_a_damaged_image_is_an_invalid_request_not_a_reply_without_it(real_cli: str) -> None:
    # The CLI decodes an image only to resize it: a PNG signature, then a header that says
    # 4294967295 px a side and no pixels it can read, gets a note in its place.
    damaged = b"\x89PNG\r\n\x1a\n" + b"\xff" * 300
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        request = Request(messages=(Message("user", (TextPart("See."), ImagePart(damaged, None, "image/png"))),))
        with anyio.fail_after(BOUND):
            with pytest.raises(InvalidRequestError, match=r"could not read an image \(\[Image could not be processed"):
                await run(provider, request)
        await anyio.sleep(0.5)  # room for more requests, had the child lived on
        # The CLI writes the message it will send as it sends it: the request may be out already.
        sent = api_requests(server)
        assert len(sent) <= 1
        assert all("could not be processed" in str(body_of(r)["messages"]) for r in sent)


@pytest.mark.parametrize("max_tokens", [1500, 32000])
async def test_each_effort_on_a_budgeted_model_is_thinking_with_a_budget(real_cli: str, max_tokens: int) -> None:
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))  # claude-sonnet-4-5
        for effort in ("none", "low", "high", "max"):
            server.reset()
            await run(
                provider, Request(messages=(Message("user", "2+2?"),), reasoning_effort=effort, max_tokens=max_tokens)
            )
            body = body_of(api_requests(server)[0])
            assert body["max_tokens"] == max_tokens
            assert "output_config" not in body  # this model takes no effort: the CLI sends none
            if effort == "none":
                assert body["thinking"] == {"type": "disabled"}
            else:
                assert body["thinking"]["type"] == "enabled"
                assert body["thinking"]["budget_tokens"] == max_tokens - 1


@pytest.mark.parametrize("max_tokens", [500, 32000])
async def test_each_effort_on_an_adaptive_model_is_output_config_effort(real_cli: str, max_tokens: int) -> None:
    sent = {}
    async with FakeServer() as server:
        provider = ClaudeCLIProvider(config(real_cli, server))
        for effort in ("none", "minimal", "low", "medium", "high", "xhigh", "max"):
            server.reset()
            request = Request(
                messages=(Message("user", "2+2?"),),
                reasoning_effort=effort,
                max_tokens=max_tokens,
                model="claude-opus-4-6",
            )
            await run(provider, request)
            body = body_of(api_requests(server)[0])
            assert body["max_tokens"] == max_tokens
            sent[effort] = (body["thinking"]["type"], body["output_config"]["effort"])
    assert sent == {
        "none": ("disabled", "high"),  # the CLI's own default effort, thinking off
        "minimal": ("adaptive", "low"),
        "low": ("adaptive", "low"),
        "medium": ("adaptive", "medium"),
        "high": ("adaptive", "high"),
        "xhigh": ("adaptive", "high"),  # this CLI version lowers xhigh to high for this model
        "max": ("adaptive", "max"),
    }


async def test_streamed_thinking_is_reasoning(real_cli: str) -> None:
    async with FakeServer(default=THINKING) as server:
        async with LLMCommunication(Configuration(providers=[config(real_cli, server)])) as llm:
            async with llm.generate_stream("2+2?", reasoning_effort="low", max_tokens=2048) as stream:
                chunks = [c async for c in stream]
            response = await llm.generate_response("2+2?", reasoning_effort="medium", max_tokens=2048)
        assert all(body_of(r)["thinking"]["type"] == "enabled" for r in api_requests(server))
    assert "".join(c.reasoning for c in chunks) == "Two and two make four."
    assert "".join(c.text for c in chunks) == "Four."
    assert all(not (c.reasoning and c.text) for c in chunks)
    assert (response.reasoning, response.content) == ("Two and two make four.", "Four.")
