"""The one `user` message the Claude Code CLI reads on stdin (`--input-format stream-json`).

A single user message goes in as its own content blocks: text and images, in
order (an image as a base64 source, or a url source for an http(s) URL, which
the CLI passes on and the API fetches). A longer conversation becomes a transcript of the earlier turns followed
by the last user message, still one message; an image of an earlier turn stays
an image block at its place in the transcript, so the model sees every image
the conversation holds, between the text around it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import orjson

from .._conversation import sniff_image
from .._errors import InvalidRequestError
from .._messages import DocumentPart, ImagePart, Message, TextPart
from .._wire._parts import b64

#: Unicode categories the CLI (and a reader) sees as nothing: controls, format and separators
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
#: what JavaScript's `String.prototype.trim` removes: Unicode white space, line terminators, U+FEFF
_JS_TRIMMED = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

Block = dict[str, Any]


def has_visible_text(text: str) -> bool:
    """Whether `text` has a character the CLI keeps and a reader sees (not whitespace, BOM, zero-width, control)."""
    return any(not (ch.isspace() or unicodedata.category(ch) in _INVISIBLE) for ch in text)


def literal_blocks(text: str) -> list[Block]:
    """Text blocks that the CLI passes to the model as `text`, never as a slash command.

    The CLI runs a message as a command when its last text block, trimmed as
    JavaScript's `trim()` does (whitespace and U+FEFF), starts with "/". Such a text is split after its leading whitespace and slashes; both
    blocks are non-empty and the model reads them as one text.
    """
    if text.lstrip(_JS_TRIMMED).startswith("/"):
        cut = next((i for i, ch in enumerate(text) if not (ch in _JS_TRIMMED or ch == "/")), None)
        if cut is not None:
            return [{"type": "text", "text": text[:cut]}, {"type": "text", "text": text[cut:]}]
    return [{"type": "text", "text": text}]


def check_parts(messages: Sequence[Message], provider: str) -> None:
    """`InvalidRequestError` for a part the CLI provider does not carry: a document, or image
    bytes that are not PNG, JPEG, GIF or WebP.

    The CLI decodes every image itself (it resizes one over 2000 px a side and sends the
    media type it finds): one it cannot read it replaces with a text note and the call
    goes on, so the model would answer without the image. Bytes of a known format that
    are damaged inside still get that note; they are not decoded here.
    """
    for message in messages:
        if message.content.__class__ is str:
            continue
        for part in message.content:
            if isinstance(part, DocumentPart):
                raise InvalidRequestError(
                    "the claude CLI provider takes text and images, not documents; "
                    "send the document to an anthropic or openai provider",
                    provider=provider,
                )
            if isinstance(part, ImagePart) and part.data is not None and sniff_image(bytes(part.data)) is None:
                raise InvalidRequestError(
                    f"the image's bytes are not PNG, JPEG, GIF or WebP (media_type {part.media_type!r}), and the "
                    "claude CLI would send a note in its place; convert the image to PNG or JPEG",
                    provider=provider,
                )


def last_has_content(message: Message) -> bool:
    """Whether the last message has something the CLI sends as it is: visible text or an image."""
    if has_visible_text(message.text):
        return True
    return message.content.__class__ is not str and any(isinstance(p, ImagePart) for p in message.content)


def image_source(part: ImagePart) -> Block:
    """The Anthropic image source of `part`: base64 for bytes (a data: URL arrives as bytes), else its URL.

    The CLI passes a `url` source on to the API as it is; the API fetches the image.
    """
    if part.data is not None:
        return {"type": "base64", "media_type": part.media_type or "image/png", "data": b64(part.data)}
    return {"type": "url", "url": part.url}


class _Builder:
    """Text runs and image blocks, in order; a run is cut where an image comes."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.run: list[str] = []

    def add(self, message: Message) -> None:
        content = message.content
        if content.__class__ is str:
            self.run.append(content)
            return
        for part in content:
            if isinstance(part, TextPart):
                self.run.append(part.text)
            elif isinstance(part, ImagePart):
                self.flush()
                self.blocks.append({"type": "image", "source": image_source(part)})

    def flush(self) -> None:
        text = "".join(self.run)
        self.run.clear()
        if has_visible_text(text) or (text and not self.blocks):
            self.blocks.extend(literal_blocks(text))


def prompt_blocks(messages: Sequence[Message]) -> list[Block]:
    """The content blocks of the stdin message: see the module docstring."""
    *history, last = messages
    builder = _Builder()
    if history:
        builder.run.append("<transcript>\n")
        for position, message in enumerate(history):
            if position:
                builder.run.append("\n\n")
            builder.run.append("Human: " if message.role == "user" else "Assistant: ")
            builder.add(message)
        builder.run.append("\n</transcript>\n\n")
    builder.add(last)
    builder.flush()
    return builder.blocks


def user_message_line(blocks: list[Block]) -> bytes:
    """The stdin line of `--input-format stream-json` that carries `blocks` as the user's message."""
    message = {"role": "user", "content": blocks}
    return orjson.dumps({"type": "user", "message": message, "parent_tool_use_id": None}) + b"\n"


def render_prompt(messages: Sequence[Message]) -> str:
    """The text of the stdin message (its text blocks joined; images left out)."""
    return "".join(block["text"] for block in prompt_blocks(messages) if block["type"] == "text")
