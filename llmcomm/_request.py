"""Turning what callers pass into a validated `Request`, before any network I/O."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import InvalidRequestError
from ._types import ROLES, Message, Request

#: options every call accepts; anything else is refused, so a typo never passes silently
CALL_OPTIONS = frozenset({"model", "max_tokens", "temperature", "system", "provider", "timeout", "request_id", "extra"})


def new_request_id() -> str:
    """A request id in the legacy format `LLM-<epoch ms>-<8 hex>`."""
    return f"LLM-{int(time.time() * 1000)}-{os.urandom(4).hex()}"


def to_message(item: object, position: int) -> Message:
    """One message from a `Message`, a dict or an object with `.role`/`.content`."""
    if isinstance(item, Message):
        role, content, name = item.role, item.content, item.name
    elif isinstance(item, Mapping):
        if "role" not in item or "content" not in item:
            raise InvalidRequestError(
                f"message {position} needs 'role' and 'content' keys, got {sorted(map(str, item))}"
            )
        role, content, name = item["role"], item["content"], item.get("name")
    elif hasattr(item, "role") and hasattr(item, "content"):
        role, content, name = item.role, item.content, getattr(item, "name", None)
    else:
        raise InvalidRequestError(
            f"message {position} is a {type(item).__name__}; pass a Message, a dict or an object with .role and .content"
        )
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequestError(f"message {position} has role {role!r}; use one of 'system', 'user', 'assistant'")
    if not isinstance(content, str):
        raise InvalidRequestError(f"message {position} content must be a str, got {type(content).__name__}")
    if name is not None and not isinstance(name, str):
        raise InvalidRequestError(f"message {position} name must be a str or None, got {type(name).__name__}")
    check_encodable(content, f"message {position} content")
    if name is not None:
        check_encodable(name, f"message {position} name")
    return Message(role, content, name)


def check_encodable(text: str, what: str) -> None:
    """Refuse text that cannot travel as UTF-8 (a lone surrogate), before any I/O."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{what} is not valid Unicode text (a lone surrogate at index {exc.start}); "
            "decode the input with errors='replace' or strip the surrogates"
        ) from None


def build_request(prompt_or_messages: object, options: Mapping[str, Any]) -> Request:
    """Validate a prompt or message list and the call options into a `Request`."""
    unknown = set(options) - CALL_OPTIONS
    if unknown:
        raise InvalidRequestError(
            f"unknown option(s) {sorted(unknown)}; use {sorted(CALL_OPTIONS)} (provider-specific fields go in extra={{...}})"
        )
    if prompt_or_messages is None:
        raise InvalidRequestError("the prompt is None; pass a non-empty string or a list of messages")
    if isinstance(prompt_or_messages, str):
        if not prompt_or_messages.strip():
            raise InvalidRequestError("the prompt is empty; pass a non-empty string")
        check_encodable(prompt_or_messages, "the prompt")
        messages = [Message("user", prompt_or_messages)]
    elif isinstance(prompt_or_messages, bytes | Mapping) or not isinstance(prompt_or_messages, Iterable):
        raise InvalidRequestError(
            f"expected a prompt string or a list of messages, got {type(prompt_or_messages).__name__}"
        )
    else:
        messages = [to_message(item, i) for i, item in enumerate(prompt_or_messages)]
    system_parts = [m.content for m in messages if m.role == "system" and m.content.strip()]
    system_option = options.get("system")
    if system_option is not None:
        if not isinstance(system_option, str):
            raise InvalidRequestError(f"system must be a str, got {type(system_option).__name__}")
        check_encodable(system_option, "system")
        if system_option.strip():
            system_parts.insert(0, system_option)
    turns = tuple(m for m in messages if m.role != "system")
    if not turns:
        raise InvalidRequestError("the message list has no user or assistant message; add at least one user message")
    if turns[-1].role != "user":
        raise InvalidRequestError("the last message must come from the user; append the user's turn")
    if not any(m.content.strip() for m in turns):
        raise InvalidRequestError("every message is empty; give the user message some content")
    return Request(
        messages=turns,
        system="\n\n".join(system_parts) or None,
        model=_optional_str(options, "model"),
        max_tokens=_max_tokens(options.get("max_tokens")),
        temperature=_temperature(options.get("temperature")),
        extra=_extra(options.get("extra")),
        request_id=_optional_str(options, "request_id") or new_request_id(),
    )


def check_timeout(value: object) -> float | None:
    """A positive, finite number of seconds, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidRequestError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def _optional_str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{key} must be a non-empty str, got {value!r}")
    check_encodable(value, key)
    return value


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f"max_tokens must be a positive int, got {value!r}")
    return value


def _temperature(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise InvalidRequestError(f"temperature must be a number from 0 to 2, got {value!r}")
    return float(value)


def _extra(value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidRequestError("extra must be a dict of provider-specific request fields")
    reserved = {"model", "messages", "stream", "system"} & set(value)
    if reserved:
        raise InvalidRequestError(f"extra may not set {sorted(reserved)}; use the call's own arguments")
    try:
        # What the SDKs will send: strict JSON (no NaN or infinity), valid UTF-8.
        json.dumps(value, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"extra must hold only JSON values (str, numbers, bools, None, lists, dicts; no NaN): {exc}"
        ) from None
    return dict(value)
