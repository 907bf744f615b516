"""The `llmcomm` command's structured output and image options.

    llmcomm --schema '{"type": "object", "properties": {"city": {"type": "string"}}}' "Capital of Norway?"
    llmcomm --json-schema city.schema.json "Capital of Norway?"
    llmcomm -i photo.png "What is in this picture?"

With a schema the reply is asked for as JSON matching it (sent natively to each
provider, asked again once when it does not decode) and printed as JSON on
stdout once complete. `-i/--image PATH` (repeatable) attaches PNG, JPEG, GIF
or WebP images to the prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import orjson

from .._conversation import sniff_image
from .._messages import ImagePart, Message, Part, TextPart
from .._types import LLMResponse
from . import UsageError

#: the largest image file read, in bytes (what the providers accept is smaller still)
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--json-schema FILE`, `--schema JSON` and `-i/--image PATH` to the command's parser."""
    schema = parser.add_mutually_exclusive_group()
    schema.add_argument(
        "--json-schema", metavar="FILE", help="reply with JSON matching the JSON Schema in FILE (printed when complete)"
    )
    schema.add_argument("--schema", metavar="JSON", help="as --json-schema, with the schema given inline")
    parser.add_argument(
        "-i", "--image", action="append", default=[], metavar="PATH", help="attach an image (repeat for more)"
    )


def request_from(args: argparse.Namespace, prompt: str) -> tuple[str | list[Message], dict[str, Any]]:
    """The prompt (with its images) and the extra call options the arguments ask for.

    Raises `UsageError` for a schema that is not a JSON object, a file that
    cannot be read, or an image that is not PNG, JPEG, GIF or WebP.
    """
    options: dict[str, Any] = {}
    schema = _schema(args.json_schema, args.schema)
    if schema is not None:
        options["response_format"] = schema
    if not args.image:
        return prompt, options
    parts: list[Part] = [TextPart(prompt)]
    parts += [_image(path) for path in args.image]
    return [Message("user", tuple(parts))], options


def print_parsed(response: LLMResponse) -> None:
    """The reply's decoded JSON on stdout, indented (the raw text when it was a refusal)."""
    if response.parsed is None:
        sys.stdout.write(response.content.rstrip("\n") + "\n")
    else:
        sys.stdout.write(json.dumps(_plain(response.parsed), ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _plain(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def _schema(path: str | None, inline: str | None) -> dict[str, Any] | None:
    if path is None and inline is None:
        return None
    where = "--schema" if inline is not None else f"--json-schema {path}"
    if inline is not None:
        text: str | bytes = inline
    else:
        try:
            text = Path(str(path)).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read the schema file {path!r}: {exc.strerror or exc}") from None
    try:
        schema = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{where}: the schema is not valid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise UsageError(f'{where}: the schema must be a JSON object, e.g. {{"type": "object", "properties": {{...}}}}')
    return schema


def _image(path: str) -> ImagePart:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the image {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise UsageError(f"the image {path!r} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB; make it smaller")
    media_type = sniff_image(data)
    if media_type is None:
        raise UsageError(f"{path!r} is not a PNG, JPEG, GIF or WebP image")
    return ImagePart(data=data, media_type=media_type)
