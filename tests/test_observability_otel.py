"""OpenTelemetry: one span per call (GenAI conventions), the GenAI metrics, no double counting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from llmcomm import (
    AuthenticationError,
    Configuration,
    ConfigurationError,
    LLMCommunication,
    Message,
    ProviderConfig,
    Request,
)
from llmcomm._observability import OpenTelemetry
from llmcomm._observability._otel import OTelRecorder
from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"
MODEL = "claude-test"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def settings(self, **options: Any) -> OpenTelemetry:
        return OpenTelemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options)

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def metric_points(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


@pytest.fixture
def global_tracer(telemetry: Telemetry) -> Iterator[Telemetry]:
    """`telemetry`'s tracer provider as the process-wide one (what the anthropic SDK reports to)."""
    saved = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(telemetry.tracer_provider)
    yield telemetry
    trace._TRACER_PROVIDER = saved
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    if saved is not None:
        trace._TRACER_PROVIDER_SET_ONCE.do_once(lambda: None)


def anthropic_config(server: FakeServer, **options: Any) -> Configuration:
    return Configuration(
        providers=[
            ProviderConfig(
                name="claude", kind="anthropic", model=MODEL, api_key=KEY, base_url=server.anthropic_base_url
            )
        ],
        **options,
    )


async def test_one_span_per_call_with_genai_attributes(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        server.default = Script(text="one two three", input_tokens=7, output_tokens=3)
        async with LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm:
            response = await llm.generate_response("What is up?", max_tokens=50, temperature=0.5)
    (span,) = telemetry.finished()
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-test"
    assert span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-test"
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.response.model"] == response.model
    assert attrs["gen_ai.usage.input_tokens"] == 7
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["llmcomm.request_id"] == response.request_id
    assert attrs["llmcomm.provider"] == "claude"
    assert isinstance(attrs["gen_ai.response.time_to_first_chunk"], float)
    assert span.status.status_code is StatusCode.UNSET
    # No content unless asked for.
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_instructions")) for k in attrs)
    assert "What is up?" not in repr(attrs)


async def test_two_calls_of_one_request_object_keep_their_own_spans(telemetry: Telemetry) -> None:
    # What is kept about a call lives with the call, not under the request's id.
    async with FakeServer() as server:
        server.default = Script(text="a b", delay_before_first_token=0.05)
        async with LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm:
            request = Request(messages=(Message("user", "hi"),), request_id="LLM-shared")
            calls = [llm.manager.call(request, None, 30.0), llm.manager.call(request, None, 30.0)]

            async def read(call: Any) -> None:
                while await call.next_batch() is not None:
                    pass

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for call in calls:
                        tg.start_soon(read, call)
    spans = telemetry.finished()
    assert len(spans) == 2
    assert all(dict(s.attributes or {})["llmcomm.attempts"] == 1 for s in spans)


async def test_genai_metrics(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        server.default = Script(text="a b", input_tokens=5, output_tokens=2)
        async with LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm:
            await llm.generate_text("hi")
            await llm.generate_text("hi")
    points = telemetry.metric_points()
    (duration,) = points["gen_ai.client.operation.duration"]
    assert duration.count == 2
    assert duration.attributes["gen_ai.provider.name"] == "anthropic"
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.request.model"] == "claude-test"
    tokens = {p.attributes["gen_ai.token.type"]: p for p in points["gen_ai.client.token.usage"]}
    assert tokens["input"].sum == 10
    assert tokens["output"].sum == 4
    (ttfc,) = points["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 2


async def test_error_span(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        server.default = Script(status=401)
        async with LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm:
            with pytest.raises(AuthenticationError):
                await llm.generate_text("hi")
    (span,) = telemetry.finished()
    attrs = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "AuthenticationError"
    assert any(e.name == "exception" for e in span.events)
    (duration,) = telemetry.metric_points()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "AuthenticationError"


async def test_fallback_is_a_span_event_and_the_winner_is_reported(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        config = Configuration(
            providers=[
                ProviderConfig(
                    name="claude", kind="anthropic", model=MODEL, api_key=KEY, base_url=server.anthropic_base_url
                ),
                ProviderConfig(name="gpt", kind="openai", api_key=KEY, base_url=server.openai_base_url),
            ]
        )
        server.enqueue(Script(status=500), Script(text="fine"))
        async with LLMCommunication(config, otel=telemetry.settings()) as llm:
            await llm.generate_text("hi")
    (span,) = telemetry.finished()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["llmcomm.provider"] == "gpt"
    assert attrs["llmcomm.attempts"] == 2
    (event,) = [e for e in span.events if e.name == "llmcomm.fallback"]
    assert dict(event.attributes or {})["llmcomm.to_provider"] == "gpt"


async def test_cancelled_call_ends_its_span(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        server.default = Script(tokens=50, token_delay=0.01)
        async with (
            LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm,
            llm.generate_stream("hi") as stream,
        ):
            async for _ in stream:
                break
    (span,) = telemetry.finished()
    assert dict(span.attributes or {})["llmcomm.outcome"] == "cancelled"


async def test_content_only_when_asked(telemetry: Telemetry) -> None:
    async with FakeServer() as server:
        server.default = Script(text="the reply")
        async with LLMCommunication(anthropic_config(server), otel=telemetry.settings(capture_content=True)) as llm:
            await llm.generate_text("the prompt", system="be brief")
    (span,) = telemetry.finished()
    attrs = dict(span.attributes or {})
    assert "the prompt" in str(attrs["gen_ai.input.messages"])
    assert "the reply" in str(attrs["gen_ai.output.messages"])
    assert "be brief" in str(attrs["gen_ai.system_instructions"])


async def test_span_is_the_parent_in_the_call_and_a_child_of_the_caller(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    async with FakeServer() as server, LLMCommunication(anthropic_config(server), otel=telemetry.settings()) as llm:
        with tracer.start_as_current_span("handler"):
            await llm.generate_text("hi")
    spans = {s.name: s for s in telemetry.finished()}
    call, handler = spans["chat claude-test"], spans["handler"]
    assert call.parent is not None and handler.context is not None
    assert call.parent.span_id == handler.context.span_id


async def test_only_llmcomm_reports_a_call_no_sdk_span_is_made(global_tracer: Telemetry) -> None:
    async with FakeServer() as server:
        async with LLMCommunication(anthropic_config(server)) as llm:
            await llm.generate_text("hi")
        without_ours = global_tracer.finished()
        global_tracer.spans.clear()
        async with LLMCommunication(anthropic_config(server), otel=OpenTelemetry()) as llm:
            await llm.generate_text("hi")
        ours = global_tracer.finished()
    # llmcomm sends its requests itself: no SDK is on the path to open spans of its own,
    # so the call and its tokens are counted once, by llmcomm's span.
    assert without_ours == ()
    assert [s.instrumentation_scope.name for s in ours if s.instrumentation_scope] == ["llmcomm"]
    assert sum(1 for s in ours if "gen_ai.usage.output_tokens" in (s.attributes or {})) == 1


def test_missing_opentelemetry_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"llmcomm\[otel\]"):
        OTelRecorder(OpenTelemetry())


def test_import_llmcomm_does_not_import_opentelemetry() -> None:
    code = "import sys, llmcomm; sys.exit(any(m.startswith('opentelemetry') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
