"""Replies made of content blocks (thinking, text, tool calls), in each API's exact stream shape.

A :class:`Script` with ``blocks`` is answered from here. The shapes are the
real APIs' own:

- Anthropic: one content block per entry, ``content_block_start`` /
  ``content_block_delta`` / ``content_block_stop``; thinking as
  ``thinking_delta`` events and a ``signature_delta``; redacted thinking whole
  in its start event; a tool call as a ``tool_use`` start with empty ``input``,
  an empty ``input_json_delta`` and then the JSON in pieces; parallel calls as
  consecutive blocks; ``stop_reason`` ``tool_use`` when the reply calls a tool.
- OpenAI Chat Completions: reasoning as ``reasoning_content`` deltas (what
  compatible reasoning servers send), text as ``content`` deltas, each tool call
  as ``tool_calls`` deltas keyed by ``index`` (the first with ``id``, ``type``,
  ``name`` and empty ``arguments``, then the JSON in pieces); ``finish_reason``
  ``tool_calls``. Redacted thinking has no form on this wire and is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from ._script import Script, _split_text

__all__ = ["ARGUMENT_PIECE", "Block", "anthropic_blocks", "blocks_message", "openai_blocks", "stop_reason_for"]

#: characters of tool-call JSON per delta (the real APIs send a few characters at a time)
ARGUMENT_PIECE: Final = 7

#: ("text", text) | ("thinking", text) | ("redacted_thinking", data) | ("tool_use", name, arguments JSON)
Block = tuple[str, ...]

_SIGNATURE: Final = "fake-signature"


def stop_reason_for(script: Script) -> str:
    """The Anthropic stop reason of a block reply: ``tool_use`` when it calls a tool and none was scripted."""
    blocks = script.blocks or ()
    if script.stop_reason == "end_turn" and any(block[0] == "tool_use" for block in blocks):
        return "tool_use"
    return script.stop_reason


def _pieces(text: str) -> list[str]:
    return [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]


def _event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _tool_id(prefix: str, serial: int, ordinal: int) -> str:
    return f"{prefix}fake{serial:08d}{ordinal:02d}"


def anthropic_blocks(script: Script, serial: int) -> list[list[bytes]]:
    """The content events of a block reply, one list per block (each list's events in order)."""
    out: list[list[bytes]] = []
    calls = 0
    for index, block in enumerate(script.blocks or ()):
        kind = block[0]

        def delta(payload: dict[str, Any], index: int = index) -> bytes:
            return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload})

        def start(content: dict[str, Any], index: int = index) -> bytes:
            return _event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": content}
            )

        events: list[bytes]
        if kind == "text":
            events = [start({"type": "text", "text": ""})]
            events += [delta({"type": "text_delta", "text": piece}) for piece in _split_text(block[1])]
        elif kind == "thinking":
            events = [start({"type": "thinking", "thinking": "", "signature": ""})]
            events += [delta({"type": "thinking_delta", "thinking": piece}) for piece in _split_text(block[1])]
            events.append(delta({"type": "signature_delta", "signature": _SIGNATURE}))
        elif kind == "redacted_thinking":
            events = [start({"type": "redacted_thinking", "data": block[1]})]
        elif kind == "tool_use":
            call_id = _tool_id("toolu_", serial, calls)
            calls += 1
            events = [start({"type": "tool_use", "id": call_id, "name": block[1], "input": {}})]
            events += [delta({"type": "input_json_delta", "partial_json": p}) for p in ["", *_pieces(block[2])]]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        out.append(events)
    return out


def openai_blocks(script: Script, serial: int, chunk: Callable[[dict[str, Any]], bytes]) -> list[list[bytes]]:
    """The content chunks of a block reply (``chunk`` wraps one delta in a whole chunk)."""
    out: list[list[bytes]] = []
    calls = 0
    for block in script.blocks or ():
        kind = block[0]
        if kind == "text":
            out.append([chunk({"content": piece}) for piece in _split_text(block[1])])
        elif kind == "thinking":
            out.append([chunk({"content": None, "reasoning_content": piece}) for piece in _split_text(block[1])])
        elif kind == "tool_use":
            head = {"index": calls, "id": _tool_id("call_", serial, calls), "type": "function"}
            first = chunk({"content": None, "tool_calls": [{**head, "function": {"name": block[1], "arguments": ""}}]})
            rest = [chunk({"tool_calls": [{"index": calls, "function": {"arguments": p}}]}) for p in _pieces(block[2])]
            calls += 1
            out.append([first, *rest])
    return out


def blocks_message(api: str, script: Script, serial: int) -> tuple[Any, str | None]:
    """The content of a whole (non-streamed) block reply: Anthropic's content list, or OpenAI's message.

    Returns ``(content, None)`` for Anthropic and ``(message, None)`` for OpenAI.
    """
    blocks = script.blocks or ()
    calls = 0
    if api == "anthropic":
        content: list[dict[str, Any]] = []
        for block in blocks:
            kind = block[0]
            if kind == "text":
                content.append({"type": "text", "text": block[1]})
            elif kind == "thinking":
                content.append({"type": "thinking", "thinking": block[1], "signature": _SIGNATURE})
            elif kind == "redacted_thinking":
                content.append({"type": "redacted_thinking", "data": block[1]})
            elif kind == "tool_use":
                arguments = orjson.loads(block[2]) if block[2] else {}
                content.append({"type": "tool_use", "id": _tool_id("toolu_", serial, calls), "name": block[1],
                                "input": arguments})  # fmt: skip
                calls += 1
        return content, None
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    texts = [b[1] for b in blocks if b[0] == "text"]
    if texts:
        message["content"] = "".join(texts)
    thoughts = [b[1] for b in blocks if b[0] == "thinking"]
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    tool_calls = []
    for block in blocks:
        if block[0] == "tool_use":
            function = {"name": block[1], "arguments": block[2]}
            tool_calls.append({"id": _tool_id("call_", serial, calls), "type": "function", "function": function})
            calls += 1
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message, None
