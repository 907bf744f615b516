"""Retry-After: a header that is not seconds or a date is ignored; the status keeps its error class."""

from __future__ import annotations

import email.utils
import time
from typing import Literal

import anyio
import pytest

from llmcomm import LLMCommunication, ProviderUnavailableError, RateLimitError
from llmcomm._wire._status import MAX_RETRY_AFTER, parse_retry_after
from llmcomm.testing import FakeServer, Script

from .helpers import config, provider

Kind = Literal["anthropic", "openai"]
KINDS: tuple[Kind, ...] = ("anthropic", "openai")

#: Retry-After values that are neither seconds nor an HTTP date a client may honour
GARBAGE = (
    "soon",
    "Mon, 01 Jan 10000 00:00:00 GMT",  # a year Python's datetime cannot hold
    "Mon, 32 Jan 2026 00:00:00 GMT",
    "-5",
    "nan",
    "inf",
    "1e400",
    "",
    "   ",
    str(MAX_RETRY_AFTER * 10),
    "Fri, 31 Dec 9999 23:59:59 GMT",  # a valid date, centuries away
    "1,5",
    "\u0661\u0662",  # Arabic-Indic digits: float() takes them, no server means them
)


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "", "1e400", "99999999999"])
def test_garbage_retry_after_ms_falls_back_to_retry_after(value: str) -> None:
    assert parse_retry_after({"retry-after-ms": value}) is None
    assert parse_retry_after({"retry-after-ms": value, "retry-after": "3"}) == 3.0


def test_valid_retry_after_values() -> None:
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after": " 7 "}) == 7.0
    assert parse_retry_after({"retry-after": "0"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Mon, 01 Jan 2001 00:00:00 GMT"}) == 0.0  # already past
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = parse_retry_after({"retry-after": soon})
    assert wait is not None and 25.0 <= wait <= 31.0
    as_minus_zero = email.utils.formatdate(time.time() + 30).rsplit(" ", 1)[0] + " -0000"
    wait = parse_retry_after({"retry-after": as_minus_zero})
    assert wait is not None and 25.0 <= wait <= 31.0
    assert parse_retry_after(None) is None
    assert parse_retry_after({}) is None


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "Mon, 01 Jan 10000 00:00:00 GMT"},
        {"retry-after": "-1"},
        {"retry-after": "nan"},
        {"retry-after-ms": "later", "retry-after": "whenever"},
    ],
    ids=["word", "year-10000", "negative", "nan", "ms-garbage"],
)
async def test_a_429_with_garbage_retry_after_stays_a_rate_limit(
    server: FakeServer, kind: Kind, headers: dict[str, str]
) -> None:
    server.default = Script(status=429, headers=tuple(headers.items()))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(RateLimitError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
    assert caught.value.status_code == 429
    assert caught.value.retry_after is None
    assert caught.value.retryable
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "status"), [("anthropic", 503), ("anthropic", 529), ("openai", 503)])
async def test_an_unavailable_status_with_garbage_retry_after_keeps_its_class(
    server: FakeServer, kind: Kind, status: int
) -> None:
    server.default = Script(status=status, headers=(("retry-after", "Mon, 01 Jan 10000 00:00:00 GMT"),))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(ProviderUnavailableError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
    assert caught.value.status_code == status
    assert caught.value.retry_after is None


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_a_valid_retry_after_still_reaches_the_error(server: FakeServer, kind: Kind) -> None:
    server.default = Script(status=429, headers=(("retry-after", "4"),))
    async with LLMCommunication(config(provider(server, kind))) as llm:
        with pytest.raises(RateLimitError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
    assert caught.value.retry_after == 4.0
