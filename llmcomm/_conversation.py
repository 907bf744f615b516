"""Callers' messages and conversation options, checked and normalised before any I/O.

Accepted: `Message`s, dicts (llmcomm's own shape and OpenAI Chat Completions
message dicts: text / image_url / file parts, assistant `tool_calls`, role
`tool` with `tool_call_id`) and objects with `.role` and `.content`. Every
mistake is an `InvalidRequestError` that says what to fix. A text-only message
passes through two type checks and an encoding check, as before.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence

import orjson

from ._call_options import check_tool_call_id
from ._errors import InvalidRequestError
from ._messages import (
    ROLES,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    ToolCall,
    parse_arguments,
    text_message,
)

__all__ = ["check_encodable", "conversation", "to_message"]


def check_encodable(text: str, what: str) -> None:
    """Refuse text that cannot travel as UTF-8 (a lone surrogate), before any I/O."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{what} is not valid Unicode text (a lone surrogate at index {exc.start}); "
            "decode the input with errors='replace' or strip the surrogates"
        ) from None


def conversation(prompt_or_messages: object, system_option: object) -> tuple[str | None, bool, tuple[Message, ...]]:
    """`(system text, whether it ends in a cache breakpoint, the other turns)` of a call.

    Raises `InvalidRequestError` for a bad message, a tool result that answers no
    call, a conversation without a user turn or one that does not end with the
    user's turn or a tool result.
    """
    if prompt_or_messages is None:
        raise InvalidRequestError("the prompt is None; pass a non-empty string or a list of messages")
    if isinstance(prompt_or_messages, str):
        if not prompt_or_messages.strip():
            raise InvalidRequestError("the prompt is empty; pass a non-empty string")
        check_encodable(prompt_or_messages, "the prompt")
        messages = [text_message("user", prompt_or_messages)]
    elif isinstance(prompt_or_messages, bytes | Mapping) or not isinstance(prompt_or_messages, Iterable):
        raise InvalidRequestError(
            f"expected a prompt string or a list of messages, got {type(prompt_or_messages).__name__}"
        )
    else:
        messages = [to_message(item, i) for i, item in enumerate(prompt_or_messages)]
    system_parts: list[str] = []
    system_cache = False
    rich = False
    for m in messages:
        if m.content.__class__ is not str or m.role == "tool":
            rich = True
        if m.role == "system":
            if m.content.__class__ is not str and any(not isinstance(p, TextPart) for p in m.content):
                raise InvalidRequestError(
                    "a system message may hold text only; put images and documents in a user turn"
                )
            if m.text.strip():
                system_parts.append(m.text)
            system_cache = system_cache or (m.content.__class__ is not str and any(p.cache for p in m.content))  # type: ignore[union-attr]
    if system_option is not None:
        if not isinstance(system_option, str):
            raise InvalidRequestError(f"system must be a str, got {type(system_option).__name__}")
        check_encodable(system_option, "system")
        if system_option.strip():
            system_parts.insert(0, system_option)
    turns = tuple(m for m in messages if m.role != "system")
    if not turns:
        raise InvalidRequestError("the message list has no user or assistant message; add at least one user message")
    if turns[-1].role not in ("user", "tool"):
        raise InvalidRequestError(
            "the last message must come from the user (or be a tool result); append the user's turn"
        )
    if not any(m.content if m.content.__class__ is not str else m.content.strip() for m in turns):
        raise InvalidRequestError("every message is empty; give the user message some content")
    if rich:
        _check_tool_results(turns)
    return "\n\n".join(system_parts) or None, system_cache, turns


def _check_tool_results(turns: Sequence[Message]) -> None:
    called: set[str] = set()
    for position, m in enumerate(turns):
        if m.tool_calls:
            called.update(call.id for call in m.tool_calls)
        elif m.role == "tool" and m.tool_call_id not in called:
            raise InvalidRequestError(
                f"message {position} is a tool result for {m.tool_call_id!r}, but no earlier assistant message "
                "made that call; keep the assistant message with its tool_calls before the results"
            )


#: the keys of a dict that is a plain text message
_PLAIN_KEYS = frozenset(("role", "content", "name"))


def to_message(item: object, position: int) -> Message:
    """One message from a `Message`, a dict or an object with `.role`/`.content`."""
    role: object
    content: object
    name: object
    extras: tuple[object, object, object] | None = None
    if item.__class__ is Message:  # the common cases first, without an ABC check
        role, content, name = item.role, item.content, item.name
        if item.tool_calls or item.tool_call_id is not None or item.is_error:
            extras = (item.tool_calls, item.tool_call_id, item.is_error)
    elif item.__class__ is dict or isinstance(item, Mapping):
        if "role" not in item or ("content" not in item and not item.get("tool_calls")):
            raise InvalidRequestError(
                f"message {position} needs 'role' and 'content' keys, got {sorted(map(str, item))}"
            )
        role, content, name = item["role"], item.get("content"), item.get("name")
        if not item.keys() <= _PLAIN_KEYS:
            extras = (item.get("tool_calls"), item.get("tool_call_id"), item.get("is_error", False))
    elif hasattr(item, "role") and hasattr(item, "content"):
        role, content, name = item.role, item.content, getattr(item, "name", None)
        extras = (
            getattr(item, "tool_calls", ()),
            getattr(item, "tool_call_id", None),
            getattr(item, "is_error", False),
        )
    else:
        raise InvalidRequestError(
            f"message {position} is a {type(item).__name__}; pass a Message, a dict or an object with .role and .content"
        )
    if role.__class__ is not str or role not in ROLES:
        raise InvalidRequestError(
            f"message {position} has role {role!r}; use one of 'system', 'user', 'assistant', 'tool'"
        )
    if name is not None:
        if not isinstance(name, str):
            raise InvalidRequestError(f"message {position} name must be a str or None, got {type(name).__name__}")
        check_encodable(name, f"message {position} name")
    if content.__class__ is str and role != "tool" and (extras is None or not (extras[0] or extras[1] or extras[2])):
        check_encodable(content, f"message {position} content")
        if item.__class__ is Message:
            return item
        return text_message(role, content, name)
    return _rich_message(role, content, name, extras or ((), None, False), position)


def _rich_message(
    role: str, content: object, name: str | None, extras: tuple[object, object, object], position: int
) -> Message:
    where = f"message {position}"
    raw_calls, call_id, is_error = extras
    if content is None:
        content = ""
    if isinstance(content, str):
        check_encodable(content, f"{where} content")
        normal: str | tuple[Part, ...] = content
    elif isinstance(content, bytes | Mapping) or not isinstance(content, Iterable):
        raise InvalidRequestError(
            f"{where} content must be a str or a list of parts (TextPart, ImagePart, DocumentPart or "
            f"OpenAI-style part dicts), got {type(content).__name__}"
        )
    else:
        normal = tuple(_part(p, f"{where} part {i}") for i, p in enumerate(content))
        for part in normal:
            if isinstance(part, ReasoningPart) and role != "assistant":
                raise InvalidRequestError(f"{where}: reasoning belongs in an assistant turn only")
            if isinstance(part, ImagePart | DocumentPart) and role not in ("user", "tool", "system"):
                raise InvalidRequestError(f"{where}: images and documents go in a user turn or a tool result")
    calls: tuple[ToolCall, ...] = ()
    if raw_calls:
        if role != "assistant":
            raise InvalidRequestError(f"{where}: only an assistant message carries tool_calls")
        if isinstance(raw_calls, str | bytes | Mapping) or not isinstance(raw_calls, Iterable):
            raise InvalidRequestError(f"{where}: tool_calls must be a list of ToolCall or OpenAI tool_call dicts")
        calls = tuple(_tool_call(c, f"{where} tool call {i}") for i, c in enumerate(raw_calls))
    if role == "tool":
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequestError(f"{where} is a tool result without tool_call_id; name the call it answers")
        check_tool_call_id(call_id, f"{where} tool_call_id")
    elif call_id is not None:
        raise InvalidRequestError(f"{where}: only a 'tool' message carries tool_call_id")
    if not isinstance(is_error, bool):
        raise InvalidRequestError(f"{where}: is_error must be a bool")
    return Message(role, normal, name, calls, call_id, is_error)  # type: ignore[arg-type]


def _tool_call(raw: object, where: str) -> ToolCall:
    call_id: object
    name: object
    arguments: object
    raw_text: object
    if isinstance(raw, ToolCall):
        call_id, name, arguments, raw_text = raw.id, raw.name, raw.arguments, raw.raw_arguments
    elif isinstance(raw, Mapping):
        function = raw.get("function")
        if not isinstance(function, Mapping):
            raise InvalidRequestError(f"{where} needs a 'function' with 'name' and 'arguments' (OpenAI format)")
        call_id, name, arguments, raw_text = raw.get("id"), function.get("name"), function.get("arguments"), ""
        if isinstance(arguments, str):
            arguments, raw_text = parse_arguments(arguments)
        elif arguments is None:
            arguments = {}
    else:
        raise InvalidRequestError(f"{where} is a {type(raw).__name__}; pass a ToolCall or an OpenAI tool_call dict")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{where} has no id; every tool call needs the id its result will name")
    check_tool_call_id(call_id, f"{where} id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where} has no tool name")
    if not isinstance(arguments, Mapping):
        raise InvalidRequestError(f"{where}: arguments must be a JSON object (a dict), got {type(arguments).__name__}")
    check_json(arguments, f"{where} arguments")
    return ToolCall(call_id, name, dict(arguments), raw_text if isinstance(raw_text, str) else "")


def check_json(value: object, what: str) -> None:
    """Refuse what cannot be sent as strict JSON (a set, an object, NaN), naming where it is."""
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise InvalidRequestError(
            f"{what} is not JSON-serialisable ({exc}); use str, numbers, bools, None, lists and dicts"
        ) from None


_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*?(;base64)?,", re.ASCII)


def _part(raw: object, where: str) -> Part:
    if isinstance(raw, TextPart):
        if not isinstance(raw.text, str):
            raise InvalidRequestError(f"{where}: TextPart.text must be a str")
        check_encodable(raw.text, where)
        return raw
    if isinstance(raw, ImagePart | DocumentPart):
        return _media(raw, where)
    if isinstance(raw, ReasoningPart):
        return raw
    if isinstance(raw, str):
        check_encodable(raw, where)
        return TextPart(raw)
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(
            f"{where} is a {type(raw).__name__}; use TextPart, ImagePart, DocumentPart or an OpenAI part dict"
        )
    kind = raw.get("type")
    cache = bool(raw.get("cache_control"))
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{where}: a text part needs a str 'text'")
        check_encodable(text, where)
        return TextPart(text, cache)
    if kind == "image_url":
        image = raw.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise InvalidRequestError(f"{where}: an image_url part needs {{'image_url': {{'url': ...}}}}")
        return _media(ImagePart(url=url, cache=cache), where)
    if kind == "file":
        file = raw.get("file")
        if not isinstance(file, Mapping) or not isinstance(file.get("file_data"), str):
            raise InvalidRequestError(
                f"{where}: a file part needs {{'file': {{'file_data': 'data:application/pdf;base64,...'}}}} "
                "(uploaded file ids are not portable across providers)"
            )
        title = file.get("filename")
        return _media(DocumentPart(url=file["file_data"], title=title if isinstance(title, str) else None), where)
    raise InvalidRequestError(
        f"{where} has unknown part type {kind!r}; use 'text', 'image_url' or 'file' (or TextPart, ImagePart, "
        "DocumentPart)"
    )


def _media(part: ImagePart | DocumentPart, where: str) -> ImagePart | DocumentPart:
    what = "an image" if isinstance(part, ImagePart) else "a document"
    if (part.data is None) == (part.url is None):
        raise InvalidRequestError(f"{where}: {what} needs exactly one of data (bytes) or url")
    if part.data is not None:
        if not isinstance(part.data, bytes | bytearray | memoryview):
            raise InvalidRequestError(f"{where}: {what}'s data must be bytes, got {type(part.data).__name__}")
        if not part.data:
            raise InvalidRequestError(f"{where}: {what}'s data is empty")
        if isinstance(part, ImagePart) and part.media_type is None:
            sniffed = sniff_image(bytes(part.data))
            if sniffed is None:
                raise InvalidRequestError(
                    f"{where}: cannot tell the image's format; set media_type='image/png' (or jpeg, gif, webp)"
                )
            return ImagePart(bytes(part.data), None, sniffed, part.cache)
        return part
    url = part.url
    if not isinstance(url, str):
        raise InvalidRequestError(f"{where}: {what}'s url must be a str")
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, where)
        if isinstance(part, ImagePart):
            return ImagePart(data, None, part.media_type or media_type or sniff_image(data), part.cache)
        return DocumentPart(data, None, media_type or part.media_type, part.title, part.cache)
    if not url.startswith(("http://", "https://")):
        raise InvalidRequestError(f"{where}: {what}'s url must be http(s):// or a data: URL, got {url[:40]!r}")
    check_encodable(url, where)
    return part


def parse_data_url(url: str, where: str) -> tuple[str | None, bytes]:
    """`(media type, bytes)` of a base64 `data:` URL; `InvalidRequestError` when it is not one."""
    match = _DATA_URL.match(url)
    if match is None or not match.group(2):
        raise InvalidRequestError(f"{where}: a data: URL must be base64, like data:image/png;base64,...")
    try:
        data = base64.b64decode(url[match.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{where}: the data: URL's base64 is invalid") from None
    return match.group(1), data


def sniff_image(data: bytes) -> str | None:
    """The media type of PNG, JPEG, GIF and WebP data, from its first bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def message_is_rich(message: Message) -> bool:
    """Whether a message holds anything besides text."""
    return message.content.__class__ is not str or bool(message.tool_calls) or message.role == "tool"


def any_rich(messages: Sequence[Message]) -> bool:
    """Whether any message holds anything besides text (the providers' fast path tests this)."""
    return any(map(message_is_rich, messages))
