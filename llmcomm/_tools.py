"""`Tool.from_function`: a tool's JSON Schema from a Python function, with pydantic (imported here only)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import InvalidRequestError

if TYPE_CHECKING:
    from ._messages import Tool


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
