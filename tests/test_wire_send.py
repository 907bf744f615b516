"""Sending without the SDK (`providers._send`), over real HTTP to `llmcomm.testing`.

The reply bytes, and every failure's error (type, message, status, retryability,
Retry-After), are what the SDK path gives for the same script; what only the direct
path does (`x-should-retry`, `provider_request_id`, closing on every path) is pinned too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any, Literal

import anyio
import httpx2
import orjson
import pytest

from llmcomm import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LLMException,
    ProviderConfig,
    ProviderUnavailableError,
    RateLimitError,
)
from llmcomm._wire._requests import encode_body, endpoint
from llmcomm._wire._status import HTTPStatusFailure, error_for_response
from llmcomm.providers._send import send
from llmcomm.testing import FakeServer, Script
from tests.sdk_reference import map_sdk_errors

from .helpers import KEY, provider, refused_url
from .test_wire_parity import body_for, send_direct, send_with_sdk

Kind = Literal["anthropic", "openai"]
KINDS = [pytest.param("anthropic", id="anthropic"), pytest.param("openai", id="openai")]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


def _normalised(body: bytes) -> bytes:
    # Ids count requests and `created` is the clock: the rest must be byte-equal.
    return re.sub(rb'"created":\d+', b'"created":0', re.sub(rb"fake\d+", b"fake", body))


async def _failure_via_sdk(config: ProviderConfig, body: Mapping[str, Any]) -> LLMException:
    import anthropic
    import openai

    sdk = anthropic if config.kind == "anthropic" else openai
    async with httpx2.AsyncClient() as http:
        with pytest.raises(LLMException) as info, map_sdk_errors(sdk, config.name, config, str(body["model"]), "x"):
            await send_with_sdk(config, http, body)
    return info.value


async def _failure_direct(config: ProviderConfig, body: Mapping[str, Any]) -> LLMException:
    async with httpx2.AsyncClient() as http:
        with pytest.raises(LLMException) as info:
            await send_direct(config, http, body)
    return info.value


def _shape(error: LLMException) -> tuple[object, ...]:
    return type(error), str(error), error.status_code, error.retryable, error.retry_after


@pytest.mark.anyio
async def test_reply_bytes_are_the_fakes(server: FakeServer, kind: Kind) -> None:
    server.default = Script(text="Hello there, wire.", input_tokens=3)
    config = provider(server, kind)
    body = body_for(config, "hi", {})
    async with httpx2.AsyncClient() as http:
        direct = await send_direct(config, http, body)
        reference = await send_with_sdk(config, http, body)
    assert b"wire." in direct
    assert _normalised(direct) == _normalised(reference)


SCRIPTS = [
    pytest.param(Script(status=400), InvalidRequestError, id="400"),
    pytest.param(Script(status=401), AuthenticationError, id="401"),
    pytest.param(Script(status=403), AuthenticationError, id="403"),
    pytest.param(Script(status=404), InvalidRequestError, id="404"),
    pytest.param(Script(status=408), ProviderUnavailableError, id="408"),
    pytest.param(Script(status=409), ProviderUnavailableError, id="409"),
    pytest.param(Script(status=413), InvalidRequestError, id="413"),
    pytest.param(Script(status=422, error_message="bad field"), InvalidRequestError, id="422"),
    pytest.param(Script(status=429, retry_after=7), RateLimitError, id="429-retry-after"),
    pytest.param(Script(status=429, retry_after=7, retry_after_ms=1500), RateLimitError, id="429-retry-after-ms"),
    pytest.param(Script(status=429, error_code="insufficient_quota"), RateLimitError, id="429-quota"),
    pytest.param(Script(status=500), ProviderUnavailableError, id="500"),
    pytest.param(Script(status=503, retry_after=2), ProviderUnavailableError, id="503"),
    pytest.param(Script(status=529), ProviderUnavailableError, id="529"),
    pytest.param(
        Script(status=502, body_override=b"<html>bad gateway</html>", content_type="text/html"),
        ProviderUnavailableError,
        id="502-html",
    ),
    pytest.param(Script(chunks=("a", "b"), reset_after=1), ProviderUnavailableError, id="reset-mid-body"),
    pytest.param(Script(chunks=("a",), reset_after=0), ProviderUnavailableError, id="reset-before-content"),
]


@pytest.mark.parametrize(("script", "expected"), SCRIPTS)
@pytest.mark.anyio
async def test_failures_map_as_on_the_sdk_path(
    server: FakeServer, kind: Kind, script: Script, expected: type[LLMException]
) -> None:
    server.default = script
    config = provider(server, kind)
    body = body_for(config, "hi", {})
    direct = await _failure_direct(config, body)
    reference = await _failure_via_sdk(config, body)
    assert type(direct) is expected
    assert _shape(direct) == _shape(reference)
    assert KEY not in repr(direct)


@pytest.mark.anyio
async def test_connection_refused_maps_as_on_the_sdk_path(kind: Kind) -> None:
    config = ProviderConfig(name=kind, kind=kind, api_key=KEY, base_url=refused_url(kind))
    body = body_for(config, "hi", {})
    direct = await _failure_direct(config, body)
    assert _shape(direct) == _shape(await _failure_via_sdk(config, body))
    assert "cannot connect" in str(direct)
    assert isinstance(direct.__cause__, httpx2.ConnectError)


@pytest.mark.anyio
async def test_reset_before_the_status_line(server: FakeServer, kind: Kind) -> None:
    server.default = Script(reset_after=0)
    config = provider(server, kind)
    body = {**body_for(config, "hi", {}), "stream": False}  # a reply that is reset before any byte
    direct = await _failure_direct(config, body)
    assert type(direct) is ProviderUnavailableError
    assert direct.retryable
    assert _shape(direct) == _shape(await _failure_via_sdk(config, body))


@pytest.mark.anyio
async def test_provider_request_id_and_the_status_cause(server: FakeServer, kind: Kind) -> None:
    server.default = Script(status=529)
    error = await _failure_direct(provider(server, kind), body_for(provider(server, kind), "hi", {}))
    assert error.provider_request_id is not None and error.provider_request_id.startswith("req_fake")
    assert isinstance(error.__cause__, HTTPStatusFailure)
    assert error.__cause__.status == 529


@pytest.mark.parametrize(
    ("script", "retryable"),
    [
        pytest.param(Script(status=500, headers=(("x-should-retry", "false"),)), False, id="500-says-no"),
        pytest.param(Script(status=400, headers=(("x-should-retry", "true"),)), True, id="400-says-yes"),
        pytest.param(Script(status=429, headers=(("x-should-retry", "maybe"),)), True, id="unknown-value-ignored"),
    ],
)
@pytest.mark.anyio
async def test_x_should_retry_decides_retryability(
    server: FakeServer, kind: Kind, script: Script, retryable: bool
) -> None:
    server.default = script
    config = provider(server, kind)
    error = await _failure_direct(config, body_for(config, "hi", {}))
    assert error.retryable is retryable
    assert error.status_code == script.status


@pytest.mark.anyio
async def test_the_key_is_masked_in_message_and_cause(server: FakeServer, kind: Kind) -> None:
    server.default = Script(status=401, error_message=f"invalid x-api-key {KEY} given")
    config = provider(server, kind)
    error = await _failure_direct(config, body_for(config, "hi", {}))
    assert isinstance(error, AuthenticationError)
    assert "invalid x-api-key" in str(error)
    assert f"{kind.upper()}_API_KEY" in str(error)
    cause = error.__cause__
    assert isinstance(cause, HTTPStatusFailure)
    for text in (str(error), repr(error), str(cause), cause.body, repr(cause.args)):
        assert KEY not in text


@pytest.mark.anyio
async def test_a_rejected_stream_options_is_visible_in_the_cause(server: FakeServer) -> None:
    server.default = Script(reject_stream_options=True)
    config = provider(server, "openai")
    body = body_for(config, "hi", {})
    assert "stream_options" in body
    error = await _failure_direct(config, body)
    assert isinstance(error, InvalidRequestError)
    assert isinstance(error.__cause__, HTTPStatusFailure)
    assert "stream_options" in error.__cause__.body


@pytest.mark.anyio
async def test_leaving_early_closes_the_connection(server: FakeServer, kind: Kind) -> None:
    server.default = Script(tokens=1000, token_delay=0.01)
    config = provider(server, kind)
    async with httpx2.AsyncClient() as http:
        request = encode_body(body_for(config, "hi", {}))
        async with (
            send(http, endpoint(config), request, config=config, model="m") as r,
            aclosing(r.aiter_bytes()) as body,
        ):
            async for _ in body:
                break
        await server.wait_closed(server.requests[-1], timeout=2.0)
    assert server.requests[-1].finished_at is None  # the reply was cut, not read to its end


@pytest.mark.anyio
async def test_cancellation_closes_the_connection(server: FakeServer, kind: Kind) -> None:
    server.default = Script(chunks=("a", "b"), stall_after=1)
    config = provider(server, kind)
    async with httpx2.AsyncClient() as http:
        with anyio.move_on_after(0.3) as scope:
            async with send(
                http, endpoint(config), encode_body(body_for(config, "hi", {})), config=config, model="m"
            ) as r:
                await r.aread()
        assert scope.cancelled_caught
        await server.wait_closed(server.requests[-1], timeout=2.0)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(Script(chunks=("a", "b"), stall_after=1), id="stall-mid-body"),
        pytest.param(Script(delay_before_headers=5), id="no-head"),
    ],
)
@pytest.mark.anyio
async def test_silence_beyond_the_timeout_is_typed(server: FakeServer, kind: Kind, script: Script) -> None:
    server.default = script
    config = provider(server, kind, timeout=0.3)
    body = encode_body(body_for(config, "hi", {}))
    started = time.monotonic()
    async with httpx2.AsyncClient() as http:
        with pytest.raises(ProviderUnavailableError, match="sent nothing") as info:
            async with send(http, endpoint(config), body, config=config, model="m", timeout=httpx2.Timeout(0.3)) as r:
                await r.aread()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert info.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"data: {not json", b"\xff\xfe"], ids=["json", "utf8"])
async def test_a_reply_the_decoder_cannot_read_is_typed(server: FakeServer, kind: Kind, body: bytes) -> None:
    server.default = Script(body_override=body, content_type="text/event-stream")
    config = provider(server, kind)
    content = encode_body(body_for(config, "hi", {}))
    async with httpx2.AsyncClient() as http:
        with pytest.raises(ProviderUnavailableError, match="did not speak the Messages API") as info:
            async with send(http, endpoint(config), content, config=config, model="m", wire="the Messages API") as r:
                orjson.loads((await r.aread()).removeprefix(b"data: "))
    assert not info.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("base_url", ["http://[::1", "http://a\x00b"])
async def test_a_base_url_that_is_no_url_is_a_configuration_error(base_url: str) -> None:
    config = ProviderConfig(name="p", kind="openai", api_key=KEY, base_url=base_url)
    async with httpx2.AsyncClient() as http:
        with pytest.raises(ConfigurationError, match="not a valid URL"):
            async with send(http, endpoint(config), b"{}", config=config, model="m"):
                pass


# -- the status mapping, without I/O ---------------------------------------------------------


def _map(status: int, body: bytes, headers: Mapping[str, str] | None = None, reason: str | None = None) -> LLMException:
    return error_for_response(
        status, headers or {}, body, provider="p", secret=KEY, key_hint="X_API_KEY", model="m", reason=reason
    )


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}', "too big"),
        (400, b'{"error":{"message":"bad param","type":"invalid_request_error","param":"x","code":null}}', "bad param"),
        (400, b'{"error":"bare string from a compatible server"}', "bare string"),
        (400, b'["not", "an", "object"]', "Bad Request"),
        (500, b"<html>oops</html>", "Internal Server Error"),
        (529, b"", "overloaded"),
        (599, b"", "HTTP 599"),
    ],
)
def test_error_detail_comes_from_the_body(status: int, body: bytes, detail: str) -> None:
    assert detail in str(_map(status, body))


def test_a_redirect_says_where_and_masks_the_key() -> None:
    error = _map(307, b"", {"location": f"https://elsewhere.example/v1?key={KEY}"})
    assert isinstance(error, InvalidRequestError)
    assert "elsewhere.example" in str(error) and "base_url" in str(error)
    assert KEY not in str(error)


def test_retry_after_as_an_http_date() -> None:
    error = _map(429, b"{}", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 0.0  # a date in the past: try now


def test_request_id_header_names() -> None:
    assert _map(500, b"", {"request-id": "req_a"}).provider_request_id == "req_a"
    assert _map(500, b"", {"x-request-id": "req_b"}).provider_request_id == "req_b"
    assert _map(500, b"", {}).provider_request_id is None
