"""The conversation options of a call (tools, tool_choice, parallel_tool_calls, reasoning_effort, cache), checked."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypedDict

import orjson

from ._errors import InvalidRequestError
from ._messages import Message, Tool

#: the options this module checks; `build_request` adds them to the ones every call takes
CONVERSATION_OPTIONS: Final = frozenset({"tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "cache"})
#: sampling and attribution options mapped per provider (DESIGN Part 2, "Options")
SAMPLING_OPTIONS: Final = frozenset({"stop", "top_p", "seed", "user"})
#: the most stop sequences a call may give (OpenAI takes up to 4; Anthropic more)
MAX_STOP_SEQUENCES: Final = 16

REASONING_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_tool_call_id(call_id: str, what: str) -> None:
    """A tool call id is any non-empty text that travels as UTF-8 (wires rewrite ids they cannot take)."""
    try:
        call_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"{what} is not valid Unicode text; use the id the provider returned") from None


def conversation_options(options: Mapping[str, Any], turns: Sequence[Message]) -> dict[str, Any]:
    """The `Request` fields for the conversation options in `options` (only those set).

    Raises `InvalidRequestError` for a tool whose schema is not an object, two tools
    of one name, `tool_choice` without tools or naming no tool, and values of the
    wrong type.
    """
    fields: dict[str, Any] = {}
    if CONVERSATION_OPTIONS.isdisjoint(options):
        return fields
    raw_tools = options.get("tools")
    tools: tuple[Tool, ...] = ()
    if raw_tools is not None:
        if isinstance(raw_tools, str | bytes | Mapping) or not isinstance(raw_tools, Iterable):
            raise InvalidRequestError("tools must be a list of Tool, functions or OpenAI tool dicts")
        tools = tuple(_tool(t, i) for i, t in enumerate(raw_tools))
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise InvalidRequestError(f"two tools share a name in {names}; give each tool its own name")
        if tools:
            fields["tools"] = tools
    choice = options.get("tool_choice")
    if choice is not None:
        if not tools:
            raise InvalidRequestError("tool_choice is set but no tools are; pass tools=[...] or drop tool_choice")
        if isinstance(choice, Mapping):  # OpenAI's {"type": "function", "function": {"name": ...}}
            function = choice.get("function")
            choice = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(choice, str) or choice not in ("auto", "none", "required", *(t.name for t in tools)):
            raise InvalidRequestError(
                f"tool_choice {choice!r} is not 'auto', 'none', 'required' or the name of one of the tools "
                f"{[t.name for t in tools]}"
            )
        fields["tool_choice"] = choice
    parallel = options.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise InvalidRequestError(f"parallel_tool_calls must be True, False or None, got {parallel!r}")
        if tools:  # sent only when tools are
            fields["parallel_tool_calls"] = parallel
    effort = options.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise InvalidRequestError(f"reasoning_effort {effort!r} is not one of {list(REASONING_EFFORTS)} or None")
        fields["reasoning_effort"] = effort
    cache = options.get("cache")
    if cache is not None:
        if not isinstance(cache, bool):
            raise InvalidRequestError(f"cache must be True or False, got {cache!r}")
        fields["cache"] = cache
    return fields


def _tool(raw: object, position: int) -> Tool:
    where = f"tool {position}"
    if isinstance(raw, Tool):
        tool = raw
    elif isinstance(raw, Mapping):
        function = raw.get("function") if raw.get("type") == "function" else raw
        if not isinstance(function, Mapping):
            raise InvalidRequestError(
                f"{where} must be a Tool, a function or {{'type': 'function', 'function': {{...}}}}"
            )
        tool = Tool(
            function.get("name"),  # type: ignore[arg-type]
            function.get("description") or "",
            function.get("parameters") or {"type": "object", "properties": {}},
            bool(function.get("strict", False)),
        )
    elif callable(raw):
        tool = Tool.from_function(raw)
    else:
        raise InvalidRequestError(f"{where} is a {type(raw).__name__}; pass a Tool, a function or an OpenAI tool dict")
    if not isinstance(tool.name, str) or not _TOOL_NAME.fullmatch(tool.name):
        raise InvalidRequestError(f"{where} has name {tool.name!r}; a tool name is 1-64 letters, digits, _ or -")
    if not isinstance(tool.description, str):
        raise InvalidRequestError(f"{where} ({tool.name}): description must be a str")
    schema = tool.parameters
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise InvalidRequestError(
            f"{where} ({tool.name}): parameters must be a JSON Schema object ({{'type': 'object', 'properties': "
            "{...}}}); wrap a single value in an object property"
        )
    try:
        orjson.dumps(schema)
    except TypeError as exc:
        raise InvalidRequestError(f"{where} ({tool.name}): parameters is not JSON-serialisable ({exc})") from None
    return tool


def sampling_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The `Request` fields for `stop`, `top_p`, `seed` and `user` (only those set).

    `stop` is a str or a list of non-empty strs (at most 16); `top_p` a number from 0
    to 1; `seed` an int; `user` a non-empty str (a stable, non-identifying id of the
    end user: OpenAI's `safety_identifier`, Anthropic's `metadata.user_id`). Raises
    `InvalidRequestError` for anything else.
    """
    fields: dict[str, Any] = {}
    if SAMPLING_OPTIONS.isdisjoint(options):
        return fields
    stop = options.get("stop")
    if stop is not None:
        sequences = (stop,) if isinstance(stop, str) else stop
        if (
            isinstance(sequences, bytes | Mapping)
            or not isinstance(sequences, Iterable)
            or not (sequences := tuple(sequences))
            or not all(isinstance(s, str) and s for s in sequences)
        ):
            raise InvalidRequestError(f"stop must be a non-empty str or a list of non-empty strs, got {stop!r}")
        if len(sequences) > MAX_STOP_SEQUENCES:
            raise InvalidRequestError(f"stop takes at most {MAX_STOP_SEQUENCES} sequences, got {len(sequences)}")
        for sequence in sequences:
            check_tool_call_id(sequence, "a stop sequence")
        fields["stop"] = sequences
    top_p = options.get("top_p")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 <= top_p <= 1:
            raise InvalidRequestError(f"top_p must be a number from 0 to 1, got {top_p!r}")
        fields["top_p"] = float(top_p)
    seed = options.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidRequestError(f"seed must be an int, got {seed!r}")
        fields["seed"] = seed
    user = options.get("user")
    if user is not None:
        if not isinstance(user, str) or not user.strip():
            raise InvalidRequestError(f"user must be a non-empty str (an id of the end user), got {user!r}")
        check_tool_call_id(user, "user")
        fields["user"] = user
    return fields


class CallOptions(TypedDict, total=False):
    """The options every call takes (`generate_response`, `generate_stream`, `generate_text`,
    `run_tools`, and their blocking twins), checked once, before any network I/O.

    Hints (`temperature`, `top_p`, `seed`, `user`) are left out of a body whose model does
    not take them; every other option is a requirement and routes (DESIGN Part 2). None
    means "not given" for every option.
    """

    model: str | None
    max_tokens: int | None
    system: str | None
    provider: str | None
    timeout: float | None
    request_id: str | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    user: str | None
    stop: str | Sequence[str] | None
    extra: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None
    tools: Sequence[Any] | None
    tool_choice: str | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None
    cache: bool | None
    response_format: Any
    output_retries: int | None
