"""Messages with parts, tool calls and tools: normalised and checked before any I/O."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from llmcomm import (
    DocumentPart,
    ImagePart,
    InvalidRequestError,
    LLMResponse,
    Message,
    ReasoningPart,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from llmcomm._messages import assemble, normalise_finish_reason, parse_arguments
from llmcomm._request import build_request
from llmcomm._types import content_chunk, is_progress

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
PDF_URL = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()
WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def test_a_text_message_passes_through_unchanged() -> None:
    message = Message("user", "hi")
    request = build_request([message], {})
    assert request.messages[0] is message


def test_openai_message_dicts_become_messages() -> None:
    request = build_request(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                                         {"type": "file", "file": {"file_data": PDF_URL, "filename": "a.pdf"}}]},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ],
        {"tools": [WEATHER]},
    )  # fmt: skip
    user, assistant, result = request.messages
    assert request.system == "Be brief."
    assert user.content == (
        TextPart("What is this?"),
        ImagePart(PNG, None, "image/png"),
        DocumentPart(b"%PDF-1.4", None, "application/pdf", "a.pdf"),
    )
    assert assistant.tool_calls == (ToolCall("call_1", "get_weather", {"city": "Paris"}),)
    assert (result.role, result.tool_call_id, result.content) == ("tool", "call_1", "18 C")


def test_an_image_url_stays_a_url_and_bytes_get_their_type_sniffed() -> None:
    request = build_request([Message("user", (ImagePart(url="https://x.test/a.jpg"), ImagePart(data=PNG)))], {})
    assert request.messages[0].content == (ImagePart(url="https://x.test/a.jpg"), ImagePart(PNG, None, "image/png"))


def test_unparseable_tool_arguments_are_kept_raw() -> None:
    assert parse_arguments("") == ({}, "")
    assert parse_arguments('{"a": 1}') == ({"a": 1}, "")
    assert parse_arguments('{"a": ') == ({}, '{"a": ')
    assert parse_arguments("[1]") == ({}, "[1]")


class NotJSON:
    pass


@pytest.mark.parametrize(
    ("messages", "options", "says"),
    [
        pytest.param([Message("user", (ImagePart(),))], {}, "exactly one of data", id="image-without-data-or-url"),
        pytest.param([Message("user", (ImagePart(data=PNG, url=PNG_URL),))], {}, "exactly one of", id="image-both"),
        pytest.param([Message("user", (ImagePart(data=b"????"),))], {}, "media_type", id="image-unknown-format"),
        pytest.param([Message("user", (ImagePart(url="ftp://x/a.png"),))], {}, "http(s)", id="image-ftp-url"),
        pytest.param([Message("user", (ImagePart(url="data:image/png;base64,@@@"),))], {}, "base64", id="bad-base64"),
        pytest.param([Message("user", (DocumentPart(),))], {}, "a document needs", id="document-empty"),
        pytest.param([{"role": "user", "content": [{"type": "audio", "x": 1}]}], {}, "unknown part type 'audio'",
                     id="unknown-part-type"),
        pytest.param([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}], {}, "file_data",
                     id="file-id"),
        pytest.param([{"role": "user", "content": [3]}], {}, "is a int", id="part-of-wrong-type"),
        pytest.param([Message("user", "q"), Message("tool", "18 C", tool_call_id="call_9")], {}, "no earlier",
                     id="tool-result-without-call"),
        pytest.param([Message("user", "q"), Message("tool", "18 C")], {}, "without tool_call_id",
                     id="tool-result-without-id"),
        pytest.param([Message("user", "q"), Message("assistant", "", tool_calls=(ToolCall("c1", "f", {"x": NotJSON()}),)),
                      Message("tool", "r", tool_call_id="c1")], {}, "not JSON-serialisable", id="arguments-not-json"),
        pytest.param([Message("user", "q"), Message("assistant", "", tool_calls=(ToolCall("", "f"),)),
                      Message("tool", "r", tool_call_id="c1")], {}, "has no id", id="call-without-id"),
        pytest.param([Message("user", "q", tool_calls=(ToolCall("c1", "f"),))], {}, "only an assistant",
                     id="user-with-tool-calls"),
        pytest.param([Message("user", (ReasoningPart("x"),))], {}, "assistant turn only", id="reasoning-in-user"),
        pytest.param([Message("system", (ImagePart(data=PNG),)), Message("user", "q")], {}, "text only",
                     id="image-in-system"),
        pytest.param("q", {"tools": [Tool("t", "", {"type": "string"})]}, "JSON Schema object", id="schema-not-object"),
        pytest.param("q", {"tools": [Tool("t", "", {"type": "object", "default": {1, 2}})]}, "not JSON-serialisable",
                     id="schema-not-json"),
        pytest.param("q", {"tools": [Tool("bad name", "", {"type": "object"})]}, "1-64 letters", id="tool-name"),
        pytest.param("q", {"tools": [WEATHER, WEATHER]}, "share a name", id="duplicate-tools"),
        pytest.param("q", {"tools": ["get_weather"]}, "pass a Tool", id="tool-as-str"),
        pytest.param("q", {"tool_choice": "auto"}, "no tools are", id="tool-choice-without-tools"),
        pytest.param("q", {"tools": [WEATHER], "tool_choice": "get_time"}, "is not 'auto'", id="tool-choice-unknown"),
        pytest.param("q", {"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls", id="parallel"),
        pytest.param("q", {"reasoning_effort": "huge"}, "reasoning_effort", id="effort"),
        pytest.param("q", {"cache": 1}, "cache must be", id="cache"),
        pytest.param([Message("user", "q"), Message("assistant", "a")], {}, "last message", id="ends-with-assistant"),
        pytest.param([{"role": "developer", "content": "x"}], {}, "'tool'", id="unknown-role"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_saying_what_to_fix(messages: Any, options: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidRequestError, match=None) as caught:
        build_request(messages, options)
    assert says in str(caught.value)


def test_tools_from_functions_and_openai_dicts() -> None:
    def get_time(zone: str, precise: bool = False) -> str:
        """The time in a zone.

        Longer text that is not the description.
        """
        return zone

    openai_tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    request = build_request("q", {"tools": [get_time, openai_tool, WEATHER], "tool_choice": "required"})
    made, looked, weather = request.tools
    assert (made.name, made.description) == ("get_time", "The time in a zone.")
    assert made.parameters["required"] == ["zone"]
    assert made.parameters["properties"]["precise"] == {"default": False, "type": "boolean"}
    assert (looked.name, looked.parameters) == ("lookup", {"type": "object"})
    assert weather is WEATHER
    assert request.tool_choice == "required"


def test_parallel_tool_calls_is_dropped_without_tools() -> None:
    assert build_request("q", {"parallel_tool_calls": False}).parallel_tool_calls is None
    assert build_request("q", {"tools": [WEATHER], "parallel_tool_calls": False}).parallel_tool_calls is False


def test_a_tool_from_a_function_with_an_unschemable_parameter_is_refused() -> None:
    def f(x: NotJSON) -> None:
        """F."""

    with pytest.raises(InvalidRequestError, match="JSON Schema"):
        Tool.from_function(f)


def test_finish_reasons_are_normalised() -> None:
    pairs = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
             "refusal": "refusal", "stop": "stop", "length": "length", "tool_calls": "tool_calls",
             "content_filter": "content_filter", "pause_turn": "other", "model_context_window_exceeded": "length"}  # fmt: skip
    assert {raw: normalise_finish_reason(raw) for raw in pairs} == pairs
    assert normalise_finish_reason(None) is None


def _delta(index: int, **fields: Any) -> StreamChunk:
    return StreamChunk("", "p", "m", tool_call=ToolCallDelta(index, **fields))


def test_assemble_puts_tool_calls_and_reasoning_together() -> None:
    call = ToolCall("c2", "g", {"y": 2})
    chunks = [
        StreamChunk("", "p", "m", reasoning="thinking "),
        StreamChunk("", "p", "m", reasoning="more"),
        StreamChunk("", "p", "m", reasoning_part=ReasoningPart("thinking more", "sig", provider="p")),
        _delta(0, id="c1", name="f"),
        _delta(0, arguments='{"x"'),
        _delta(0, arguments=": 1}"),
        _delta(1, id="c2", name="g", arguments='{"y": 2}'),
        _delta(1, done=True, call=call),
        StreamChunk("", "p", "m", finish_reason="tool_calls", raw_finish_reason="tool_use", provider_request_id="r1"),
    ]
    assembled = assemble(chunks)
    assert assembled.tool_calls == (ToolCall("c1", "f", {"x": 1}), call)
    assert assembled.reasoning == "thinking more"
    assert assembled.reasoning_parts == (ReasoningPart("thinking more", "sig", provider="p"),)
    assert (assembled.raw_finish_reason, assembled.provider_request_id) == ("tool_use", "r1")


def test_to_message_keeps_reasoning_first_then_text_and_calls() -> None:
    part = ReasoningPart("hmm", "sig", provider="anthropic")
    call = ToolCall("c1", "f", {})
    response = LLMResponse("Let me look.", "m", tool_calls=(call,), reasoning="hmm", reasoning_parts=(part,))
    assert response.to_message() == Message("assistant", (part, TextPart("Let me look.")), tool_calls=(call,))
    assert LLMResponse("plain", "m").to_message() == Message("assistant", "plain")


def test_tool_call_deltas_are_progress_and_text_chunks_stay_plain() -> None:
    assert is_progress(_delta(0, id="c1", name="f"))
    assert not is_progress(StreamChunk("", "p", "m", finish_reason="stop"))
    assert content_chunk("hi", "p", "m", 3) == StreamChunk("hi", "p", "m", 3)


def test_a_chunks_rare_fields_survive_copying_and_show_in_its_repr() -> None:
    import dataclasses
    import pickle

    chunk = StreamChunk("", "p", "m", 2, "tool_calls", raw_finish_reason="tool_use", provider_request_id="req_1")
    assert pickle.loads(pickle.dumps(chunk)) == chunk
    assert dataclasses.replace(chunk, index=3).raw_finish_reason == "tool_use"
    assert repr(chunk) == (
        "StreamChunk(text='', provider='p', model='m', index=2, finish_reason='tool_calls', "
        "raw_finish_reason='tool_use', provider_request_id='req_1')"
    )
    assert StreamChunk("a", "p", "m").extras is None


def test_a_text_message_built_for_speed_is_the_constructors() -> None:
    from llmcomm._messages import text_message

    built = text_message("user", "hi", "ann")
    assert built == Message("user", "hi", "ann")
    assert type(built) is Message and hash(built) == hash(Message("user", "hi", "ann"))
    assert build_request([{"role": "user", "content": "hi"}], {}).messages == (Message("user", "hi"),)
