"""Structured output, pure: a `response_format=` as a strict JSON Schema per wire, and a reply's text as the value.

`response_format` is a pydantic model class, any type pydantic's `TypeAdapter`
takes (a dataclass, a TypedDict, `list[int]`, ...), or a JSON Schema dict. A
schema whose root is not an object is wrapped as `{"result": ...}` (the APIs
take only object roots) and the value is unwrapped again.

Each wire gets the schema made strict as the official SDKs' parse helpers make
it: for OpenAI (`openai_schema`) every object closed (`additionalProperties:
false`), every property required, a `$ref` with siblings inlined, a single
`allOf` flattened and `None` defaults dropped; for Anthropic
(`anthropic_schema`) only the keywords the API takes are kept (`oneOf` becomes
`anyOf`; string formats and `minItems` only where supported) and every other
keyword is appended to the description, so the model may still follow it.

pydantic is imported only when a type is given: a schema dict is decoded, not
validated.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

import orjson

from ._errors import InvalidRequestError, OutputValidationError

__all__ = ["OutputFormat", "anthropic_strict", "openai_strict", "output_format"]

#: the property that holds a non-object value in its wrapping object
WRAP_KEY: Final = "result"
_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_FENCE: Final = re.compile(r"\A```(?:json)?\s*\n(.*)\n```\Z", re.DOTALL)
_ANTHROPIC_FORMATS: Final = frozenset(
    ("date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid")
)


@final
@dataclass(frozen=True, slots=True, eq=False)
class OutputFormat:
    """A checked `response_format`: its name, its JSON Schema (wrapped when not an object) and its reader.

    `adapter` is the pydantic `TypeAdapter` of a type, or None for a schema dict.
    """

    name: str
    schema: Mapping[str, Any]
    wrapped: bool
    adapter: Any = None
    openai_schema: Mapping[str, Any] = field(default_factory=dict)
    anthropic_schema: Mapping[str, Any] = field(default_factory=dict)

    def parse(self, text: str, *, attempts: int = 1) -> Any:
        """The value in a reply's `text`: a validated instance for a type, decoded JSON for a schema dict.

        Raises `OutputValidationError` (with the raw text, the errors and
        `attempts`) when the text is not JSON or fails validation.
        """
        raw = text.strip()
        fenced = _FENCE.match(raw)
        if fenced:  # a model that ignores native structured output may still fence its JSON
            raw = fenced.group(1)
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self._failure(
                text, [{"loc": [], "msg": f"not valid JSON: {exc}", "type": "json_invalid"}], attempts
            ) from None
        if self.wrapped:
            if not isinstance(decoded, dict) or WRAP_KEY not in decoded:
                error = {"loc": [], "msg": f"expected an object with the key {WRAP_KEY!r}", "type": "missing"}
                raise self._failure(text, [error], attempts)
            decoded = decoded[WRAP_KEY]
        if self.adapter is None:
            return decoded
        from pydantic import ValidationError

        try:
            return self.adapter.validate_python(decoded)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)
            ]
            raise self._failure(text, errors, attempts) from None

    def _failure(self, text: str, errors: list[dict[str, Any]], attempts: int) -> OutputValidationError:
        return OutputValidationError(
            f"the reply does not match the response_format {self.name!r}: {describe_errors(errors)}; "
            "the raw reply is in content: loosen the schema, raise max_tokens or output_retries, or try another model",
            content=text,
            errors=errors,
            attempts=attempts,
        )


def describe_errors(errors: list[dict[str, Any]], limit: int = 5) -> str:
    """The validation errors as one line (the first `limit`), as the model is told them on a retry."""
    shown = [f"{'.'.join(map(str, e.get('loc') or ())) or '(root)'}: {e.get('msg')}" for e in errors[:limit]]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(shown) + more


def output_format(value: object) -> OutputFormat:
    """`value` (a type or a JSON Schema dict) as an `OutputFormat`.

    Raises `InvalidRequestError` when `value` is neither, when pydantic cannot
    make a schema of the type, or when the schema cannot be made strict.
    """
    if isinstance(value, OutputFormat):
        return value
    if isinstance(value, Mapping):
        try:
            schema = orjson.loads(orjson.dumps(value))  # a private, plain copy; proves it is JSON
        except TypeError as exc:
            raise InvalidRequestError(f"response_format schema is not JSON-serialisable ({exc})") from None
        title = schema.get("title")
        return _build(title if isinstance(title, str) else "response", schema, None)
    if isinstance(value, str | bytes) or value is None:
        raise InvalidRequestError(
            f"response_format must be a type (a pydantic model, dataclass, TypedDict, ...) or a JSON Schema dict, "
            f"got {value!r}"
        )
    try:
        return _of_type(value)
    except TypeError:  # an unhashable type form: not cached
        return _of_type.__wrapped__(value)


@functools.lru_cache(maxsize=128)
def _of_type(value: Any) -> OutputFormat:
    try:
        from pydantic import TypeAdapter
        from pydantic.errors import PydanticUserError
    except ImportError:  # pragma: no cover - pydantic comes with llmcomm's dependencies
        raise InvalidRequestError("response_format with a type needs pydantic: pip install pydantic") from None
    try:
        adapter: Any = TypeAdapter(value)
        schema = adapter.json_schema()
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"cannot build a JSON Schema for response_format {value!r} ({exc}); "
            "use a pydantic model, a dataclass, a TypedDict or pass a JSON Schema dict"
        ) from None
    return _build(str(getattr(value, "__name__", "") or "response"), schema, adapter)


def _build(name: str, schema: dict[str, Any], adapter: Any) -> OutputFormat:
    wrapped = _root_type(schema) != "object"
    if wrapped:
        defs = schema.pop("$defs", None)
        inner = schema
        schema = {"type": "object", "properties": {WRAP_KEY: inner}, "required": [WRAP_KEY]}
        if defs is not None:
            schema["$defs"] = defs
    safe = _NAME_UNSAFE.sub("_", name)[:64] or "response"
    try:
        strict_openai = openai_strict(schema)
        strict_anthropic = anthropic_strict(schema)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequestError(f"response_format schema cannot be used ({exc}); check its $ref and types") from None
    return OutputFormat(safe, schema, wrapped, adapter, strict_openai, strict_anthropic)


def _root_type(schema: dict[str, Any]) -> object:
    ref = schema.get("$ref")  # a recursive model's root is a reference into its $defs
    if isinstance(ref, str) and ref.startswith("#/$defs/") and "type" not in schema:
        target = schema.get("$defs", {}).get(ref[len("#/$defs/") :])
        return target.get("type") if isinstance(target, dict) else None
    return schema.get("type")


# -- OpenAI: what `openai.lib._pydantic.to_strict_json_schema` makes of a schema ----------


def openai_strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` made strict for OpenAI structured outputs (a new dict; `schema` is left alone).

    Raises `ValueError` for a `$ref` that does not resolve inside the schema.
    """
    root = copy.deepcopy(dict(schema))
    return _openai_node(root, root)


def _openai_node(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for defs_key in ("$defs", "definitions"):
        defs = node.get(defs_key)
        if isinstance(defs, dict):
            for sub in defs.values():
                _openai_node(sub, root)
    if node.get("type") == "object":
        node.setdefault("additionalProperties", False)
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties)
        node["properties"] = {key: _openai_node(sub, root) for key, sub in properties.items()}
    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _openai_node(items, root)
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        node["anyOf"] = [_openai_node(sub, root) for sub in any_of]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.update(_openai_node(all_of[0], root))
            del node["allOf"]
        else:
            node["allOf"] = [_openai_node(sub, root) for sub in all_of]
    if "default" in node and node["default"] is None:
        del node["default"]
    ref = node.get("$ref")
    if ref and len(node) > 1:  # a $ref may not have siblings: inline its target under them
        target = _resolve(root, ref)
        merged = {**target, **node}
        node.clear()
        node.update(merged)
        del node["$ref"]
        return _openai_node(node, root)
    return node


def _resolve(root: dict[str, Any], ref: object) -> dict[str, Any]:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise ValueError(f"$ref {ref!r} does not point inside the schema (#/...)")
    target: Any = root
    for key in ref[2:].split("/"):
        target = target[key]
        if not isinstance(target, dict):
            raise TypeError(f"$ref {ref!r} does not resolve to a schema object")
    return dict(target)


# -- Anthropic: what `anthropic.lib._parse._transform.transform_schema` makes of a schema --


def anthropic_strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` made strict for Anthropic structured outputs (a new dict; `schema` is left alone).

    Raises `ValueError` for a node with no `type`, `anyOf`, `oneOf`, `allOf`,
    `const` or non-empty `enum`.
    """
    rest = dict(schema)
    out: dict[str, Any] = {}
    defs = rest.pop("$defs", None)
    if defs is not None:
        out["$defs"] = {name: anthropic_strict(sub) for name, sub in defs.items()}
    ref = rest.pop("$ref", None)
    if ref is not None:  # a reference stands alone: its siblings are dropped
        out["$ref"] = ref
        return out
    kind = rest.pop("type", None)
    any_of, one_of, all_of = rest.pop("anyOf", None), rest.pop("oneOf", None), rest.pop("allOf", None)
    enum = rest.get("enum")
    if isinstance(enum, list) and enum and all(_primitive(v) for v in enum):
        out["enum"] = list(rest.pop("enum"))
    if "const" in rest and _primitive(rest["const"]):
        out["const"] = rest.pop("const")
    literal = "enum" in out or "const" in out
    if literal:
        kind = None
    if isinstance(any_of, list):
        out["anyOf"] = [anthropic_strict(sub) for sub in any_of]
    elif isinstance(one_of, list):
        out["anyOf"] = [anthropic_strict(sub) for sub in one_of]
    elif isinstance(all_of, list):
        out["allOf"] = [anthropic_strict(sub) for sub in all_of]
    elif not literal:
        if kind is None:
            raise ValueError("a schema node needs a type, anyOf, oneOf, allOf, const or a non-empty enum")
        out["type"] = kind
    for key in ("description", "title"):
        value = rest.pop(key, None)
        if value is not None:
            out[key] = value
    if kind == "object":
        out["properties"] = {key: anthropic_strict(sub) for key, sub in rest.pop("properties", {}).items()}
        rest.pop("additionalProperties", None)
        out["additionalProperties"] = False
        required = rest.pop("required", None)
        if required is not None:
            out["required"] = list(required) if isinstance(required, list) else required
    elif kind == "string":
        fmt = rest.pop("format", None)
        if fmt in _ANTHROPIC_FORMATS:
            out["format"] = fmt
        elif fmt:
            rest["format"] = fmt
    elif kind == "array":
        items = rest.pop("items", None)
        if items is not None:
            out["items"] = anthropic_strict(items)
        min_items = rest.pop("minItems", None)
        if min_items is not None and min_items in (0, 1):
            out["minItems"] = min_items
        elif min_items is not None:
            rest["minItems"] = min_items
    if rest:  # keywords the API does not take: told to the model in the description
        note = "{" + ", ".join(f"{key}: {value}" for key, value in rest.items()) + "}"
        description = out.get("description")
        out["description"] = (description + "\n\n" if description is not None else "") + note
    return out


def _primitive(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
