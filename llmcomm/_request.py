"""Turning what callers pass into a validated `Request`, before any network I/O."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from ._call_options import CONVERSATION_OPTIONS, SAMPLING_OPTIONS, conversation_options, sampling_options
from ._config import headers_problem
from ._conversation import check_encodable, conversation
from ._errors import InvalidRequestError
from ._structured import output_format
from ._types import Request

#: options every call accepts; anything else is refused, so a typo never passes silently
CALL_OPTIONS = (
    frozenset(
        {"model", "max_tokens", "temperature", "system", "provider", "timeout", "request_id", "extra", "extra_headers"}
    )
    | CONVERSATION_OPTIONS
    | SAMPLING_OPTIONS
    | {"response_format"}
)
#: the provider kinds: an `extra` key naming one (and holding a dict) goes to that kind only
KINDS = frozenset({"anthropic", "openai", "claude_cli"})


def new_request_id() -> str:
    """A request id in the legacy format `LLM-<epoch ms>-<8 hex>`."""
    return f"LLM-{int(time.time() * 1000)}-{os.urandom(4).hex()}"


def build_request(prompt_or_messages: object, options: Mapping[str, Any], targets: frozenset[str] = KINDS) -> Request:
    """Validate a prompt or message list and the call options into a `Request`.

    `targets` are the names `extra` may address (the configured providers' names and
    the kinds): such a key holding a dict goes to that provider or kind only.
    """
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
    extra, extra_for = _extra(options.get("extra"), targets | KINDS)
    return Request(
        messages=turns,
        system=system,
        system_cache=system_cache,
        model=_optional_str(options, "model"),
        max_tokens=_max_tokens(options.get("max_tokens")),
        temperature=_temperature(options.get("temperature")),
        extra=extra,
        extra_for=extra_for,
        extra_headers=_extra_headers(options.get("extra_headers")),
        request_id=_optional_str(options, "request_id") or new_request_id(),
        **conversation_options(options, turns),
        **sampling_options(options),
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


def _extra(value: object, targets: frozenset[str]) -> tuple[Mapping[str, Any], Mapping[str, Mapping[str, Any]]]:
    """`extra` split into the fields for every provider and those for one provider or kind."""
    if value is None:
        return {}, {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidRequestError("extra must be a dict of provider-specific request fields")
    shared = {k: v for k, v in value.items() if not (k in targets and isinstance(v, Mapping))}
    aimed = {k: v for k, v in value.items() if k not in shared}
    for where, fields in (("extra", shared), *((f"extra[{k!r}]", v) for k, v in aimed.items())):
        if not all(isinstance(k, str) for k in fields):
            raise InvalidRequestError(f"{where} must be a dict with str keys")
        reserved = {"model", "messages", "stream", "system"} & set(fields)
        if reserved:
            raise InvalidRequestError(f"{where} may not set {sorted(reserved)}; use the call's own arguments")
    try:
        # What goes on the wire: strict JSON (no NaN or infinity), valid UTF-8.
        json.dumps(value, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"extra must hold only JSON values (str, numbers, bools, None, lists, dicts; no NaN): {exc}"
        ) from None
    return dict(shared), {k: dict(v) for k, v in aimed.items()}


def _extra_headers(value: object) -> Mapping[str, str]:
    """A call's own HTTP headers, checked as the configuration's are (names, never values, in errors)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError("extra_headers must be a dict of header names to str values")
    if (problem := headers_problem(value)) is not None:
        raise InvalidRequestError(f"extra_headers {problem}")
    return dict(value)
