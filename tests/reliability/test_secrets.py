"""Secrets: a canary key per provider, watched everywhere a key could escape to.

The fault matrices (`test_fault_matrix.py`, `test_cli_faults.py`) run every fault
with DEBUG logging on and these canaries configured, and check each log record and
each raised error. Here: the representations of every configuration and client
object, a failure that goes through all three providers at once, and proof that
the watch is not blind (the keys did reach the wire, the loggers did log).
"""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import anyio
import pytest

from llmcomm import (
    AllProvidersFailedError,
    Configuration,
    LLMCommunication,
    ProviderConfig,
    SyncLLMCommunication,
)
from llmcomm._secrets import mask_secret
from llmcomm.testing import FakeServer, Script

from ..helpers import config
from ._support import CANARIES, LogCapture, error_texts, find_canaries

pytestmark = pytest.mark.anyio

FAKE_CLI = Path(__file__).parent.parent / "claude_cli" / "fake_claude.py"


def every_kind(server: FakeServer, record: Path, scenario: str = "success") -> list[ProviderConfig]:
    mode = FAKE_CLI.stat().st_mode
    if not mode & stat.S_IXUSR:
        FAKE_CLI.chmod(mode | stat.S_IXUSR)
    headers = {"x-trace-token": "not a secret"}
    return [
        ProviderConfig(
            name="anthropic",
            kind="anthropic",
            model="m-anthropic",
            base_url=server.anthropic_base_url,
            api_key=CANARIES["anthropic"],
            headers=headers,
        ),
        ProviderConfig(
            name="openai", kind="openai", model="m-openai", base_url=server.openai_base_url, api_key=CANARIES["openai"]
        ),
        ProviderConfig(
            name="cli",
            kind="claude_cli",
            cli_path=str(FAKE_CLI),
            base_url=server.anthropic_base_url,
            api_key=CANARIES["claude_cli"],
            env={
                "FAKE_CLAUDE_SCENARIO": scenario,
                "FAKE_CLAUDE_STATUS": "401",
                "FAKE_CLAUDE_RECORD": str(record),
                "CLAUDE_CODE_OAUTH_TOKEN": CANARIES["claude_cli"],
            },
        ),
    ]


async def test_no_representation_shows_a_key(fake: FakeServer, tmp_path: Path) -> None:
    providers = every_kind(fake, tmp_path / "record.json")
    cfg = config(*providers)
    from_env = Configuration.from_env(
        environ={
            "ANTHROPIC_API_KEY": CANARIES["anthropic"],
            "OPENAI_API_KEY": CANARIES["openai"],
            "CLAUDE_CLI_PATH": str(FAKE_CLI),
        }
    )
    shown = [repr(cfg), str(cfg), repr(from_env), str(from_env), f"{providers}", *map(str, providers)]
    llm = LLMCommunication(cfg)
    shown.append(repr(llm))
    async with llm:
        shown += [repr(llm), repr(llm.manager), *(repr(p) for p in llm.manager.providers)]
        async with llm.generate_stream("hi", provider="anthropic") as stream:
            shown.append(repr(stream))
            shown += [chunk.text async for chunk in stream]
        shown += [repr(stream), repr(stream.response)]
    sync = SyncLLMCommunication(cfg)
    shown.append(repr(sync))
    sync.close()
    leaked = find_canaries(("repr", text) for text in shown)
    assert not leaked, "\n".join(leaked)


async def test_a_failure_through_every_provider_shows_no_key(
    fake: FakeServer, tmp_path: Path, debug_log: LogCapture
) -> None:
    """401 from both HTTP providers, and the CLI echoing its key into its error result: nothing shows a key."""
    record = tmp_path / "record.json"
    fake.default = Script(status=401, error_message="invalid x-api-key")
    async with LLMCommunication(config(*every_kind(fake, record, "api_error"))) as llm:
        with pytest.raises(AllProvidersFailedError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
    assert [e.status_code for e in caught.value.errors] == [401, 401, 401]
    leaked = find_canaries(error_texts(caught.value))
    assert not leaked, "\n".join(leaked)
    # The watch is not blind: the keys went where they belong, and every layer logged at DEBUG.
    sent = {r.model: r.headers.get("x-api-key", "") + r.headers.get("authorization", "") for r in fake.requests}
    assert CANARIES["anthropic"] in sent["m-anthropic"]
    assert sent["m-openai"] == f"Bearer {CANARIES['openai']}"
    seen = json.loads(record.read_text(encoding="utf-8"))
    assert seen["env"]["ANTHROPIC_API_KEY"] == CANARIES["claude_cli"]
    assert not any(CANARIES["claude_cli"] in part for part in seen["cmdline"])
    # The SDKs are not on the request path any more: llmcomm and the HTTP stack log it.
    assert {"llmcomm", "httpcore2"} <= debug_log.names()
    assert not {"anthropic", "openai"} & debug_log.names()


def echoing(server: FakeServer) -> Configuration:
    """Both HTTP providers against a server that echoes each one's key into its 401 body."""
    for kind in ("anthropic", "openai"):
        server.route(model=f"m-{kind}", script=Script(status=401, error_message=f"invalid key {CANARIES[kind]}"))
    return config(*every_kind(server, Path("unused"))[:2])


async def test_a_key_echoed_by_the_server_is_masked_in_llmcomm_messages(fake: FakeServer) -> None:
    async with LLMCommunication(echoing(fake)) as llm:
        with pytest.raises(AllProvidersFailedError) as caught:
            await llm.generate_text("hi")
    own = [caught.value, *caught.value.errors]
    # The one masking rule: first 3 and last 4 characters, as in reprs and log lines.
    assert [mask_secret(CANARIES[e.provider or ""]) in str(e) for e in caught.value.errors] == [True, True]
    leaked = find_canaries((type(e).__name__, text) for e in own for text in (str(e), repr(e)))
    assert not leaked, "\n".join(leaked)


async def test_a_key_echoed_by_the_server_is_masked_in_the_cause_chain(fake: FakeServer) -> None:
    async with LLMCommunication(echoing(fake)) as llm:
        with pytest.raises(AllProvidersFailedError) as caught:
            await llm.generate_text("hi")
    leaked = find_canaries(error_texts(caught.value))
    assert not leaked, "\n".join(leaked)


PROXY_PASSWORD = "CANARY-proxy-password-51f0e2"


async def test_base_url_credentials_show_nowhere_but_on_the_wire(
    fake: FakeServer, tmp_path: Path, debug_log: LogCapture
) -> None:
    """Credentials in every provider's base URL: absent from errors, reprs, log records and the CLI's argv."""
    record = tmp_path / "record.json"
    fake.default = Script(status=401, error_message="invalid x-api-key")
    providers = [
        dataclasses.replace(p, base_url=(p.base_url or "").replace("http://", f"http://user:{PROXY_PASSWORD}@"))
        for p in every_kind(fake, record, "api_error")
    ]
    cfg = config(*providers)
    async with LLMCommunication(cfg) as llm:
        with pytest.raises(AllProvidersFailedError) as caught, anyio.fail_after(10):
            await llm.generate_text("hi")
        shown = [repr(cfg), *map(repr, providers), *(repr(p) for p in llm.manager.providers)]
    watched = [PROXY_PASSWORD, *CANARIES.values()]
    leaked = find_canaries([*error_texts(caught.value), *(("repr", text) for text in shown)], watched)
    leaked += find_canaries(debug_log.texts(), watched)
    assert not leaked, "\n".join(leaked)
    seen = json.loads(record.read_text(encoding="utf-8"))
    assert PROXY_PASSWORD in seen["env"]["ANTHROPIC_BASE_URL"]  # the child got it, in its environment
    assert not any(PROXY_PASSWORD in part for part in seen["cmdline"])
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in fake.requests)
