"""A `Request` as the messages and fields of an OpenAI Chat Completions request (pure).

- Parts become `text`, `image_url` (an http(s) or data URL) and `file` parts
  (`file_data` as a data URL); a text-only turn stays a plain string.
- An assistant turn carries `tool_calls` (arguments as JSON text) and, when this
  provider made it, its reasoning as `reasoning_content` (what compatible
  reasoning servers take back); reasoning from elsewhere is dropped.
- A tool result is a `tool` message; the images and documents of a run of tool
  results follow it as one user message, since a tool message holds text only.
- `tool_choice` is sent as is, a tool's name as `{"type": "function", ...}`;
  `parallel_tool_calls` and `reasoning_effort` as they are.
"""

from __future__ import annotations

from typing import Any

import orjson

from .._errors import InvalidRequestError
from .._messages import DocumentPart, ImagePart, Message, Part, ReasoningPart, TextPart, Tool
from .._types import Request
from ._parts import data_url

__all__ = ["openai_fields", "openai_messages"]


def openai_messages(request: Request, provider: str) -> list[dict[str, Any]]:
    """The `messages` list for `request`, the system text first.

    Raises `InvalidRequestError` for a document given by URL (Chat Completions
    takes documents as data only).
    """
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    pending_media: list[dict[str, Any]] = []  # a run of tool results' images and documents
    for m in request.messages:
        if m.role != "tool" and pending_media:
            out.append({"role": "user", "content": pending_media})
            pending_media = []
        content = m.content
        if m.role == "tool":
            text = content if isinstance(content, str) else _tool_text(content, pending_media)
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": text})
        elif m.role == "assistant":
            out.append(_assistant(m, provider))
        elif isinstance(content, str):
            out.append({"role": m.role, "content": content})
        else:
            out.append({"role": m.role, "content": [_part(p) for p in content if not isinstance(p, ReasoningPart)]})
    if pending_media:
        out.append({"role": "user", "content": pending_media})
    return out


def openai_fields(request: Request) -> dict[str, Any]:
    """The body fields for tools, tool_choice, parallel_tool_calls and reasoning_effort (only those set)."""
    fields: dict[str, Any] = {}
    if request.tools:
        fields["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            fields["tool_choice"] = (
                choice if choice in ("auto", "none", "required") else {"type": "function", "function": {"name": choice}}
            )
        if request.parallel_tool_calls is not None:
            fields["parallel_tool_calls"] = request.parallel_tool_calls
    if request.reasoning_effort is not None:
        fields["reasoning_effort"] = request.reasoning_effort
    return fields


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _assistant(m: Message, provider: str) -> dict[str, Any]:
    content = m.content
    if isinstance(content, str):
        text, reasoning = content, ""
    else:
        text = "".join(p.text for p in content if isinstance(p, TextPart))
        reasoning = "".join(p.text for p in content if isinstance(p, ReasoningPart) and p.provider == provider)
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.raw_arguments or _json(call.arguments)},
            }
            for call in m.tool_calls
        ]
    elif not text:
        out["content"] = ""
    if reasoning:
        out["reasoning_content"] = reasoning
    return out


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _tool_text(parts: tuple[Part, ...], media: list[dict[str, Any]]) -> str:
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    attached = [_part(p) for p in parts if isinstance(p, ImagePart | DocumentPart)]
    if attached:
        media.append({"type": "text", "text": f"(attached to the tool result: {len(attached)} item(s))"})
        media += attached
    return "".join(texts) or ("(see the attached content that follows)" if attached else "")


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        url = part.url if part.url is not None else data_url(part.media_type or "image/png", part.data or b"")
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(part, DocumentPart):
        if part.data is None:
            raise InvalidRequestError(
                "Chat Completions takes documents as data, not by URL; download it and pass DocumentPart(data=...)"
            )
        return {
            "type": "file",
            "file": {"filename": part.title or "document.pdf", "file_data": data_url(part.media_type, part.data)},
        }
    raise InvalidRequestError(f"a {type(part).__name__} cannot be sent to Chat Completions")
