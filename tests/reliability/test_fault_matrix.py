"""The fault matrix: every failure a deployment meets, over the real SDK clients and real TCP.

Each row is one fault, run on both HTTP wire formats (Anthropic, OpenAI) and both
event loops, with DEBUG logging on and a canary key per provider. A row states the
outcome (an error class, or success and its text), how long the call may take, how
many requests the server saw, and the partial text when the stream had started.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmcomm import (
    AuthenticationError,
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    LLMTimeoutError,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from llmcomm.testing import FakeServer, Script

from ..helpers import config, refused_url
from ._support import CANARIES, Kind, LogCapture, error_texts, find_canaries, sse_body, truncated_delta

pytestmark = pytest.mark.anyio

MULTIBYTE = "héllo 你好 🎉 ∑"
EMPTY_REPLY = {
    "anthropic": b'{"type": "message", "content": []}',
    "openai": b'{"object": "chat.completion", "choices": []}',
}
HTML = b"<!doctype html><html><body><h1>502 Bad Gateway</h1>\n\n<p>nginx</p></body></html>\n"


@dataclass(frozen=True)
class Row:
    """One fault and what llmcomm must make of it."""

    id: str
    #: the server's answer; a callable gets the wire kind; None: nothing listens at all
    script: Script | Callable[[Kind], Script] | None
    #: the error class raised (exactly), or None for success
    error: type[LLMException] | None
    #: the whole call ends within this many seconds
    within: float
    requests: int = 1
    #: success: the reply's text; failure after the first chunk: `partial_text`
    text: str | None = None
    match: str | None = None
    status: int | None = None
    retry_after: float | None = math.nan  # nan: not checked
    at_least: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    provider_options: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)


def raw(body: Callable[[Kind], bytes], content_type: str = "text/event-stream") -> Callable[[Kind], Script]:
    return lambda kind: Script(body_override=body(kind), content_type=content_type)


ROWS = [
    # -- connections --------------------------------------------------------------------
    Row("connection-refused", None, ProviderUnavailableError, 1.0, requests=0, match="cannot connect"),
    Row("reset-before-first-chunk", Script(chunks=("a", "b"), reset_after=0), ProviderUnavailableError, 1.0,
        match="broke mid-response"),
    Row("reset-after-first-chunk", Script(chunks=("a", "b", "c"), reset_after=2), StreamInterruptedError, 1.0,
        text="ab"),
    # -- stalls: the provider timeout bounds an attempt, the idle timeout a started stream ----
    Row("stall-before-headers", Script(delay_before_headers=30), ProviderUnavailableError, 1.5, at_least=0.45,
        provider_options={"timeout": 0.5}),
    Row("stall-before-headers-call-deadline", Script(delay_before_headers=30), LLMTimeoutError, 1.5, at_least=0.45,
        call={"timeout": 0.5}),
    Row("stall-before-first-content", Script(delay_before_first_token=30), ProviderUnavailableError, 1.5,
        at_least=0.45, provider_options={"timeout": 0.5}),
    Row("keep-alive-only", Script(delay_before_first_token=30, keepalive_interval=0.05), ProviderUnavailableError,
        1.5, at_least=0.45, provider_options={"timeout": 0.5}),
    Row("stall-mid-stream", Script(chunks=("a", "b", "c"), stall_after=2, keepalive_interval=0.05),
        StreamInterruptedError, 1.5, at_least=0.45, text="ab", match="no content for 0.5 s",
        settings={"stream_idle_timeout": 0.5}),
    Row("slow-drip", Script(tokens=5, token_delay=0.1), None, 2.0, at_least=0.35,
        text="".join(f"tok{i} " for i in range(5)), settings={"stream_idle_timeout": 0.5}),
    Row("drip-slower-than-idle-timeout", Script(chunks=("a", "b", "c"), token_delay=2.0), StreamInterruptedError,
        1.5, at_least=0.45, text="a", settings={"stream_idle_timeout": 0.5}),
    # -- statuses -------------------------------------------------------------------------
    Row("400", Script(status=400), InvalidRequestError, 1.0, status=400),
    Row("401", Script(status=401), AuthenticationError, 1.0, status=401),
    Row("403", Script(status=403), AuthenticationError, 1.0, status=403),
    Row("404", Script(status=404), InvalidRequestError, 1.0, status=404, match="model name"),
    Row("413", Script(status=413), InvalidRequestError, 1.0, status=413, match="shorten"),
    Row("429-retry-after", Script(status=429, retry_after=3), RateLimitError, 1.0, status=429, retry_after=3.0),
    Row("429-retry-after-ms", Script(status=429, retry_after_ms=1500), RateLimitError, 1.0, status=429,
        retry_after=1.5),
    Row("429-no-hint", Script(status=429), RateLimitError, 1.0, status=429, retry_after=None),
    Row("500", Script(status=500), ProviderUnavailableError, 1.0, status=500),
    Row("503", Script(status=503), ProviderUnavailableError, 1.0, status=503),
    Row("529", Script(status=529), ProviderUnavailableError, 1.0, status=529),
    Row("503-retried-once-honouring-retry-after-ms", Script(status=503, retry_after_ms=200), ProviderUnavailableError,
        1.5, requests=2, at_least=0.2, status=503, settings={"max_retries": 1}),
    Row("400-never-retried", Script(status=400), InvalidRequestError, 1.0, status=400, settings={"max_retries": 3}),
    Row("401-never-retried", Script(status=401), AuthenticationError, 1.0, status=401, settings={"max_retries": 3}),
    # -- what arrives inside a 200 --------------------------------------------------------
    Row("sse-error-before-content", Script(chunks=("a", "b"), sse_error_after=0), ProviderUnavailableError, 1.0,
        match="error event"),
    Row("sse-error-after-content", Script(chunks=("a", "b", "c"), sse_error_after=2), StreamInterruptedError, 1.0,
        text="ab", match="error event"),
    Row("malformed-json-before-content", Script(chunks=("a", "b"), malformed_after=0), ProviderUnavailableError,
        1.0, match="malformed"),
    Row("malformed-json-after-content", Script(chunks=("a", "b", "c"), malformed_after=2), StreamInterruptedError,
        1.0, text="ab", match="malformed"),
    Row("truncated-json-event", raw(lambda k: sse_body(k, ["a", "b"], terminal=False, tail=truncated_delta(k) + b"\n\n")),
        StreamInterruptedError, 1.0, text="ab", match="malformed"),
    Row("body-ends-inside-an-event", raw(lambda k: sse_body(k, ["a", "b"], terminal=False, tail=truncated_delta(k))),
        StreamInterruptedError, 1.0, text="ab", match="ended before"),
    Row("unknown-event-types-ignored", raw(lambda k: sse_body(k, ["un", "known"], unknown=True)), None, 1.0,
        text="unknown"),
    Row("missing-terminal-event", Script(chunks=("a", "b"), omit_terminal=True), StreamInterruptedError, 1.0,
        text="ab", match="ended before"),
    Row("empty-body", raw(lambda k: b""), ProviderUnavailableError, 1.0, match="ended before"),
    Row("complete-stream-without-content", Script(chunks=()), None, 1.0, text=""),
    Row("html-behind-200", raw(lambda k: HTML, "text/html"), ProviderUnavailableError, 1.0, match="ended before"),
    # A JSON body answering a stream request is read as the whole reply: this one has no reply in it.
    Row("json-behind-200", raw(lambda k: EMPTY_REPLY[k], "application/json"),
        ProviderUnavailableError, 1.0, match="neither content nor a finish reason"),
    Row("multibyte-split-across-packets", Script(text=MULTIBYTE, split_writes=True), None, 2.0, text=MULTIBYTE),
]  # fmt: skip


@pytest.fixture(params=["anthropic", "openai"])
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_fault(fake: FakeServer, kind: Kind, row: Row, debug_log: LogCapture) -> None:
    options: dict[str, Any] = {"api_key": CANARIES[kind], **row.provider_options}
    if row.script is None:
        base_url = refused_url(kind)
    else:
        fake.default = row.script(kind) if callable(row.script) else row.script
        base_url = fake.anthropic_base_url if kind == "anthropic" else fake.openai_base_url
    settings = {"retry_base_delay": 0.01, **row.settings}
    received: list[str] = []
    error: LLMException | None = None
    async with LLMCommunication(
        config(ProviderConfig(name=kind, kind=kind, base_url=base_url, **options), **settings)
    ) as llm:
        started = time.monotonic()
        try:
            async with llm.generate_stream("hi", **row.call) as stream:
                async for chunk in stream:
                    received.append(chunk.text)
        except LLMException as exc:
            error = exc
        elapsed = time.monotonic() - started

    assert row.at_least <= elapsed < row.within, f"took {elapsed:.3f} s"
    assert fake.request_count == row.requests
    if row.error is None:
        assert error is None, f"unexpected {error!r}"
        assert stream.response is not None
        assert stream.response.content == "".join(received) == row.text
        return
    assert type(error) is row.error, f"expected {row.error.__name__}, got {error!r}"
    assert error.provider == (None if row.error is LLMTimeoutError else kind)  # a call deadline has no culprit
    assert error.request_id is not None
    if row.match is not None:
        assert row.match in str(error)
    if row.status is not None:
        assert error.status_code == row.status
    if not (isinstance(row.retry_after, float) and math.isnan(row.retry_after)):
        assert isinstance(error, RateLimitError)
        assert error.retry_after == row.retry_after
    if row.error is StreamInterruptedError:
        assert isinstance(error, StreamInterruptedError)
        assert error.partial_text == "".join(received) == row.text
    else:
        assert received == []  # nothing reached the caller before the failure
    leaked = find_canaries(error_texts(error))
    assert not leaked, "\n".join(leaked)
