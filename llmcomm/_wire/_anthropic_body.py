"""A `Request` as the body of an Anthropic Messages request (pure).

- Parts become content blocks (`text`, `image` and `document` with a base64 or
  url source); a text-only turn stays a plain string.
- An assistant turn sends its reasoning back (unmodified `thinking` /
  `redacted_thinking` blocks, first) only when this provider made it, then its
  text, then a `tool_use` block per call.
- Tool results become `tool_result` blocks; consecutive results, and a user turn
  right after them, share one user turn, results first.
- `cache=True` on parts, tools, the system text or the call puts `cache_control`
  on at most the last 4 breakpoints.
- `tool_choice="required"` is `any`; `parallel_tool_calls=False` is
  `disable_parallel_tool_use`; `reasoning_effort` is adaptive thinking with
  `output_config.effort` (`none`: thinking disabled), or a thinking budget on
  models that take only that; a forced tool choice is never sent with thinking.
"""

from __future__ import annotations

from typing import Any

from .._messages import DocumentPart, ImagePart, Message, Part, ReasoningPart, TextPart, Tool
from .._model_facts import anthropic_takes_effort, anthropic_thinking, thinking_budget
from .._types import Request
from ._parts import b64, mark_cache, portable_id

__all__ = ["anthropic_body"]


def anthropic_body(request: Request, *, model: str, max_tokens: int, provider: str) -> dict[str, Any]:
    """The Messages body for `request` (without `stream` and the caller's `extra`)."""
    breakpoints: list[dict[str, Any]] = []
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": []}
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        if any(tool.cache for tool in request.tools):
            breakpoints.append(body["tools"][-1])
    if request.system:
        if request.system_cache or request.cache:
            block = {"type": "text", "text": request.system}
            body["system"] = [block]
            breakpoints.append(block)
        else:
            body["system"] = request.system
    body["messages"] = _messages(request.messages, provider, breakpoints)
    if request.cache and body["messages"]:
        last = body["messages"][-1]
        if isinstance(last["content"], str):
            last["content"] = [{"type": "text", "text": last["content"]}]
        if last["content"]:
            breakpoints.append(last["content"][-1])
    mark_cache(breakpoints)
    forced = request.tool_choice not in (None, "auto", "none")
    if request.tools and (request.tool_choice is not None or request.parallel_tool_calls is False):
        choice: dict[str, Any] = _tool_choice(request.tool_choice or "auto")
        if request.parallel_tool_calls is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if request.reasoning_effort is not None:
        _reasoning(body, request.reasoning_effort, model, max_tokens, forced)
    return body


def _reasoning(body: dict[str, Any], effort: str, model: str, max_tokens: int, forced: bool) -> None:
    if effort == "none":
        body["thinking"] = {"type": "disabled"}
        return
    adaptive = anthropic_thinking(model) == "adaptive"
    if not forced:  # Anthropic refuses thinking with a forced tool choice: the tool choice wins
        if adaptive:
            body["thinking"] = {"type": "adaptive", "display": "summarized"}
        else:
            budget = thinking_budget(effort, max_tokens)
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if budget >= max_tokens:  # the budget counts against max_tokens: keep room for the answer
                body["max_tokens"] = budget + max_tokens
    if anthropic_takes_effort(model):
        body["output_config"] = {"effort": "low" if effort == "minimal" else effort}


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "required":
        return {"type": "any"}
    if choice in ("auto", "none"):
        return {"type": choice}
    return {"type": "tool", "name": choice}


def _tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "input_schema": dict(tool.parameters)}
    if tool.description:
        out["description"] = tool.description
    if tool.strict:
        out["strict"] = True
    return out


def _messages(turns: tuple[Message, ...], provider: str, breakpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the open user turn that holds tool results
    for m in turns:
        content = m.content
        if m.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": portable_id(m.tool_call_id or "")}
            if content.__class__ is str:
                block["content"] = content
            else:
                block["content"] = _blocks(content, provider, breakpoints)  # type: ignore[arg-type]
            if m.is_error:
                block["is_error"] = True
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(block)
            continue
        if m.role == "user" and results is not None:  # the user's words follow the results in the same turn
            if content.__class__ is str:
                if content:
                    results.append({"type": "text", "text": content})
            else:
                results += _blocks(content, provider, breakpoints)  # type: ignore[arg-type]
            continue
        results = None
        if content.__class__ is str and not m.tool_calls:
            out.append({"role": m.role, "content": content})
            continue
        blocks = [] if content.__class__ is str else _blocks(content, provider, breakpoints)  # type: ignore[arg-type]
        if content.__class__ is str and content:
            blocks.append({"type": "text", "text": content})
        blocks += [
            {"type": "tool_use", "id": portable_id(call.id), "name": call.name, "input": dict(call.arguments)}
            for call in m.tool_calls
        ]
        out.append({"role": m.role, "content": blocks})
    return out


def _blocks(parts: tuple[Part, ...], provider: str, breakpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reasoning: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ReasoningPart):
            if part.provider == provider:  # another provider's reasoning (or an unsigned one) is dropped
                if part.redacted is not None:
                    reasoning.append({"type": "redacted_thinking", "data": part.redacted})
                elif part.signature is not None:
                    reasoning.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
            continue
        if isinstance(part, TextPart):
            if not part.text:
                continue
            block: dict[str, Any] = {"type": "text", "text": part.text}
        elif isinstance(part, ImagePart):
            block = {"type": "image", "source": _source(part.data, part.url, part.media_type or "image/png")}
        else:
            block = _document(part)
        if part.cache:
            breakpoints.append(block)
        blocks.append(block)
    return reasoning + blocks


def _document(part: DocumentPart) -> dict[str, Any]:
    if part.data is not None and part.media_type == "text/plain":
        source: dict[str, Any] = {
            "type": "text",
            "media_type": "text/plain",
            "data": part.data.decode("utf-8", "replace"),
        }
    else:
        source = _source(part.data, part.url, part.media_type)
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.title:
        block["title"] = part.title
    return block


def _source(data: bytes | None, url: str | None, media_type: str) -> dict[str, Any]:
    if data is not None:
        return {"type": "base64", "media_type": media_type, "data": b64(data)}
    return {"type": "url", "url": url}
