"""Logging pieces without I/O: redaction, request-id filter, JSON and legacy formats, hook runner edges."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from llmcomm import Request
from llmcomm._observability import (
    HookEvent,
    Hooks,
    JSONFormatter,
    LegacyFormatter,
    RedactingFilter,
    RequestIdFilter,
    _hooks,
    current_request_id,
    disable_legacy_log_file,
    enable_legacy_log_file,
    get_logger,
    request_id_scope,
    run_with_request_id,
)
from llmcomm._observability._logging import content_logging_enabled, redact

CANARY = "canary-secret-0123456789"


def fail() -> None:
    raise ValueError(f"boom with {CANARY}")


def record(msg: str, *args: Any, name: str = "llmcomm", exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            fail()
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, exc_info)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("x-api-key: sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnop"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature", "eyJhbGciOiJIUzI1NiJ9"),
        ("{'authorization': 'Bearer tok_0123456789abcdef'}", "tok_0123456789"),
        ("[(b'x-api-key', b'k-0123456789abcdefghij')]", "k-0123456789abcdef"),
        ('{"api_key": "plain-key-0123456789"}', "plain-key-0123"),
        ("the key is sk-proj-0123456789abcdefghijklmnop ok", "sk-proj-0123456789abcdef"),
    ],
)
def test_redact_patterns(text: str, leak: str) -> None:
    clean = redact(text)
    assert leak not in clean
    assert clean != text


def test_redact_keeps_plain_text_and_masked_values() -> None:
    for text in ("authentication failed: check ANTHROPIC_API_KEY", "api_key='sk-…abcd'", "a desk-top of words"):
        assert redact(text) == text


def test_redacting_filter_masks_message_args_extras_and_tracebacks() -> None:
    f = RedactingFilter([CANARY], from_env=False)
    rec = record("key %s in %s", CANARY, "args", exc=True, detail=f"extra {CANARY}", count=3)
    assert f.filter(rec)
    assert CANARY not in rec.getMessage()
    assert rec.getMessage() == "key can…6789 in args"
    assert CANARY not in rec.detail  # type: ignore[attr-defined]
    assert rec.exc_text is not None and CANARY not in rec.exc_text
    formatted = logging.Formatter().format(rec)
    assert CANARY not in formatted
    untouched = record("nothing %s", "here")
    f.filter(untouched)
    assert untouched.args == ("here",)  # a clean record keeps its arguments


def test_redacting_filter_reads_known_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    rec = record("sending %s", CANARY)
    RedactingFilter().filter(rec)
    assert CANARY not in rec.getMessage()
    f = RedactingFilter(from_env=False)
    f.add_secret("another-secret-value")
    rec = record("another-secret-value")
    f.filter(rec)
    assert "another-secret-value" not in rec.getMessage()


def test_request_id_filter() -> None:
    f = RequestIdFilter(default="-")
    rec = record("x")
    f.filter(rec)
    assert rec.request_id == "-"  # type: ignore[attr-defined]
    with request_id_scope("rid-7"):
        rec = record("x")
        f.filter(rec)
        assert rec.request_id == "rid-7"  # type: ignore[attr-defined]
        kept = record("x", request_id="given")
        f.filter(kept)
        assert kept.request_id == "given"  # type: ignore[attr-defined]
    assert current_request_id() is None


def test_run_with_request_id_leaves_the_caller_alone() -> None:
    assert run_with_request_id("inner", current_request_id) == "inner"
    assert current_request_id() is None


def test_json_formatter() -> None:
    formatter = JSONFormatter(static_fields={"service": "mrc"})
    rec = record("done %s", "ok", request_id="rid-1", provider="anthropic", tokens=5, exc=True, obj=object())
    data = orjson.loads(formatter.format(rec))
    assert data["message"] == "done ok"
    assert data["level"] == "INFO"
    assert data["logger"] == "llmcomm"
    assert data["request_id"] == "rid-1"
    assert data["provider"] == "anthropic"
    assert data["tokens"] == 5
    assert data["service"] == "mrc"
    assert "ValueError" in data["exc_info"]
    assert data["time"].endswith("+00:00")
    assert isinstance(data["obj"], str)


def test_legacy_formatter() -> None:
    formatter = LegacyFormatter()
    line = formatter.format(record("started", request_id="LLM-1-abcd", layer="service"))
    assert line.endswith(" - INFO - [LLM-REQ-ID: LLM-1-abcd] SERVICE_LAYER - started")
    line = formatter.format(record("plain", name="llmcomm.providers.anthropic"))
    assert line.endswith("[LLM-REQ-ID: -] PROVIDER_LAYER - plain")


def test_legacy_log_file_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    handler = enable_legacy_log_file(environ={})
    try:
        assert handler is not None
        assert enable_legacy_log_file(environ={}) is handler  # installed once
        assert not (tmp_path / "logs" / "llm_requests.log").exists()  # nothing written yet
        with request_id_scope("LLM-1700000000000-0badc0de"):
            logging.getLogger("llmcomm").info("hello %s", CANARY, extra={"layer": "SERVICE"})
        handler.flush()
    finally:
        disable_legacy_log_file()
    text = (tmp_path / "logs" / "llm_requests.log").read_text(encoding="utf-8")
    assert "[LLM-REQ-ID: LLM-1700000000000-0badc0de] SERVICE_LAYER - hello" in text
    assert not any(type(h).__name__ == "_LegacyFileHandler" for h in logging.getLogger("llmcomm").handlers)


def test_importing_llmcomm_adds_only_a_null_handler() -> None:
    code = (
        "import logging, llmcomm\n"
        "log = logging.getLogger('llmcomm')\n"
        "assert [type(h) for h in log.handlers] == [logging.NullHandler], log.handlers\n"
        "assert log.level == logging.NOTSET\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_get_logger_adds_the_request_id_filter_once() -> None:
    log = get_logger("llmcomm.test_child")
    assert get_logger("llmcomm.test_child") is log
    assert sum(isinstance(f, RequestIdFilter) for f in log.filters) == 1


def test_content_logging_switch() -> None:
    assert content_logging_enabled({"LLMCOMM_LOG_CONTENT": "1"})
    assert content_logging_enabled({"LLMCOMM_LOG_CONTENT": "true"})
    assert not content_logging_enabled({"LLMCOMM_LOG_CONTENT": "0"})
    assert not content_logging_enabled({})


def test_hook_registration() -> None:
    hooks = Hooks()
    assert repr(hooks) == "<Hooks none>"

    def fn(event: HookEvent) -> None:
        pass

    assert hooks.on_error(fn) is fn
    assert hooks.functions("error") == (fn,)
    assert "error=1" in repr(hooks)
    hooks.remove(fn)
    assert hooks.functions("error") == ()
    with pytest.raises(TypeError):
        hooks.on_error(42)  # type: ignore[type-var]


def event() -> HookEvent:
    from llmcomm import Message

    return HookEvent("request_end", "rid", Request(messages=(Message("user", "hi"),), request_id="rid"))


def test_async_hook_on_a_closed_runner_is_dropped_cleanly() -> None:
    ran: list[str] = []

    async def hook(e: HookEvent) -> None:
        ran.append(e.kind)

    runner = _hooks.HookRunner(Hooks())
    runner.dispatch((hook,), event())  # never opened: the coroutine is closed, not leaked
    assert ran == []


@pytest.mark.anyio
async def test_full_hook_queue_drops_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_hooks, "QUEUE_SIZE", 2)
    monkeypatch.setattr(_hooks, "CONCURRENCY", 1)
    gate = anyio.Event()
    ran: list[str] = []

    async def hook(e: HookEvent) -> None:
        await gate.wait()
        ran.append(e.kind)

    runner = _hooks.HookRunner(Hooks())
    with caplog.at_level(logging.WARNING, logger="llmcomm.hooks"), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            runner.open(tg)
            runner.dispatch((hook,), event())
            await anyio.sleep(0.05)  # the first run holds the only slot
            for _ in range(5):
                runner.dispatch((hook,), event())
            gate.set()
            await runner.aclose(grace=2.0)
    # One running, one taken by the dispatcher waiting for a slot, two queued: two dropped.
    assert len(ran) == 4
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2
