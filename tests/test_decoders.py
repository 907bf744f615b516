"""The sans-I/O decoders, byte by byte."""

from __future__ import annotations

import pytest

from llmcomm._decoders import JSONLinesDecoder, OversizedMessageError, SSEDecoder

STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b": keep-alive comment\n\n"
    b"event: ping\ndata: {}\n\n"
    b'data: {"text": "h\xc3\xa9llo \xf0\x9f\x8e\x89"}\n\n'
    b"data: line one\ndata: line two\n\n"
    b"event: no-data\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    ("ping", b"{}"),
    (None, b'{"text": "h\xc3\xa9llo \xf0\x9f\x8e\x89"}'),
    (None, b"line one\nline two"),
    (None, b"[DONE]"),
]


def feed_in_pieces(decoder: SSEDecoder, data: bytes, size: int) -> list[tuple[str | None, bytes]]:
    events = []
    for start in range(0, len(data), size):
        events += decoder.feed(data[start : start + size])
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_sse_any_split(size: int) -> None:
    assert feed_in_pieces(SSEDecoder(), STREAM, size) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_sse_feed_data_is_feed_without_names(size: int) -> None:
    decoder = SSEDecoder()
    payloads: list[bytes] = []
    for start in range(0, len(STREAM), size):
        payloads += decoder.feed_data(STREAM[start : start + size])
    assert payloads == [data for _, data in EXPECTED]


@pytest.mark.parametrize("size", [1, 2, 5, 10_000])
def test_sse_crlf_and_cr_line_endings(size: int) -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert feed_in_pieces(SSEDecoder(), crlf, size) == EXPECTED
    cr = STREAM.replace(b"\n", b"\r")
    assert feed_in_pieces(SSEDecoder(), cr, size) == EXPECTED


def test_sse_unterminated_event_is_bounded() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed(b"data: " + b"x" * 1000)
    with pytest.raises(OversizedMessageError):
        decoder.feed(b"x" * 100)


def test_sse_no_space_after_colon() -> None:
    assert SSEDecoder().feed(b"event:x\ndata:{}\n\n") == [("x", b"{}")]


@pytest.mark.parametrize("size", [1, 4, 10_000])
def test_json_lines(size: int) -> None:
    data = b'{"a": 1}\n\n  \n{"b": "\xc3\xa9"}\ngarbage\n{"c": 3}'
    decoder = JSONLinesDecoder()
    lines: list[bytes] = []
    for start in range(0, len(data), size):
        lines += decoder.feed(data[start : start + size])
    lines += decoder.flush()
    assert lines == [b'{"a": 1}', b'{"b": "\xc3\xa9"}', b"garbage", b'{"c": 3}']


def test_json_lines_bounded() -> None:
    decoder = JSONLinesDecoder(max_line_bytes=100)
    with pytest.raises(OversizedMessageError):
        decoder.feed(b"y" * 101)
    with pytest.raises(OversizedMessageError):
        JSONLinesDecoder(max_line_bytes=100).feed(b"z" * 200 + b"\n")
