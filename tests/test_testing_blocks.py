"""`Script(blocks=...)`: replies in each API's own shape for tool calls and thinking (no sockets)."""

from __future__ import annotations

import orjson
import pytest

from llmcomm.testing import Script
from llmcomm.testing._reply import plan_reply


def events(api: str, script: Script) -> list[dict[str, object]]:
    reply = plan_reply(api, {"model": "m", "messages": [], "stream_options": {"include_usage": True}}, True, script, 1)  # type: ignore[arg-type]
    body = b"".join(step for step in reply.body if isinstance(step, bytes))
    lines = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ") and line != b"data: [DONE]"]
    return [orjson.loads(line) for line in lines]


def test_anthropic_tool_use_streams_like_the_messages_api() -> None:
    script = Script(blocks=(("tool_use", "f", '{"city": "Paris"}'), ("tool_use", "g", "{}")))
    shown = events("anthropic", script)
    starts = [e for e in shown if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["tool_use", "tool_use"]  # type: ignore[index]
    assert starts[0]["content_block"]["input"] == {}  # type: ignore[index]
    pieces = [e["delta"]["partial_json"] for e in shown if e.get("index") == 0 and e["type"] == "content_block_delta"]  # type: ignore[index]
    assert pieces[0] == "" and len(pieces) > 2 and "".join(pieces) == '{"city": "Paris"}'
    assert next(e for e in shown if e["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"  # type: ignore[index]


def test_openai_tool_calls_stream_by_index() -> None:
    script = Script(blocks=(("tool_use", "f", '{"city": "Paris"}'), ("tool_use", "g", "{}")))
    shown = [e["choices"][0] for e in events("openai", script) if e["choices"]]  # type: ignore[index]
    calls = [c["delta"]["tool_calls"][0] for c in shown if "tool_calls" in c["delta"]]
    assert [c["index"] for c in calls if "id" in c] == [0, 1]
    assert calls[0]["function"] == {"name": "f", "arguments": ""}
    assert shown[-1]["finish_reason"] == "tool_calls"


def test_thinking_then_text_on_anthropic_has_a_signature() -> None:
    shown = events("anthropic", Script(blocks=(("thinking", "a b"), ("text", "c"))))
    kinds = [e["delta"]["type"] for e in shown if e["type"] == "content_block_delta"]  # type: ignore[index]
    assert kinds == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]


@pytest.mark.parametrize("block", [("tool_use", "f"), ("picture", "x"), ()])
def test_a_malformed_block_is_refused(block: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="bad block"):
        Script(blocks=(block,))
