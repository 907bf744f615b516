"""The Claude CLI provider with images, reasoning effort and thinking, driven through the fake CLI.

What goes in: images as Anthropic image blocks of the one stream-json user message
(base64 for bytes and data: URLs, a url source for http(s)), `--effort` for
`reasoning_effort`. What comes out: `thinking_delta` events as reasoning chunks.
The real binary's side of the same is in `test_claude_cli_real_media.py`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from llmcomm import Configuration, LLMCommunication
from llmcomm._capabilities import DEFAULT_CAPABILITIES
from llmcomm._messages import DocumentPart, ImagePart, Message, TextPart
from llmcomm._types import Request
from llmcomm.errors import InvalidRequestError
from llmcomm.providers._claude_cli import ClaudeCLIProvider
from llmcomm.providers._claude_cli_events import CLIStream
from llmcomm.providers._claude_cli_prompt import prompt_blocks

from .test_claude_cli import collect, config, dead, fake_cli, read_record, record, wait_for

__all__ = ["fake_cli", "record"]

pytestmark = pytest.mark.anyio

#: a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
URL = "https://example.com/cat.png"


def image_block(data: str = PNG_B64, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def ask(*parts: TextPart | ImagePart | DocumentPart, **options: Any) -> Request:
    return Request(messages=(Message("user", tuple(parts)),), **options)


# -- images in ------------------------------------------------------------------------


async def test_an_image_and_its_text_reach_the_cli_as_blocks_in_order(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    chunks = await collect(provider, ask(TextPart("What is "), ImagePart(PNG, None, "image/png"), TextPart("?")))
    assert "".join(c.text for c in chunks) == "Hello, world"
    assert read_record(record)["blocks"] == [
        {"type": "text", "text": "What is "},
        image_block(),
        {"type": "text", "text": "?"},
    ]


@pytest.mark.parametrize(
    ("part", "source"),
    [
        (ImagePart(PNG, None, "image/png"), image_block()["source"]),
        (ImagePart(b"\xff\xd8\xffjpeg", None, "image/jpeg"), image_block("/9j/anBlZw==", "image/jpeg")["source"]),
        (ImagePart(None, URL), {"type": "url", "url": URL}),
        (ImagePart(None, "http://127.0.0.1:8/a.gif"), {"type": "url", "url": "http://127.0.0.1:8/a.gif"}),
    ],
)
async def test_each_kind_of_image_source(fake_cli: str, record: Path, part: ImagePart, source: Any) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), ask(TextPart("Describe."), part))
    assert read_record(record)["blocks"][1] == {"type": "image", "source": source}


async def test_a_data_url_image_arrives_as_base64_through_the_client(fake_cli: str, record: Path) -> None:
    url = f"data:image/png;base64,{PNG_B64}"
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": url}}],
    }
    async with LLMCommunication(Configuration(providers=[config(fake_cli, record=record)])) as llm:
        response = await llm.generate_response([message])
    assert response.content == "Hello, world"
    assert read_record(record)["blocks"] == [{"type": "text", "text": "Hi"}, image_block()]


async def test_an_image_alone_is_a_prompt(fake_cli: str, record: Path) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), ask(ImagePart(PNG, None, "image/png")))
    assert read_record(record)["blocks"] == [image_block()]


async def test_a_slash_text_after_an_image_stays_text(fake_cli: str, record: Path) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), ask(ImagePart(None, URL), TextPart("/cost")))
    blocks = read_record(record)["blocks"]
    assert blocks[1:] == [{"type": "text", "text": "/"}, {"type": "text", "text": "cost"}]


def test_an_earlier_turns_image_keeps_its_place_in_the_transcript() -> None:
    messages = (
        Message("user", (TextPart("Look: "), ImagePart(PNG, None, "image/png"), TextPart(" ok?"))),
        Message("assistant", "A red dot."),
        Message("user", (TextPart("And this? "), ImagePart(None, URL))),
    )
    assert prompt_blocks(messages) == [
        {"type": "text", "text": "<transcript>\nHuman: Look: "},
        image_block(),
        {"type": "text", "text": " ok?\n\nAssistant: A red dot.\n</transcript>\n\nAnd this? "},
        {"type": "image", "source": {"type": "url", "url": URL}},
    ]


async def test_a_document_unknown_image_bytes_and_an_invisible_prompt_are_refused_before_launch(
    fake_cli: str, record: Path
) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    with pytest.raises(InvalidRequestError, match="not documents; send the document to an anthropic"):
        await collect(provider, ask(TextPart("Read."), DocumentPart(b"%PDF-1.4")))
    with pytest.raises(InvalidRequestError, match=r"not PNG, JPEG, GIF or WebP .* convert the image"):
        await collect(provider, ask(TextPart("See."), ImagePart(b"BM not a png", None, "image/png")))
    with pytest.raises(InvalidRequestError, match=r"no visible text .* and no image"):
        await collect(provider, ask(TextPart("\u200b ")))
    assert not record.exists()


def test_the_cli_kind_takes_images_and_reasoning_by_default() -> None:
    assert "images" in DEFAULT_CAPABILITIES["claude_cli"]
    assert "reasoning" in DEFAULT_CAPABILITIES["claude_cli"]
    assert "documents" not in DEFAULT_CAPABILITIES["claude_cli"]


# -- reasoning effort -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "level"),
    [("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high"), ("xhigh", "xhigh"), ("max", "max")],
)
async def test_each_effort_becomes_an_effort_flag_and_thinking_stays_on(
    fake_cli: str, record: Path, effort: str, level: str
) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), ask(TextPart("2+2?"), reasoning_effort=effort))
    seen = read_record(record)
    assert seen["argv"][seen["argv"].index("--effort") + 1] == level
    assert "MAX_THINKING_TOKENS" not in seen["env"]


async def test_effort_none_turns_thinking_off(fake_cli: str, record: Path) -> None:
    await collect(ClaudeCLIProvider(config(fake_cli, record=record)), ask(TextPart("2+2?"), reasoning_effort="none"))
    seen = read_record(record)
    assert "--effort" not in seen["argv"] and seen["env"]["MAX_THINKING_TOKENS"] == "0"


@pytest.mark.parametrize(("model", "allowed"), [("claude-sonnet-4-5", False), ("claude-opus-4-6", True)])
async def test_a_small_max_tokens_with_reasoning_is_refused_only_for_budgeted_thinking(
    fake_cli: str, record: Path, model: str, allowed: bool
) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, record=record))
    request = ask(TextPart("2+2?"), reasoning_effort="low", max_tokens=500, model=model)
    if allowed:  # adaptive thinking has no budget to fit under max_tokens
        await collect(provider, request)
        assert "--effort" in read_record(record)["argv"]
    else:
        with pytest.raises(InvalidRequestError, match="with claude-sonnet-4-5 needs max_tokens above 1024"):
            await collect(provider, request)
        assert not record.exists()


# -- thinking out ---------------------------------------------------------------------


def _event(inner: dict[str, Any]) -> bytes:
    return json.dumps({"type": "stream_event", "event": inner}).encode()


def test_thinking_deltas_become_reasoning_chunks_and_never_text() -> None:
    state = CLIStream("cli", "m")
    lines = [
        _event({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two "}}),
        _event({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": ""}}),
        _event({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        _event({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "and two"}}),
        _event({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Four."}}),
    ]
    chunks = [chunk for line in lines if (chunk := state.handle(line)) is not None]
    assert [(c.reasoning, c.text) for c in chunks] == [("Two ", ""), ("and two", ""), ("", "Four.")]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert state.parts == ["Four."]  # the answer text the result line is checked against


async def test_streamed_thinking_is_the_responses_reasoning(fake_cli: str) -> None:
    cli = config(fake_cli, "thinking", FAKE_CLAUDE_TEXT="Four.")
    async with LLMCommunication(Configuration(providers=[cli])) as llm:
        async with llm.generate_stream("2+2?", reasoning_effort="low", max_tokens=2048) as stream:
            chunks = [c async for c in stream]
        response = await llm.generate_response("2+2?", reasoning_effort="low", max_tokens=2048)
    assert [c.reasoning for c in chunks if c.reasoning] == ["Two ", "and two ", "make four."]
    assert "".join(c.text for c in chunks) == "Four."
    assert (response.reasoning, response.content) == ("Two and two make four.", "Four.")


async def test_an_image_the_cli_cannot_read_stops_the_call_before_it_is_sent(fake_cli: str, record: Path) -> None:
    provider = ClaudeCLIProvider(config(fake_cli, "image_note", record=record))
    with pytest.raises(InvalidRequestError, match=r"could not read an image \(\[Image could not be processed"):
        await collect(provider, ask(TextPart("See."), ImagePart(PNG, None, "image/png")))
    assert await wait_for(dead, read_record(record)["pid"])
    chunks = await collect(provider, ask(TextPart("No image here.")))  # nothing to miss without an image
    assert "".join(c.text for c in chunks) == "Hello, world"
