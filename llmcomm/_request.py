"""Turning what callers pass into a validated `Request`, before any network I/O."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from ._call_options import CONVERSATION_OPTIONS, conversation_options
from ._conversation import check_encodable, conversation
from ._errors import InvalidRequestError
from ._structured import output_format
from ._types import Request

#: options every call accepts; anything else is refused, so a typo never passes silently
CALL_OPTIONS = (
    frozenset({"model", "max_tokens", "temperature", "system", "provider", "timeout", "request_id", "extra"})
    | CONVERSATION_OPTIONS
    | {"response_format"}
)


def new_request_id() -> str:
    """A request id in the legacy format `LLM-<epoch ms>-<8 hex>`."""
    return f"LLM-{int(time.time() * 1000)}-{os.urandom(4).hex()}"


def build_request(prompt_or_messages: object, options: Mapping[str, Any]) -> Request:
    """Validate a prompt or message list and the call options into a `Request`."""
    unknown = set(options) - CALL_OPTIONS
    if "output_retries" in unknown:  # generate_response takes it out; a stream cannot ask again
        raise InvalidRequestError(
            "output_retries applies to generate_response and run_tools; a stream is validated once, at its end: "
            "drop output_retries here"
        )
    if unknown:
        raise InvalidRequestError(
            f"unknown option(s) {sorted(unknown)}; use {sorted(CALL_OPTIONS)} (provider-specific fields go in extra={{...}})"
        )
    system, system_cache, turns = conversation(prompt_or_messages, options.get("system"))
    return Request(
        messages=turns,
        system=system,
        system_cache=system_cache,
        model=_optional_str(options, "model"),
        max_tokens=_max_tokens(options.get("max_tokens")),
        temperature=_temperature(options.get("temperature")),
        extra=_extra(options.get("extra")),
        request_id=_optional_str(options, "request_id") or new_request_id(),
        **conversation_options(options, turns),
        response_format=None if options.get("response_format") is None else output_format(options["response_format"]),
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
