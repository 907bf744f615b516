"""Usage and whole JSON replies, decoded without sockets, on both wires."""

from __future__ import annotations

import orjson
import pytest

from llmcomm._types import UsageInfo
from llmcomm._wire._decoder import MalformedEventError, WireError

from .wire_events import ANTHROPIC, OPENAI, WIRES, Wire, anthropic_event, decode, openai_choice, sse, text_of

# -- usage ----------------------------------------------------------------------------


def _anthropic_usage_stream(start: dict[str, int], delta: dict[str, int]) -> bytes:
    message_start = {"type": "message_start", "message": {"model": "claude-test", "usage": start}}
    message_delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta}
    return anthropic_event(message_start) + ANTHROPIC.text("Hi") + anthropic_event(message_delta) + ANTHROPIC.marker


@pytest.mark.parametrize(
    ("start", "delta", "expected"),
    [
        pytest.param({"input_tokens": 43, "output_tokens": 1}, {"input_tokens": 61, "output_tokens": 2},
                     UsageInfo(61, 2, 63), id="delta-restates-input"),
        pytest.param({"input_tokens": 0, "output_tokens": 0}, {"input_tokens": 12, "output_tokens": 4},
                     UsageInfo(12, 4, 16), id="zero-first"),
        pytest.param({"input_tokens": 9, "output_tokens": 1}, {"output_tokens": 0},
                     UsageInfo(9, 0, 9), id="a-real-zero"),
        pytest.param({"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
                      "output_tokens": 1}, {"output_tokens": 5},
                     UsageInfo(130, 5, 135, cache_read_tokens=100, cache_write_tokens=20), id="cache-at-start"),
        pytest.param({"input_tokens": 0, "output_tokens": 1},
                     {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0,
                      "output_tokens": 5},
                     UsageInfo(110, 5, 115, cache_read_tokens=100), id="cache-in-delta"),
    ],
)  # fmt: skip
def test_anthropic_usage_takes_the_last_report_of_each_count(
    start: dict[str, int], delta: dict[str, int], expected: UsageInfo
) -> None:
    usage = decode(ANTHROPIC.decoder(), _anthropic_usage_stream(start, delta))[-1].usage
    assert usage == expected
    assert usage is not None
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (
        expected.cache_read_tokens,
        expected.cache_write_tokens,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"prompt_tokens": 130, "completion_tokens": 50, "total_tokens": 180,
                      "prompt_tokens_details": {"cached_tokens": 100},
                      "completion_tokens_details": {"reasoning_tokens": 30}},
                     UsageInfo(130, 50, 180, cache_read_tokens=100, reasoning_tokens=30), id="details"),
        pytest.param({"prompt_tokens": 7, "completion_tokens": 2}, UsageInfo(7, 2, 9), id="no-total"),
        pytest.param({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, UsageInfo(0, 0, 0),
                     id="real-zeros"),
        pytest.param({"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42, "prompt_cache_hit_tokens": 32,
                      "prompt_cache_miss_tokens": 8}, UsageInfo(40, 2, 42, cache_read_tokens=32), id="deepseek"),
        pytest.param({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "prompt_tokens_details": None,
                      "completion_tokens_details": None}, UsageInfo(5, 1, 6), id="null-details"),
    ],
)  # fmt: skip
def test_openai_usage_fills_the_cache_and_reasoning_counts(raw: dict[str, object], expected: UsageInfo) -> None:
    body = OPENAI.text("Hi") + openai_choice({}, "stop") + sse({"choices": [], "usage": raw}) + OPENAI.marker
    usage = decode(OPENAI.decoder(), body)[-1].usage
    assert usage == expected
    assert usage is not None
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (expected.cache_read_tokens, expected.reasoning_tokens)


@pytest.mark.parametrize("wire", WIRES)
def test_no_usage_reported_is_none(wire: Wire) -> None:
    finish = (
        anthropic_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
        if wire is ANTHROPIC
        else openai_choice({}, "stop")
    )
    assert decode(wire.decoder(), wire.text("Hi") + finish + wire.marker)[-1].usage is None


# -- a whole JSON reply to a stream request -----------------------------------------------

ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-json",
    "content": [
        {"type": "thinking", "thinking": "brief", "signature": "s"},
        {"type": "text", "text": "Hello from "},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        {"type": "text", "text": "JSON"},
    ],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 9, "cache_read_input_tokens": 4, "output_tokens": 4},
}
OPENAI_COMPLETION = {
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello from JSON", "reasoning_content": "brief"},
         "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "other"}, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 13, "completion_tokens": 4, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 4}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("wire", "body"),
    [pytest.param(ANTHROPIC, ANTHROPIC_MESSAGE, id="anthropic"), pytest.param(OPENAI, OPENAI_COMPLETION, id="openai")],
)
def test_a_json_reply_is_decoded_whole(wire: Wire, body: dict[str, object]) -> None:
    decoder = wire.decoder()
    chunks = decoder.message(orjson.dumps(body)) + decoder.end()
    assert text_of(chunks) == "Hello from JSON"
    assert "".join(c.reasoning for c in chunks) == "brief"
    assert chunks[-1].finish_reason in ("end_turn", "stop")
    assert chunks[-1].usage == UsageInfo(13, 4, 17, cache_read_tokens=4)
    assert chunks[-1].usage.cache_read_tokens == 4


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}', WireError, id="anthropic-error"),
        pytest.param(b'{"error":{"message":"bad key","type":"invalid_request_error","code":401}}', WireError, id="openai-error"),
        pytest.param(b"[1, 2]", MalformedEventError, id="not-an-object"),
        pytest.param(b'{"hello": "world"}', MalformedEventError, id="not-a-reply"),
        pytest.param(b"{not json", orjson.JSONDecodeError, id="not-json"),
    ],
)  # fmt: skip
def test_a_json_body_that_is_no_reply_is_an_error(wire: Wire, body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        wire.decoder().message(body)


@pytest.mark.parametrize("wire", WIRES)
def test_a_json_reply_with_a_lone_surrogate_is_repaired(wire: Wire) -> None:
    if wire is ANTHROPIC:
        body = b'{"type":"message","content":[{"type":"text","text":"A\\ud83dB"}],"stop_reason":"end_turn"}'
    else:
        body = b'{"choices":[{"index":0,"message":{"content":"A\\ud83dB"},"finish_reason":"stop"}]}'
    decoder = wire.decoder()
    assert text_of(decoder.message(body) + decoder.end()) == "A\ufffdB"
