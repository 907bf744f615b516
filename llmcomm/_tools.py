"""`Tool.from_function`: a tool's JSON Schema from a Python function, with pydantic (imported here only);
`run_tools`: the tool loop over a one-call function."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson

from ._errors import InvalidRequestError, LLMException, OutputValidationError, ToolLoopError

if TYPE_CHECKING:
    from ._messages import Message, Tool, ToolCall
    from ._types import LLMResponse


def tool_from_function(cls: type[Tool], fn: Callable[..., Any], *, name: str | None, strict: bool) -> Tool:
    """The `Tool` for `fn`: its name, its docstring's first paragraph, and a schema of its parameters.

    Raises `InvalidRequestError` when `fn` is not a function or a parameter's type
    has no JSON Schema.
    """
    if not callable(fn):
        raise InvalidRequestError(f"Tool.from_function needs a function, got {type(fn).__name__}")
    try:
        from pydantic import TypeAdapter
        from pydantic.errors import PydanticUserError
    except ImportError:  # pragma: no cover - pydantic comes with llmcomm's dependencies
        raise InvalidRequestError("Tool.from_function needs pydantic: pip install pydantic") from None
    tool_name = name or str(getattr(fn, "__name__", ""))
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n", 1)[0].strip()
    try:
        schema: dict[str, Any] = TypeAdapter(fn).json_schema()  # type: ignore[arg-type]
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"cannot build a JSON Schema for the parameters of {tool_name!r} ({exc}); "
            "give every parameter a JSON-compatible type hint, or pass a Tool with an explicit schema"
        ) from None
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    if strict:
        schema["additionalProperties"] = False
    return cls(tool_name, description, schema, strict)


# -- the tool loop ------------------------------------------------------------------------
#
# `run_tools` takes the one-call function (`LLMCommunication.generate_response`) as an
# argument: each step is a normal call, so fallback, hooks and metrics see every step.

#: rounds of model calls `run_tools` makes before `ToolLoopError`, unless `max_steps=` says
DEFAULT_MAX_STEPS = 8


async def run_tools(
    call: Callable[..., Awaitable[LLMResponse]],
    messages: object,
    *,
    tools: Iterable[Any],
    max_steps: int = DEFAULT_MAX_STEPS,
    **options: Any,
) -> LLMResponse:
    """Call the model, run the tools it asks for, send the results back, until a reply without tool calls.

    `tools` holds functions (sync ones run in a worker thread, async ones are
    awaited; the calls of one step run concurrently), `Tool`s and OpenAI tool
    dicts (offered, but with no function to run: a call to one gets an error
    result). A function's arguments are checked (and coerced) against its type
    hints with pydantic. A tool that raises, and arguments that are not JSON or
    do not match, go back to the model as an error result and the loop goes on.
    Each step goes first to the
    provider that served the previous one, then, if that fails, to the usual
    race. Returns the last reply, with the whole exchange in `messages`.

    Raises `ToolLoopError` (with the conversation so far) after `max_steps`
    rounds that all asked for tools; `InvalidRequestError` for bad input, before
    any I/O; and whatever a call raises.
    """
    from ._conversation import to_message
    from ._messages import Message, Tool

    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidRequestError(f"max_steps must be a positive int, got {max_steps!r}")
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        raise InvalidRequestError("tools must be a list of functions, Tool or OpenAI tool dicts")
    offered: list[Any] = []
    functions: dict[str, Callable[..., Any]] = {}
    for item in tools:
        if callable(item) and not isinstance(item, Tool):
            tool = Tool.from_function(item)
            functions[tool.name] = _validating(item)
            offered.append(tool)
        else:
            offered.append(item)
    if not offered:
        raise InvalidRequestError("run_tools needs at least one tool; use generate_response for a plain call")
    turns = [messages] if isinstance(messages, str) else list(messages)  # type: ignore[call-overload]
    conversation: list[Message] = [
        Message("user", m) if isinstance(m, str) else to_message(m, i) for i, m in enumerate(turns)
    ]
    previous: str | None = None
    for _ in range(max_steps):
        response = await _step(call, conversation, offered, options, previous)
        previous = response.provider
        conversation.append(response.to_message())
        if not response.tool_calls:
            return dataclasses.replace(response, messages=tuple(conversation))
        conversation += await _run_calls(response.tool_calls, functions)
    raise ToolLoopError(
        f"the model still asked for tools after max_steps={max_steps} rounds; the conversation so far is in "
        "messages: raise max_steps, or check that the tools' results answer what the model asks",
        messages=conversation,
        request_id=options.get("request_id"),
    )


async def _step(
    call: Callable[..., Awaitable[LLMResponse]],
    conversation: list[Message],
    offered: list[Any],
    options: dict[str, Any],
    previous: str | None,
) -> LLMResponse:
    if previous is None or options.get("provider") is not None:
        return await call(list(conversation), tools=offered, **options)
    try:  # the provider that made the tool calls sees their results first (its reasoning stays valid)
        return await call(list(conversation), tools=offered, **{**options, "provider": previous})
    except (InvalidRequestError, OutputValidationError):
        raise
    except LLMException:
        return await call(list(conversation), tools=offered, **options)


async def _run_calls(calls: Sequence[ToolCall], functions: Mapping[str, Callable[..., Any]]) -> list[Message]:
    from ._messages import Message

    results: list[Message | None] = [None] * len(calls)

    async def run(position: int, tool_call: ToolCall) -> None:
        content, failed = await _run_one(tool_call, functions)
        results[position] = Message("tool", content, tool_call_id=tool_call.id, is_error=failed)

    async with anyio.create_task_group() as group:  # exists only while this step's tools run
        for position, tool_call in enumerate(calls):
            group.start_soon(run, position, tool_call)
    return [m for m in results if m is not None]


async def _run_one(tool_call: ToolCall, functions: Mapping[str, Callable[..., Any]]) -> tuple[str, bool]:
    function = functions.get(tool_call.name)
    if function is None:
        return f"error: there is no tool named {tool_call.name!r} to run; use one of {sorted(functions)}", True
    if tool_call.raw_arguments and not tool_call.arguments:
        return f"error: the arguments are not a JSON object: {tool_call.raw_arguments[:200]!r}; send valid JSON", True
    try:
        if inspect.iscoroutinefunction(function):
            value = await function(**tool_call.arguments)
        else:
            value = await anyio.to_thread.run_sync(functools.partial(function, **tool_call.arguments))
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:  # the model sees the failure and may try otherwise
        return _failure(exc, function), True
    return _as_text(value), False


def _validating(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with its arguments checked (and coerced) against its type hints, as its schema says."""
    from pydantic import validate_call

    try:
        return validate_call(function)
    except Exception:  # a callable pydantic cannot wrap is called as it is
        return function


def _failure(exc: Exception, function: Callable[..., Any]) -> str:
    errors = getattr(exc, "errors", None)
    # pydantic names the function in the title of an argument error; an error from inside the tool names its model
    names = {getattr(function, "__name__", None), getattr(function, "__qualname__", None)}
    if type(exc).__module__.startswith("pydantic") and callable(errors) and getattr(exc, "title", None) in names:
        from ._structured import describe_errors

        found = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors(include_url=False)]
        return f"error: invalid arguments: {describe_errors(found)}; call the tool again with arguments matching its schema"
    return f"error: {type(exc).__name__}: {exc}"


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=_plain).decode()
    except TypeError:
        return str(value)


def _plain(value: object) -> object:
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError
