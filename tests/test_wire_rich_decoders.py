"""Tool calls, thinking, refusals and finish reasons decoded without sockets, on both wires."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmcomm import ReasoningPart, ToolCall, ToolCallDelta
from llmcomm._messages import assemble
from llmcomm._types import StreamChunk
from llmcomm._wire._anthropic import AnthropicDecoder
from llmcomm._wire._openai import OpenAIDecoder

from .wire_events import ANTHROPIC, OPENAI, SPLITS, anthropic_event, decode, openai_choice, text_of


def block_start(index: int, block: dict[str, Any]) -> bytes:
    return anthropic_event({"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> bytes:
    return anthropic_event({"type": "content_block_stop", "index": index})


def anthropic_finish(reason: str) -> bytes:
    return anthropic_event({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 9}})


def json_pieces(index: int, pieces: list[str]) -> bytes:
    return b"".join(block_delta(index, {"type": "input_json_delta", "partial_json": p}) for p in pieces)


# As the Messages API streams it: text in block 0, then two tool_use blocks, input JSON in pieces.
ANTHROPIC_TOOLS = (
    ANTHROPIC.start
    + ANTHROPIC.text("Checking.")
    + block_stop(0)
    + block_start(1, {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}})
    + json_pieces(1, ["", '{"city"', ': "Par', 'is"}'])
    + block_stop(1)
    + block_start(2, {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}})
    + json_pieces(2, [""])
    + block_stop(2)
    + anthropic_finish("tool_use")
    + ANTHROPIC.marker
)


def openai_call(index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    head: dict[str, Any] = {"index": index}
    if call_id:
        head |= {"id": call_id, "type": "function"}
        function["name"] = name
    return {**head, "function": function}


# As Chat Completions streams it: the first piece of each call has its id and name; the rest only arguments.
OPENAI_TOOLS = (
    OPENAI.start
    + OPENAI.text("Checking.")
    + openai_choice({"content": None, "tool_calls": [openai_call(0, "call_A", "get_weather")]})
    + openai_choice({"tool_calls": [openai_call(0, arguments='{"city"')]})
    + openai_choice({"tool_calls": [openai_call(0, arguments=': "Paris"}')]})
    + openai_choice({"tool_calls": [openai_call(1, "call_B", "get_time")]})
    + openai_choice({}, "tool_calls")
    + OPENAI.marker
)


def calls_of(chunks: list[StreamChunk]) -> list[ToolCallDelta]:
    return [c.tool_call for c in chunks if c.tool_call is not None]


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize(
    ("decoder", "body", "ids", "raw_finish"),
    [
        pytest.param(lambda: AnthropicDecoder("a", "m"), ANTHROPIC_TOOLS, ("toolu_01A", "toolu_01B"), "tool_use",
                     id="anthropic"),
        pytest.param(lambda: OpenAIDecoder("o", "m"), OPENAI_TOOLS, ("call_A", "call_B"), "tool_calls", id="openai"),
    ],
)  # fmt: skip
def test_streamed_parallel_tool_calls(
    decoder: Any, body: bytes, ids: tuple[str, str], raw_finish: str, size: int | None
) -> None:
    chunks = decode(decoder(), body, size)
    deltas = calls_of(chunks)
    assert text_of(chunks) == "Checking."
    assert {d.index for d in deltas} == {0, 1}  # ordinals, whatever the wire numbers its blocks
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Paris"}'
    done = [d for d in deltas if d.done]
    assert [d.call for d in done] == [
        ToolCall(ids[0], "get_weather", {"city": "Paris"}),
        ToolCall(ids[1], "get_time", {}),
    ]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    closing = chunks[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == ("tool_calls", raw_finish)
    assert assemble(chunks).tool_calls == tuple(d.call for d in done)


def test_openai_calls_interleaved_by_index_are_kept_apart() -> None:
    body = (
        OPENAI.start
        + openai_choice({"tool_calls": [openai_call(0, "c0", "f"), openai_call(1, "c1", "g")]})
        + openai_choice({"tool_calls": [openai_call(1, arguments='{"b":')]})
        + openai_choice({"tool_calls": [openai_call(0, arguments='{"a": 1}')]})
        + openai_choice({"tool_calls": [openai_call(1, arguments=" 2}")]})
        + openai_choice({}, "tool_calls")
        + OPENAI.marker
    )
    done = [d.call for d in calls_of(decode(OPENAI.decoder(), body)) if d.done]
    assert done == [ToolCall("c0", "f", {"a": 1}), ToolCall("c1", "g", {"b": 2})]


def test_arguments_that_are_not_json_are_kept_raw() -> None:
    body = (
        ANTHROPIC.start
        + block_start(1, {"type": "tool_use", "id": "t1", "name": "f", "input": {}})
        + json_pieces(1, ['{"a": '])
        + block_stop(1)
        + anthropic_finish("tool_use")
        + ANTHROPIC.marker
    )
    (done,) = [d for d in calls_of(decode(ANTHROPIC.decoder(), body)) if d.done]
    assert done.call == ToolCall("t1", "f", {}, '{"a": ')


def test_a_call_the_stream_left_open_is_closed_at_the_end() -> None:
    body = (
        ANTHROPIC.start
        + block_start(1, {"type": "tool_use", "id": "t1", "name": "f", "input": {}})
        + json_pieces(1, ['{"a": 1}'])
        + anthropic_finish("tool_use")
        + ANTHROPIC.marker
    )
    chunks = decode(ANTHROPIC.decoder(), body)
    assert [d.call for d in calls_of(chunks) if d.done] == [ToolCall("t1", "f", {"a": 1})]
    assert chunks[-1].tool_call is None and chunks[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize("size", SPLITS)
def test_anthropic_thinking_signature_and_redacted_thinking(size: int | None) -> None:
    body = (
        anthropic_event({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 3}}})
        + block_start(0, {"type": "thinking", "thinking": "", "signature": ""})
        + block_delta(0, {"type": "thinking_delta", "thinking": "Let me "})
        + block_delta(0, {"type": "thinking_delta", "thinking": "think."})
        + block_delta(0, {"type": "signature_delta", "signature": "EqQBsig"})
        + block_stop(0)
        + block_start(1, {"type": "redacted_thinking", "data": "EmwKopaque"})
        + block_stop(1)
        + block_start(2, {"type": "text", "text": ""})
        + block_delta(2, {"type": "text_delta", "text": "Answer."})
        + block_stop(2)
        + anthropic_finish("end_turn")
        + ANTHROPIC.marker
    )
    chunks = decode(AnthropicDecoder("claude", "m"), body, size)
    assert "".join(c.reasoning for c in chunks) == "Let me think."
    assert text_of(chunks) == "Answer."
    assert [c.reasoning_part for c in chunks if c.reasoning_part] == [
        ReasoningPart("Let me think.", "EqQBsig", None, "claude"),
        ReasoningPart("", None, "EmwKopaque", "claude"),
    ]
    assert (chunks[-1].finish_reason, chunks[-1].raw_finish_reason) == ("stop", "end_turn")


@pytest.mark.parametrize(
    ("wire", "reason", "normal"),
    [
        pytest.param("anthropic", "max_tokens", "length", id="anthropic-max-tokens"),
        pytest.param("anthropic", "refusal", "refusal", id="anthropic-refusal"),
        pytest.param("anthropic", "pause_turn", "other", id="anthropic-pause"),
        pytest.param("anthropic", "model_context_window_exceeded", "length", id="anthropic-context"),
        pytest.param("openai", "length", "length", id="openai-length"),
        pytest.param("openai", "content_filter", "content_filter", id="openai-filter"),
        pytest.param("openai", "function_call", "tool_calls", id="openai-function-call"),
        pytest.param("openai", "eos", "other", id="openai-unknown"),
    ],
)
def test_finish_reasons_are_normalised_and_kept_raw(wire: str, reason: str, normal: str) -> None:
    if wire == "anthropic":
        body = ANTHROPIC.start + ANTHROPIC.text("x") + anthropic_finish(reason) + ANTHROPIC.marker
        closing = decode(ANTHROPIC.decoder(), body)[-1]
    else:
        body = OPENAI.start + OPENAI.text("x") + openai_choice({}, reason) + OPENAI.marker
        closing = decode(OPENAI.decoder(), body)[-1]
    assert (closing.finish_reason, closing.raw_finish_reason) == (normal, reason)


def test_an_openai_refusal_is_its_own_field() -> None:
    body = (
        OPENAI.start
        + openai_choice({"refusal": "I can't "})
        + openai_choice({"refusal": "help with that."})
        + openai_choice({}, "stop")
        + OPENAI.marker
    )
    chunks = decode(OPENAI.decoder(), body)
    assert text_of(chunks) == ""
    assert assemble(chunks).refusal == "I can't help with that."


def test_whole_replies_carry_tool_calls_and_reasoning() -> None:
    anthropic_body = {
        "type": "message", "model": "m", "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2},
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s1"}, {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
    }  # fmt: skip
    decoder = AnthropicDecoder("claude", "m")
    chunks = decoder.message(orjson.dumps(anthropic_body)) + decoder.end()
    facts = assemble(chunks)
    assert (text_of(chunks), facts.reasoning, facts.tool_calls) == ("ok", "hm", (ToolCall("t1", "f", {"a": 1}),))
    assert facts.reasoning_parts == (ReasoningPart("hm", "s1", None, "claude"),)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    openai_body = {
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "reasoning_content": "hm",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}}],
    }  # fmt: skip
    decoder2 = OpenAIDecoder("o", "m")
    chunks = decoder2.message(orjson.dumps(openai_body)) + decoder2.end()
    facts = assemble(chunks)
    assert (facts.reasoning, facts.tool_calls) == ("hm", (ToolCall("c1", "f", {"a": 1}),))
    assert chunks[-1].finish_reason == "tool_calls"


def test_plain_text_still_takes_the_fast_path_unchanged() -> None:
    chunks = decode(
        OPENAI.decoder(), OPENAI.start + OPENAI.text("a") + OPENAI.text("b") + OPENAI.finish + OPENAI.marker
    )
    assert [c.text for c in chunks] == ["a", "b", ""]
    assert all(c.tool_call is None and c.reasoning_part is None for c in chunks)


def test_openai_compatible_calls_without_an_index_are_told_apart_by_id() -> None:
    whole = [{"id": "c0", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
             {"id": "c1", "type": "function", "function": {"name": "g", "arguments": "{}"}}]  # fmt: skip
    body = OPENAI.start + openai_choice({"tool_calls": whole[:1]}) + openai_choice({"tool_calls": whole[1:]})
    body += openai_choice({}, "tool_calls") + OPENAI.marker
    done = [d for d in calls_of(decode(OPENAI.decoder(), body)) if d.done]
    assert [(d.index, d.call) for d in done] == [(0, ToolCall("c0", "f", {"a": 1})), (1, ToolCall("c1", "g", {}))]
