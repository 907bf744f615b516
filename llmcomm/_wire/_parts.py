"""What both request-body builders share: tool call ids, base64 and data URLs, the cache breakpoints."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Final

#: the tool call ids every wire takes as they are
_PORTABLE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: Anthropic takes at most this many cache breakpoints in one request
MAX_CACHE_BREAKPOINTS: Final = 4

EPHEMERAL: Final = {"type": "ephemeral"}


def portable_id(call_id: str) -> str:
    """`call_id` itself when every wire takes it, else a stable id made from it.

    The same id always gives the same result, so a call and the result that
    answers it still match after rewriting.
    """
    if _PORTABLE_ID.fullmatch(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def b64(data: bytes) -> str:
    """`data` as base64 text."""
    return base64.b64encode(data).decode("ascii")


def data_url(media_type: str, data: bytes) -> str:
    """A base64 `data:` URL."""
    return f"data:{media_type};base64,{b64(data)}"


def mark_cache(blocks: list[dict[str, Any]]) -> None:
    """Put `cache_control` on the last `MAX_CACHE_BREAKPOINTS` of `blocks` (in request order)."""
    for block in blocks[-MAX_CACHE_BREAKPOINTS:]:
        block["cache_control"] = EPHEMERAL
