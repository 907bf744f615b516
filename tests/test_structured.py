"""`llmcomm._structured` without I/O: strict schemas equal to the SDK helpers', wrapping, validation."""

from __future__ import annotations

import copy
import dataclasses
import enum
import subprocess
import sys
from typing import Any, Literal

import pydantic
import pytest
from anthropic.lib._parse._transform import transform_schema
from openai.lib._pydantic import _ensure_strict_json_schema, to_strict_json_schema
from typing_extensions import TypedDict

from llmcomm import InvalidRequestError, OutputValidationError
from llmcomm._structured import anthropic_strict, openai_strict, output_format


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    city: str = pydantic.Field(description="The city", max_length=40)


class Person(pydantic.BaseModel):
    """A person."""

    name: str
    age: int = pydantic.Field(ge=0, le=150)
    email: str | None = None
    home: Address
    others: list[Address] = []
    tags: list[str] = pydantic.Field(default_factory=list, min_length=1)
    color: Color = Color.RED
    kind: Literal["a", "b"] = "a"
    when: str = pydantic.Field(json_schema_extra={"format": "date-time"})


class Tree(pydantic.BaseModel):
    value: int
    children: list[Tree] = []


class Movie(TypedDict):
    title: str
    year: int


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(pydantic.BaseModel):
    pet: Cat | Dog = pydantic.Field(discriminator="kind")
    nickname: Address | None = pydantic.Field(default=None, description="where it lives")


MODELS: list[Any] = [Person, Address, Tree, Movie, Point, Pet, list[int], list[Address], int, dict[str, int], Color]
OBJECT_MODELS = [Person, Address, Tree, Movie, Point, Pet, dict[str, int]]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: getattr(m, "__name__", str(m)))
def test_strict_schemas_equal_the_sdk_helpers(model: Any) -> None:
    fmt = output_format(model)
    # The SDK helpers, given the same (wrapped when not an object) schema, make what we send.
    reference = copy.deepcopy(dict(fmt.schema))
    assert fmt.openai_schema == _ensure_strict_json_schema(reference, path=(), root=reference)
    assert fmt.anthropic_schema == transform_schema(copy.deepcopy(dict(fmt.schema)))


@pytest.mark.parametrize("model", OBJECT_MODELS, ids=lambda m: getattr(m, "__name__", str(m)))
def test_object_models_are_not_wrapped_and_match_the_sdk_from_the_type(model: Any) -> None:
    fmt = output_format(model)
    assert not fmt.wrapped
    assert fmt.openai_schema == to_strict_json_schema(pydantic.TypeAdapter(model))
    assert fmt.anthropic_schema == transform_schema(pydantic.TypeAdapter(model).json_schema())


SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 10, "description": "A"}}},
    {"type": "object", "properties": {"s": {"type": "string", "format": "email"}, "t": {"type": "string", "format": "hex"}}},
    {"type": "object", "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["v"]},
    {"type": "object", "properties": {"v": {"allOf": [{"$ref": "#/$defs/X"}]}}, "$defs": {"X": {"type": "object", "properties": {"q": {"type": "boolean"}}}}},
    {"type": "object", "properties": {"x": {"$ref": "#/$defs/X", "description": "inlined"}}, "$defs": {"X": {"type": "object", "properties": {"q": {"type": "number", "default": None}}}}},
    {"type": "object", "properties": {"e": {"enum": ["a", "b"], "type": "string"}, "c": {"const": 3}}},
    {"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 5}}},
    {"type": "object", "additionalProperties": True, "properties": {}},
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS)
def test_schema_dicts_match_the_sdk_helpers(schema: dict[str, Any]) -> None:
    reference = copy.deepcopy(schema)
    assert openai_strict(schema) == _ensure_strict_json_schema(reference, path=(), root=reference)
    assert anthropic_strict(schema) == transform_schema(copy.deepcopy(schema))
    before = copy.deepcopy(schema)
    output_format(schema)
    assert schema == before  # the caller's dict is never changed


def test_a_model_validates_into_an_instance() -> None:
    fmt = output_format(Address)
    value = fmt.parse('{"street": "Main St 1", "city": "Oslo"}')
    assert value == Address(street="Main St 1", city="Oslo")
    assert output_format(Address) is fmt  # a type's format is made once


def test_a_non_object_is_wrapped_and_unwrapped() -> None:
    fmt = output_format(list[int])
    assert fmt.wrapped and fmt.schema["required"] == ["result"]
    assert fmt.openai_schema["properties"]["result"] == {"type": "array", "items": {"type": "integer"}}
    assert fmt.parse('{"result": [1, 2, 3]}') == [1, 2, 3]
    nested = output_format(list[Address])
    assert "$defs" in nested.schema and nested.schema["properties"]["result"]["items"] == {"$ref": "#/$defs/Address"}
    assert nested.parse('{"result": [{"street": "a", "city": "b"}]}') == [Address(street="a", city="b")]


def test_dataclass_and_typeddict() -> None:
    assert output_format(Point).parse('{"x": 1, "y": 2.5}') == Point(1.0, 2.5)
    assert output_format(Movie).parse('{"title": "Up", "year": 2009}') == {"title": "Up", "year": 2009}


def test_a_schema_dict_is_decoded_not_validated() -> None:
    fmt = output_format({"type": "object", "title": "my thing!", "properties": {"n": {"type": "integer"}}})
    assert fmt.name == "my_thing_"
    assert fmt.parse('{"n": "not an int", "extra": 1}') == {"n": "not an int", "extra": 1}
    assert output_format({"type": "string"}).parse('{"result": "hi"}') == "hi"
    assert fmt.parse('```json\n{"n": 1}\n```') == {"n": 1}


@pytest.mark.parametrize(
    ("text", "kind"),
    [("not json", "json_invalid"), ('{"street": "a"}', "missing"), ('{"street": 1, "city": "b"}', "string_type"), ("", "json_invalid")],
)  # fmt: skip
def test_invalid_replies_raise_with_content_and_errors(text: str, kind: str) -> None:
    with pytest.raises(OutputValidationError) as info:
        output_format(Address).parse(text, attempts=2)
    err = info.value
    assert (err.content, err.attempts) == (text, 2)
    assert err.errors and err.errors[0]["type"] == kind
    assert "response_format 'Address'" in str(err) and "output_retries" in str(err)


def test_wrapped_reply_without_the_key_is_invalid() -> None:
    with pytest.raises(OutputValidationError) as info:
        output_format(list[int]).parse("[1, 2]")
    assert info.value.errors[0]["type"] == "missing"


@pytest.mark.parametrize(
    "bad", ["a string", b"bytes", None, {"type": "object", "properties": {"x": {"title": "no type"}}}, {"x": object()}]
)
def test_bad_formats_are_refused_before_io(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="response_format"):
        output_format(bad)


def test_a_type_pydantic_cannot_describe_is_refused() -> None:
    class Opaque:
        pass

    with pytest.raises(InvalidRequestError, match="cannot build a JSON Schema"):
        output_format(Opaque)


def test_pydantic_is_imported_only_for_types() -> None:
    code = (
        "import sys\n"
        "from llmcomm._structured import output_format\n"
        "f = output_format({'type': 'object', 'properties': {'a': {'type': 'string'}}})\n"
        "assert f.parse('{\"a\": \"x\"}') == {'a': 'x'}\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "ok", out.stderr
