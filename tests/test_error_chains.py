"""What a caller can reach from an error: llmcomm's own errors and plain text, never a third-party
exception object (an httpx2 error keeps the request, Authorization header and all)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from llmcomm import Configuration, LLMCommunication, LLMException, ProviderConfig
from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.anyio

KEY = "sk-test-canary-0123456789abcdef"
FOREIGN = ("httpx2", "httpcore2", "h11", "h2", "anthropic", "openai", "anyio", "coredis")


def chain(error: BaseException) -> Iterator[BaseException]:
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "errors", []) or [])


def foreign(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in FOREIGN


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://user:s3cret-pass@127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("fault", ["refused", "reset", "reset-mid-stream", "status-401", "stall"])
async def test_no_third_party_exception_is_reachable_from_a_failure(server: FakeServer, kind: str, fault: str) -> None:
    base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    if fault == "refused":
        base_url = refused_url() + ("/v1" if kind == "openai" else "")
    server.default = {
        "refused": Script(),
        "reset": Script(reset_after=0),
        "reset-mid-stream": Script(tokens=5, reset_after=2),
        "status-401": Script(status=401),
        "stall": Script(delay_before_headers=5.0),
    }[fault]
    entry = ProviderConfig(name=kind, kind=kind, api_key=KEY, base_url=base_url, timeout=0.5)  # type: ignore[arg-type]
    async with LLMCommunication(Configuration(providers=[entry], max_retries=0)) as llm:
        with pytest.raises(LLMException) as caught:
            await llm.generate_text("hi")
    reachable = list(chain(caught.value))
    assert not [type(e) for e in reachable if foreign(e)]
    for error in reachable:
        text = f"{error!r} {error}" + repr(vars(error) if hasattr(error, "__dict__") else "")
        assert KEY not in text
        assert "s3cret-pass" not in text
