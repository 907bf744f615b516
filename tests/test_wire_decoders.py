"""The per-wire event decoders, without sockets: every kind of input on both wires.

Each table row is run on the Anthropic and the OpenAI wire (what one handles, the
other is checked for) and with the body fed whole, one byte at a time and in
7-byte reads, since a real body arrives cut anywhere. Usage and whole JSON
replies: tests/test_wire_usage.py.
"""

from __future__ import annotations

import orjson
import pytest

from llmcomm._types import is_progress
from llmcomm._wire._decoder import IncompleteStreamError, MalformedEventError, WireError

from .wire_events import (
    ANTHROPIC,
    OPENAI,
    SPLITS,
    WIRES,
    Wire,
    anthropic_event,
    decode,
    openai_choice,
    sse,
    text_of,
)

# -- framing and completeness --------------------------------------------------------


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "after",
    [
        pytest.param(b"data: [DONE]\n\n", id="done-sentinel"),
        pytest.param(b"data: {not json\n\n", id="garbage"),
        pytest.param(b'data: {"error": {"message": "late"}}\n\n', id="late-error"),
        pytest.param(b"TEXT", id="more-text"),
    ],
)
def test_nothing_after_the_terminal_event_is_decoded(wire: Wire, size: int | None, after: bytes) -> None:
    after = wire.text(" extra") if after == b"TEXT" else after
    body = wire.start + wire.text("Hello") + wire.text(" world") + wire.finish + wire.marker + after
    decoder = wire.decoder()
    chunks = decode(decoder, body, size)
    assert text_of(chunks) == "Hello world"
    assert chunks[-1].finish_reason is not None
    assert decoder.feed(wire.text("later")) == []  # and nothing in a later read either


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
def test_a_finish_reason_without_the_terminal_marker_is_a_complete_reply(wire: Wire, size: int | None) -> None:
    chunks = decode(wire.decoder(), wire.start + wire.text("Hello") + wire.finish, size)
    assert text_of(chunks) == "Hello"
    closing = chunks[-1]
    assert closing.finish_reason in ("end_turn", "stop")
    assert closing.usage is not None and closing.usage.completion_tokens == 3


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("parts", "match"),
    [
        pytest.param(("start", "text"), "ended before", id="text-then-eof"),
        pytest.param(("start",), "ended before", id="opening-only"),
        pytest.param((), "ended before", id="empty-body"),
        pytest.param(("start", "marker"), "neither content nor a finish reason", id="marker-only"),
        pytest.param(("marker",), "neither content nor a finish reason", id="bare-marker"),
    ],
)
def test_an_incomplete_or_empty_stream_is_a_failure(wire: Wire, parts: tuple[str, ...], match: str) -> None:
    pieces = {"start": wire.start, "text": wire.text("Hel"), "marker": wire.marker}
    with pytest.raises(IncompleteStreamError, match=match):
        decode(wire.decoder(), b"".join(pieces[p] for p in parts))


@pytest.mark.parametrize("wire", WIRES)
def test_content_and_the_marker_without_a_finish_reason_is_a_reply(wire: Wire) -> None:
    chunks = decode(wire.decoder(), wire.start + wire.text("Hi") + wire.marker)
    assert (text_of(chunks), chunks[-1].finish_reason) == ("Hi", None)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("field", "status", "detail"),
    [
        pytest.param(b'error: {"code":400,"message":"exceeds the context size"}\n\n', 400, "context size", id="json"),
        pytest.param(b'error: {"error":{"type":"overloaded_error","message":"busy"}}\n\n', None, "busy", id="nested"),
        pytest.param(b"error: upstream timed out\n\n", None, "upstream timed out", id="plain-text"),
    ],
)
def test_an_error_outside_the_event_data_is_the_failure_of_an_empty_stream(
    wire: Wire, field: bytes, status: int | None, detail: str
) -> None:
    with pytest.raises(WireError) as caught:
        decode(wire.decoder(), field + wire.marker)
    assert caught.value.status == status
    assert detail in caught.value.detail
    assert "outside the event data" in caught.value.detail


@pytest.mark.parametrize("wire", WIRES)
def test_an_error_field_does_not_undo_a_finished_reply(wire: Wire) -> None:
    chunks = decode(wire.decoder(), wire.start + wire.text("ok") + b"error: late\n\n" + wire.finish + wire.marker)
    assert text_of(chunks) == "ok"


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"data:\n\n", id="bare-data"),
        pytest.param(b"data: \n\n", id="data-space"),
        pytest.param(b"event: ping\ndata: \n\n", id="named-empty"),
        pytest.param(b"retry: 3000\n\n", id="retry-only"),
        pytest.param(b"id: 7\n\n", id="id-only"),
        pytest.param(b": keep-alive\n\n", id="comment"),
        pytest.param(b"data: \n\ndata:\n\n", id="two-empty"),
    ],
)
def test_frames_without_a_payload_are_skipped(wire: Wire, size: int | None, frame: bytes) -> None:
    body = wire.start + wire.text("Hello") + frame + wire.text(" world") + frame + wire.finish + wire.marker
    assert text_of(decode(wire.decoder(), body, size)) == "Hello world"


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
def test_a_leading_byte_order_mark_loses_nothing(wire: Wire, size: int | None) -> None:
    body = b"\xef\xbb\xbf" + wire.text("Hello") + wire.text(" world") + wire.finish + wire.marker
    assert text_of(decode(wire.decoder(), body, size)) == "Hello world"


# -- decoding ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("literals", "expected"),
    [
        pytest.param((b"Hi \\ud83d", b"\\ude00!"), "Hi \U0001f600!", id="pair-split-across-events"),
        pytest.param((b"A\\udcafB",), "A\ufffdB", id="lone-low"),
        pytest.param((b"end\\ud83d",), "end\ufffd", id="lone-high-at-the-end"),
        pytest.param((b"x\\ud83d", b"TEXT"), "x\ufffdy", id="lone-high-then-plain-text"),
        pytest.param((b"\\ud83d\\ude00",), "\U0001f600", id="pair-in-one-event"),
        pytest.param((b"\\ud83d", b"\\ud83d\\ude00"), "\ufffd\U0001f600", id="high-then-pair"),
        pytest.param((b"a\xffb",), "a\ufffdb", id="invalid-utf8"),
        pytest.param((b"caf\xc3\xa9 \\u00e9",), "café é", id="plain-escapes"),
    ],
)
def test_surrogate_escapes_and_bad_bytes_are_repaired(
    wire: Wire, size: int | None, literals: tuple[bytes, ...], expected: str
) -> None:
    events = b"".join(wire.text("y") if raw == b"TEXT" else wire.text_literal(raw) for raw in literals)
    chunks = decode(wire.decoder(), wire.start + events + wire.finish + wire.marker, size)
    assert text_of(chunks) == expected
    assert [c.index for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("wire", WIRES)
def test_an_event_that_is_not_json_at_all_is_still_an_error(wire: Wire) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decode(wire.decoder(), wire.start + b'data: {"type": "content_block_delta", "delta": {\n\n' + wire.marker)


@pytest.mark.parametrize("wire", WIRES)
def test_text_before_a_bad_event_in_the_same_read_is_handed_on_first(wire: Wire) -> None:
    decoder = wire.decoder()
    batch = decoder.feed(wire.start + wire.text("kept") + b"data: {bad\n\n" + wire.text("lost"))
    assert text_of(batch) == "kept"
    assert isinstance(decoder.failure, orjson.JSONDecodeError)
    assert decoder.feed(wire.text("after")) == []


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"5", MalformedEventError, id="number"),
        pytest.param(b"true", MalformedEventError, id="bool"),
        pytest.param(b'{"text": "x"}', MalformedEventError, id="object"),
        pytest.param(b"null", "", id="null"),
        pytest.param(b'""', "", id="empty"),
    ],
)
def test_a_text_field_of_the_wrong_type_is_a_malformed_event(
    wire: Wire, value: bytes, expected: type[Exception] | str
) -> None:
    body = wire.start + wire.text("a") + wire.text_value(value) + wire.finish + wire.marker
    if isinstance(expected, str):
        assert text_of(decode(wire.decoder(), body)) == "a" + expected
    else:
        with pytest.raises(expected):
            decode(wire.decoder(), body)


def test_openai_content_as_a_list_of_parts_is_joined() -> None:
    parts = b'[{"type":"text","text":"2 + "},{"type":"text","text":"2"}]'
    thinking = b'[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},{"type":"text","text":" = 4"}]'
    body = OPENAI.text_value(parts) + OPENAI.text_value(thinking) + OPENAI.finish + OPENAI.marker
    chunks = decode(OPENAI.decoder(), body)
    assert text_of(chunks) == "2 + 2 = 4"
    assert "".join(c.reasoning for c in chunks) == "hmm"


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(b'["text"]', id="part-not-an-object"),
        pytest.param(b'[{"type":"text","text":7}]', id="text-not-str"),
    ],
)
def test_openai_bad_content_parts_are_malformed(parts: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode(OPENAI.decoder(), OPENAI.text_value(parts) + OPENAI.marker)


def test_anthropic_content_as_a_list_is_malformed() -> None:
    # The Messages API defines text deltas as strings: a list there is not Anthropic's wire.
    with pytest.raises(MalformedEventError):
        decode(ANTHROPIC.decoder(), ANTHROPIC.text_value(b'[{"type":"text","text":"x"}]') + ANTHROPIC.marker)


def test_openai_only_choice_zero_is_the_reply() -> None:
    words = {0: ["Paris", " is", " big"], 1: ["Lyon", " is", " old"], 2: ["Nice", " is", " warm"]}
    body = b"".join(
        openai_choice({"content": words[i][step]}, "stop" if step == 2 else None, index=i)
        for step in range(3)
        for i in range(3)
    )
    chunks = decode(OPENAI.decoder(), body + OPENAI.marker)
    assert text_of(chunks) == "Paris is big"
    assert chunks[-1].finish_reason == "stop"
    # Several choices in one chunk: the same rule.
    multi = sse({"choices": [{"index": 1, "delta": {"content": "B"}}, {"index": 0, "delta": {"content": "A"}}]})
    assert text_of(decode(OPENAI.decoder(), multi + OPENAI.finish)) == "A"


def test_openai_a_lone_choice_other_than_zero_is_not_the_reply() -> None:
    body = openai_choice({"content": "other"}, index=1) + openai_choice({}, "stop", index=1) + OPENAI.marker
    with pytest.raises(IncompleteStreamError, match="neither content"):
        decode(OPENAI.decoder(), body)


@pytest.mark.parametrize("size", SPLITS)
@pytest.mark.parametrize("wire", WIRES)
def test_reasoning_deltas_are_reasoning_chunks(wire: Wire, size: int | None) -> None:
    body = wire.start + wire.reasoning("Let me think. ") + wire.reasoning("Done.") + wire.text("42") + wire.finish
    chunks = decode(wire.decoder(), body + wire.marker, size)
    assert [(c.text, c.reasoning) for c in chunks if is_progress(c)] == [
        ("", "Let me think. "),
        ("", "Done."),
        ("42", ""),
    ]
    assert [c.index for c in chunks] == [0, 1, 2, 3]


def test_anthropic_signatures_and_tool_input_are_not_chunks() -> None:
    signature = anthropic_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}
    )
    tool = anthropic_event(
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    )
    chunks = decode(ANTHROPIC.decoder(), ANTHROPIC.start + signature + tool + ANTHROPIC.finish + ANTHROPIC.marker)
    assert [c for c in chunks if is_progress(c)] == []


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_openai_reasoning_fields(field: str) -> None:
    body = openai_choice({field: "thinking"}) + OPENAI.text("answer") + OPENAI.finish + OPENAI.marker
    chunks = decode(OPENAI.decoder(), body)
    assert ("".join(c.reasoning for c in chunks), text_of(chunks)) == ("thinking", "answer")


@pytest.mark.parametrize(
    ("wire", "kind", "status"),
    [
        pytest.param(ANTHROPIC, "overloaded_error", None, id="anthropic"),
        pytest.param(OPENAI, "server_error", None, id="openai"),
    ],
)
def test_an_error_event_in_the_stream_is_a_wire_error(wire: Wire, kind: str, status: int | None) -> None:
    decoder = wire.decoder()
    batch = decoder.feed(wire.start + wire.text("partial") + wire.error + wire.text("never"))
    assert text_of(batch) == "partial"
    assert isinstance(decoder.failure, WireError)
    assert (decoder.failure.kind, decoder.failure.status) == (kind, status)
    assert "Overloaded" in decoder.failure.detail


def test_an_openai_error_with_a_status_code_keeps_it() -> None:
    with pytest.raises(WireError) as caught:
        decode(OPENAI.decoder(), sse({"error": {"message": "slow down", "type": "requests", "code": 429}}))
    assert (caught.value.status, caught.value.code) == (429, None)
    with pytest.raises(WireError) as caught:
        decode(OPENAI.decoder(), sse({"error": {"message": "no credit", "type": "x", "code": "insufficient_quota"}}))
    assert (caught.value.status, caught.value.code) == (None, "insufficient_quota")


@pytest.mark.parametrize(
    "delta",
    [
        pytest.param({"content": "x", "reasoning_content": None}, id="deepseek-null-reasoning"),
        pytest.param({"role": "assistant", "content": "x"}, id="ollama-role-every-chunk"),
        pytest.param({"content": "x", "refusal": None, "tool_calls": None}, id="null-fields"),
    ],
)
def test_openai_deltas_with_more_fields_than_content(delta: dict[str, object]) -> None:
    body = openai_choice(delta) * 3 + OPENAI.finish + OPENAI.marker
    chunks = decode(OPENAI.decoder(), body)
    assert [(c.text, c.reasoning, c.index) for c in chunks if is_progress(c)] == [
        ("x", "", 0),
        ("x", "", 1),
        ("x", "", 2),
    ]
