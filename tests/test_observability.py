"""Request ids, log lines, metrics and hooks of real calls against the fake provider server."""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from llmcomm import (
    AllProvidersFailedError,
    AuthenticationError,
    Configuration,
    InvalidRequestError,
    LLMCommunication,
    ProviderConfig,
    Request,
    StreamChunk,
)
from llmcomm._observability import (
    HookEvent,
    Hooks,
    Metrics,
    RedactingFilter,
    RequestIdFilter,
    current_request_id,
    disable_legacy_log_file,
    enable_legacy_log_file,
)
from llmcomm._observability._event import CallState
from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"
REQUEST_ID = r"LLM-\d{13}-[0-9a-f]{8}"


class Capture(logging.Handler):
    """Keeps every record, and the monotonic time it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.emitted_at: list[float] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.emitted_at.append(time.monotonic())
        self.records.append(record)

    def events(self, event: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "event", None) == event]


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    log = logging.getLogger("llmcomm")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def provider(server: FakeServer, name: str = "claude", kind: str = "anthropic") -> ProviderConfig:
    url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    return ProviderConfig(name=name, kind=kind, model=f"{name}-model", api_key=KEY, base_url=url)  # type: ignore[arg-type]


def config(*providers: ProviderConfig, **options: Any) -> Configuration:
    return Configuration(providers=providers, **options)


class Probe:
    """A provider of the test's own that logs from inside the call and notes the context's request id."""

    kind = "probe"

    def __init__(self, name: str = "probe", delay: float = 0.0) -> None:
        self.name = name
        self.model = "probe-model"
        self.delay = delay
        self.seen: list[tuple[str, str | None]] = []
        self.log = logging.getLogger("llmcomm.providers.probe")

    async def stream(self, request: Request) -> AsyncIterator[StreamChunk]:
        self.seen.append((request.request_id, current_request_id()))
        self.log.debug("probe serving %s", request.request_id)
        await anyio.sleep(self.delay)
        yield StreamChunk("hello", self.name, self.model)
        yield StreamChunk("", self.name, self.model, finish_reason="stop")

    async def aclose(self) -> None:
        pass


# -- request ids ------------------------------------------------------------------------


async def test_request_id_on_response_error_and_every_log_line(capture: Capture) -> None:
    async with FakeServer() as server, LLMCommunication(config(provider(server))) as llm:
        response = await llm.generate_response("hi")
        server.enqueue(Script(status=401))
        with pytest.raises(AuthenticationError) as caught:
            await llm.generate_response("hi", request_id="my-own-id")
        with pytest.raises(InvalidRequestError) as refused:
            await llm.generate_response("")
        with pytest.raises(InvalidRequestError) as refused_stream:
            llm.generate_stream("", request_id="bad-input-id")
    assert response.request_id is not None
    assert re.fullmatch(REQUEST_ID, response.request_id)
    assert refused.value.request_id is not None
    assert re.fullmatch(REQUEST_ID, refused.value.request_id)
    assert refused_stream.value.request_id == "bad-input-id"
    assert caught.value.request_id == "my-own-id"
    ours = [r for r in capture.records if r.name.startswith("llmcomm")]
    assert ours
    assert {r.request_id for r in ours} == {response.request_id, "my-own-id"}  # type: ignore[attr-defined]
    assert current_request_id() is None


async def test_concurrent_calls_never_mix_request_ids(capture: Capture) -> None:
    probe = Probe(delay=0.01)
    results: dict[str, str | None] = {}
    async with LLMCommunication(config(probe)) as llm:  # type: ignore[arg-type]

        async def one(i: int) -> None:
            response = await llm.generate_response("hi", request_id=f"req-{i}")
            results[f"req-{i}"] = response.request_id

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
    assert results == {f"req-{i}": f"req-{i}" for i in range(50)}
    # Inside the provider (a task of the call's race), the context carries the call's own id.
    assert sorted(probe.seen) == sorted((f"req-{i}", f"req-{i}") for i in range(50))
    probe_lines = [r for r in capture.records if r.name == "llmcomm.providers.probe"]
    assert len(probe_lines) == 50
    for record in probe_lines:
        assert record.request_id == record.args[0]  # type: ignore[attr-defined,index]


async def test_caller_task_sees_the_request_id_during_generate_response(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmcomm._routing import Call
    from llmcomm._types import ChunkBatch

    in_caller: list[str | None] = []
    elsewhere: list[str | None] = []
    original = Call.next_batch

    async def spy(self: Call) -> ChunkBatch | None:
        in_caller.append(current_request_id())  # runs in the caller's task
        return await original(self)

    monkeypatch.setattr(Call, "next_batch", spy)
    async with LLMCommunication(config(Probe(delay=0.2))) as llm:  # type: ignore[arg-type]

        async def watch() -> None:
            await anyio.sleep(0.1)
            elsewhere.append(current_request_id())  # another task: never the call's id

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            response = await llm.generate_response("hi", request_id="rid-1")
    assert response.request_id == "rid-1"
    assert in_caller and set(in_caller) == {"rid-1"}
    assert elsewhere == [None]
    assert current_request_id() is None


# -- log lines -----------------------------------------------------------------------------


async def test_one_info_line_per_finished_request_with_structured_fields(capture: Capture) -> None:
    async with FakeServer() as server, LLMCommunication(config(provider(server))) as llm:
        server.default = Script(text="a b c", input_tokens=4, output_tokens=3)
        for _ in range(3):
            await llm.generate_text("hi")
    lines = [r for r in capture.records if r.levelno == logging.INFO and r.name == "llmcomm"]
    assert len(lines) == 3
    for record in lines:
        fields = record.__dict__
        assert fields["event"] == "request_end"
        assert fields["outcome"] == "success"
        assert fields["provider"] == "claude"
        assert fields["model"] == "claude-model"
        assert fields["attempt"] == 1
        assert fields["prompt_tokens"] == 4
        assert fields["completion_tokens"] == 3
        assert fields["time_to_first_token"] > 0
        assert fields["response_time"] >= fields["time_to_first_token"]
        assert record.request_id in record.getMessage()  # type: ignore[attr-defined]


async def test_retry_and_fallback_lines(capture: Capture) -> None:
    async with FakeServer() as server:
        cfg = config(
            provider(server, "claude"), provider(server, "gpt", "openai"), retry_base_delay=0.01, retry_max_delay=0.02
        )
        async with LLMCommunication(cfg) as llm:
            server.enqueue(Script(status=500), Script(status=503), Script(status=529), Script(text="ok"))
            assert await llm.generate_text("hi") == "ok"
    fallbacks = capture.events("fallback")
    assert len(fallbacks) == 2  # before the retry and in the retried round
    for fallback in fallbacks:
        assert (fallback.provider, fallback.to_provider) == ("claude", "gpt")  # type: ignore[attr-defined]
        assert fallback.levelno == logging.INFO
    retries = capture.events("retry")
    assert len(retries) == 1
    assert retries[0].levelno == logging.INFO
    assert retries[0].error_type == "ProviderUnavailableError"  # type: ignore[attr-defined]
    (end,) = capture.events("request_end")
    assert end.attempt == 4  # type: ignore[attr-defined]


async def test_prompts_and_replies_are_logged_only_when_asked(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt, reply = "secret prompt words", "confidential reply words"
    async with FakeServer() as server:
        server.default = Script(text=reply)
        monkeypatch.delenv("LLMCOMM_LOG_CONTENT", raising=False)
        async with LLMCommunication(config(provider(server))) as llm:
            await llm.generate_text(prompt)
        silent = [logging.Formatter().format(r) + repr(r.__dict__) for r in capture.records]
        assert not any(prompt in line or reply in line for line in silent)

        capture.records.clear()
        monkeypatch.setenv("LLMCOMM_LOG_CONTENT", "1")
        async with LLMCommunication(config(provider(server))) as llm:
            await llm.generate_text(prompt)
    (end,) = capture.events("request_end")
    assert end.prompt == prompt  # type: ignore[attr-defined]
    assert end.reply == reply  # type: ignore[attr-defined]


async def test_canary_key_never_reaches_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-canary-0123456789abcdefghij"
    root = logging.getLogger()
    raw, redacted = Capture(), Capture()
    redacted.addFilter(RedactingFilter([canary]))
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(raw)
    root.addHandler(redacted)
    try:
        async with FakeServer() as server:
            providers = [
                ProviderConfig(name="claude", kind="anthropic", api_key=canary, base_url=server.anthropic_base_url),
                ProviderConfig(
                    name="gpt",
                    kind="openai",
                    api_key=canary,
                    base_url=server.openai_base_url,
                    headers={"X-Api-Key": canary},
                ),
            ]
            async with LLMCommunication(Configuration(providers=providers)) as llm:
                server.enqueue(Script(status=401), Script(text="ok"))
                assert await llm.generate_text("hi") == "ok"
                await llm.generate_text("hi", provider="gpt")
                # Whatever a library might log about the headers is masked too.
                logging.getLogger("httpx2").debug("headers: %s", {"authorization": f"Bearer {canary}"})
                logging.getLogger("anthropic").debug("x-api-key: %s", canary)
    finally:
        root.removeHandler(raw)
        root.removeHandler(redacted)
        root.setLevel(level)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s %(request_id)s")
    lines = [formatter.format(r) for r in redacted.records]
    assert any(r.name.startswith(("httpx2", "httpcore2", "anthropic", "openai")) for r in redacted.records)
    assert any(r.name == "llmcomm" for r in redacted.records)
    assert not [line for line in lines if canary in line]
    assert any("sk-…ghij" in line for line in lines)
    # llmcomm's own lines never carry the key, even without a redaction filter.
    assert not [r for r in raw.records if r.name.startswith("llmcomm") and canary in r.getMessage()]


async def test_error_reaches_the_caller_within_a_second_and_is_logged_at_once(capture: Capture) -> None:
    async with FakeServer() as server:
        server.default = Script(status=401)
        async with LLMCommunication(config(provider(server), provider(server, "gpt", "openai"))) as llm:
            with pytest.raises(AllProvidersFailedError):
                await llm.generate_text("hi")
            caught_at = time.monotonic()
    failed_at = max(r.response_started_at or 0.0 for r in server.requests)
    assert caught_at - failed_at < 1.0
    (error_line,) = capture.events("request_error")
    logged_at = capture.emitted_at[capture.records.index(error_line)]
    assert failed_at <= logged_at <= caught_at
    assert caught_at - logged_at < 0.1
    assert error_line.levelno == logging.WARNING
    assert error_line.error_type == "AllProvidersFailedError"  # type: ignore[attr-defined]


def live_call_states() -> int:
    gc.collect()
    return sum(isinstance(o, CallState) for o in gc.get_objects())


async def test_cancelled_stream_is_logged_and_forgotten(capture: Capture) -> None:
    before = live_call_states()
    async with FakeServer() as server, LLMCommunication(config(provider(server))) as llm:
        server.default = Script(tokens=100, token_delay=0.01)
        async with llm.generate_stream("hi") as stream:
            async for _ in stream:
                break
        del stream
        assert live_call_states() == before  # what was kept about the call went with it
        snapshot = llm.metrics.snapshot()
    (line,) = capture.events("request_cancelled")
    assert line.outcome == "cancelled"  # type: ignore[attr-defined]
    assert snapshot["total"]["cancelled"] == 1


async def test_legacy_log_file(tmp_path: Any) -> None:
    path = tmp_path / "logs" / "llm.log"
    handler = enable_legacy_log_file(environ={"LLM_LOG_FILE": str(path)})
    assert handler is not None
    try:
        async with FakeServer() as server, LLMCommunication(config(provider(server))) as llm:
            response = await llm.generate_response("hi")
    finally:
        disable_legacy_log_file()
    text = path.read_text(encoding="utf-8")
    assert f"[LLM-REQ-ID: {response.request_id}] MANAGER_LAYER - LLM request {response.request_id} finished" in text


def test_legacy_log_file_off_writes_nothing(tmp_path: Any) -> None:
    path = tmp_path / "logs" / "llm.log"
    assert enable_legacy_log_file(environ={"LLM_LOG_FILE": str(path), "ENABLE_LLM_SPECIAL_LOG": "false"}) is None
    assert not (tmp_path / "logs").exists()


# -- metrics ------------------------------------------------------------------------------------


async def test_metrics_of_real_calls() -> None:
    async with FakeServer() as server:
        cfg = config(provider(server, "claude"), provider(server, "gpt", "openai"), retry_base_delay=0.01)
        async with LLMCommunication(cfg) as llm:
            server.default = Script(text="a b c d", output_tokens=4, token_delay=0.005)
            for _ in range(5):
                await llm.generate_text("hi")
            server.enqueue(Script(status=500))
            await llm.generate_text("hi")  # falls back to gpt
            server.enqueue(Script(status=400))
            await llm.generate_text("hi")  # falls back too: 400 is that provider's refusal
            server.enqueue(Script(status=401), Script(status=401))
            with pytest.raises(AllProvidersFailedError):
                await llm.generate_text("hi")
            with pytest.raises(InvalidRequestError):
                await llm.generate_text("")  # refused before any call: not counted
            snapshot = llm.metrics.snapshot()
            text = llm.metrics.prometheus()
    series = {s["provider"]: s for s in snapshot["series"]}
    claude, gpt = series["claude"], series["gpt"]
    assert claude["model"] == "claude-model"
    assert claude["successes"] == 5
    assert claude["attempts"] == 8
    assert claude["fallbacks"] == 3
    assert claude["attempt_errors"] == {
        "AuthenticationError": 1,
        "InvalidRequestError": 1,
        "ProviderUnavailableError": 1,
    }
    assert gpt["successes"] == 2
    assert gpt["errors"] == {"AllProvidersFailedError": 1}
    assert claude["latency_seconds"]["count"] == 5
    assert 0 < claude["latency_seconds"]["p50"] <= claude["latency_seconds"]["p99"]
    assert claude["time_to_first_token_seconds"]["count"] == 5
    assert claude["output_tokens"] == 20
    assert claude["output_tokens_per_second"]["count"] == 5
    assert snapshot["total"]["requests"] == 8
    assert 'llmcomm_requests_total{provider="claude",model="claude-model",outcome="success"} 5' in text
    assert 'llmcomm_errors_total{provider="gpt",model="gpt-model",error_type="AllProvidersFailedError"} 1' in text


# -- hooks -----------------------------------------------------------------------------------------


async def test_hooks_see_every_event_in_order() -> None:
    events: list[HookEvent] = []
    async with FakeServer() as server:
        cfg = config(provider(server, "claude"), provider(server, "gpt", "openai"), retry_base_delay=0.01)
        async with LLMCommunication(cfg) as llm:
            for register in (
                llm.hooks.on_request_start,
                llm.hooks.on_first_token,
                llm.hooks.on_retry,
                llm.hooks.on_fallback,
                llm.hooks.on_request_end,
                llm.hooks.on_error,
            ):
                register(events.append)
            server.enqueue(Script(status=500), Script(status=503), Script(text="ok"))
            response = await llm.generate_response("hi")
            server.enqueue(Script(status=401), Script(status=401))
            with pytest.raises(AllProvidersFailedError) as caught:
                await llm.generate_text("hi")
    kinds = [e.kind for e in events]
    assert kinds == [
        "request_start",
        "fallback",
        "retry",
        "first_token",
        "request_end",
        "request_start",
        "fallback",
        "error",
    ]
    assert events[0].providers == ("claude", "gpt")
    assert events[1].to_provider == "gpt"
    assert events[2].delay is not None
    assert events[4].response is response
    assert events[-1].error is caught.value
    assert {e.request_id for e in events[:5]} == {response.request_id}


async def test_async_hooks_never_block_the_call() -> None:
    released, ran = anyio.Event(), anyio.Event()
    finished: list[str | None] = []

    async def slow(event: HookEvent) -> None:
        await released.wait()
        finished.append(current_request_id())
        ran.set()

    hooks = Hooks()
    hooks.on_request_end(slow)
    async with LLMCommunication(config(Probe()), hooks=hooks) as llm:  # type: ignore[arg-type]
        with anyio.fail_after(5):
            response = await llm.generate_response("hi")  # returns while the hook waits
            assert finished == []
            released.set()
            await ran.wait()
    assert finished == [response.request_id]


async def test_a_failing_hook_is_logged_and_never_breaks_a_call(capture: Capture) -> None:
    def broken(event: HookEvent) -> None:
        raise RuntimeError("sync hook bug")

    async def broken_async(event: HookEvent) -> None:
        raise RuntimeError("async hook bug")

    three_logged = anyio.Event()

    class Counter(logging.Handler):
        seen = 0

        def emit(self, record: logging.LogRecord) -> None:
            self.seen += 1
            if self.seen == 3:
                three_logged.set()

    counter = Counter()
    logging.getLogger("llmcomm.hooks").addHandler(counter)
    try:
        async with LLMCommunication(config(Probe())) as llm:  # type: ignore[arg-type]
            llm.hooks.on_request_start(broken)
            llm.hooks.on_first_token(broken)
            llm.hooks.on_request_end(broken_async)
            with anyio.fail_after(5):
                assert await llm.generate_text("hi") == "hello"
                await three_logged.wait()
    finally:
        logging.getLogger("llmcomm.hooks").removeHandler(counter)
    failures = [r for r in capture.records if r.name == "llmcomm.hooks"]
    assert {r.levelno for r in failures} == {logging.ERROR}
    assert all(r.exc_info for r in failures)
    assert {str(r.exc_info[1]) for r in failures if r.exc_info} == {"sync hook bug", "async hook bug"}


async def test_hooks_still_running_at_close_are_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmcomm._client.HOOK_GRACE", 0.05)
    started = anyio.Event()

    async def forever(event: HookEvent) -> None:
        started.set()
        await anyio.sleep_forever()

    async with LLMCommunication(config(Probe())) as llm:  # type: ignore[arg-type]
        llm.hooks.on_request_end(forever)
        llm.hooks.on_request_end(forever)
        with anyio.fail_after(5):
            await llm.generate_text("hi")
            await started.wait()
        closing = time.monotonic()
    assert time.monotonic() - closing < 2.0


async def test_removed_hooks_are_not_called() -> None:
    calls: list[str] = []
    async with LLMCommunication(config(Probe())) as llm:  # type: ignore[arg-type]
        hook = llm.hooks.on_request_end(lambda e: calls.append(e.kind))
        await llm.generate_text("hi")
        llm.hooks.remove(hook)
        await llm.generate_text("hi")
    assert calls == ["request_end"]


async def test_a_failing_sink_stops_neither_the_others_nor_the_call(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("metrics bug")

    monkeypatch.setattr(Metrics, "record_attempt", broken)
    ends: list[HookEvent] = []
    async with LLMCommunication(config(Probe())) as llm:  # type: ignore[arg-type]
        llm.hooks.on_request_end(ends.append)
        assert await llm.generate_text("hi") == "hello"
    (failure,) = [r for r in capture.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "llmcomm metrics failed in attempt_start; the call goes on"
    assert len(capture.events("attempt_start")) == 1  # the log line of the same event
    assert [e.kind for e in ends] == ["request_end"]


async def test_a_failing_or_older_observer_never_breaks_a_call(capture: Capture) -> None:
    class Broken:
        """Implements the events as they were before `request_cancelled`, and fails in each."""

        def __getattr__(self, name: str) -> Any:
            if name == "request_cancelled":
                raise AttributeError(name)

            def fail(*args: Any) -> None:
                raise RuntimeError(f"observer bug in {name}")

            return fail

    async with LLMCommunication(config(Probe(delay=0.5)), observer=Broken()) as llm:  # type: ignore[arg-type]
        with anyio.fail_after(5):
            assert await llm.generate_text("hi") == "hello"
            async with llm.generate_stream("hi") as stream:
                await stream.__anext__()  # closed before it finished: request_cancelled, which Broken lacks
    failures = [r for r in capture.records if "observer" in r.getMessage() and r.levelno == logging.ERROR]
    # The first call: request_start, attempt_start, first_token, request_end; the closed one: its first three.
    assert len(failures) == 7


class Recorder:
    """A user's own `Observer`: every event with the arguments it came with."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def request_start(self, request: Request, providers: tuple[str, ...]) -> None:
        self.events.append(("request_start", request.request_id, providers))

    def attempt_start(self, request: Request, provider: str, model: str, reason: str) -> None:
        self.events.append(("attempt_start", provider, model, reason))

    def first_token(self, request: Request, provider: str, model: str, seconds: float) -> None:
        self.events.append(("first_token", provider, model, seconds))

    def retry(self, request: Request, provider: str, error: Any, delay: float) -> None:
        self.events.append(("retry", provider, type(error).__name__, delay))

    def fallback(self, request: Request, from_provider: str, to_provider: str, reason: str) -> None:
        self.events.append(("fallback", from_provider, to_provider, reason))

    def request_end(self, request: Request, response: Any) -> None:
        self.events.append(("request_end", response.content))

    def request_error(self, request: Request, error: Any, seconds: float) -> None:
        self.events.append(("request_error", type(error).__name__, seconds))

    def request_cancelled(self, request: Request, seconds: float) -> None:
        self.events.append(("request_cancelled", seconds))

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


async def test_a_users_observer_hears_every_event_with_its_arguments() -> None:
    recorder = Recorder()
    async with FakeServer() as server:
        cfg = config(
            provider(server, "claude"),
            provider(server, "gpt", "openai"),
            retry_base_delay=0.01,
            retry_max_delay=0.02,
            max_retries=1,
        )
        async with LLMCommunication(cfg, observer=recorder) as llm:
            # A retried round: both fail, then the first answers.
            server.enqueue(Script(status=500), Script(status=503), Script(text="ok"))
            assert await llm.generate_text("hi") == "ok"
            served = list(recorder.events)
            recorder.events.clear()
            # Every provider fails, twice: the call's error.
            server.default = Script(status=500)
            with pytest.raises(AllProvidersFailedError):
                await llm.generate_text("hi")
            failed = list(recorder.events)
            recorder.events.clear()
            # Closed before its end: cancelled.
            server.default = Script(tokens=500, token_delay=0.01)
            async with llm.generate_stream("hi") as stream:
                await stream.__anext__()
    assert [e[0] for e in served] == [
        "request_start",
        "attempt_start",
        "fallback",
        "attempt_start",
        "retry",
        "attempt_start",
        "first_token",
        "request_end",
    ]
    assert served[0][2] == ("claude", "gpt")
    assert served[1][1:] == ("claude", "claude-model", "first")
    assert served[2][1:3] == ("claude", "gpt") and "ProviderUnavailableError" in served[2][3]
    assert served[3][1:] == ("gpt", "gpt-model", "fallback")
    assert (
        served[4][1:3] == ("claude", "ProviderUnavailableError") and 0 < served[4][3] <= 0.02
    )  # the round starts again
    assert served[5][1:] == ("claude", "claude-model", "retry")
    assert served[6][1:3] == ("claude", "claude-model") and served[6][3] > 0
    assert served[7] == ("request_end", "ok")
    assert failed[-1][:2] == ("request_error", "AllProvidersFailedError") and failed[-1][2] > 0
    assert recorder.names()[-1] == "request_cancelled" and recorder.events[-1][1] > 0
