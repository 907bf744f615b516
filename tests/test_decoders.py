"""The sans-I/O decoders, byte by byte."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcomm._wire._sse import JSONLinesDecoder, OversizedMessageError, SSEDecoder

from .sse_reference import events, payloads

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


def feed_in_pieces(decoder: SSEDecoder, data: bytes, size: int) -> list[bytes]:
    found: list[bytes] = []
    for start in range(0, len(data), size):
        found += decoder.feed_data(data[start : start + size])
    return found


def test_the_reference_reads_the_stream_as_expected() -> None:
    assert events(STREAM) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_sse_any_split(size: int) -> None:
    assert feed_in_pieces(SSEDecoder(), STREAM, size) == [data for _, data in EXPECTED]


@pytest.mark.parametrize("size", [1, 2, 5, 10_000])
def test_sse_crlf_and_cr_line_endings(size: int) -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert feed_in_pieces(SSEDecoder(), crlf, size) == [data for _, data in EXPECTED]
    cr = STREAM.replace(b"\n", b"\r")
    assert feed_in_pieces(SSEDecoder(), cr, size) == [data for _, data in EXPECTED]


def test_sse_unterminated_event_is_bounded() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed_data(b"data: " + b"x" * 1000)
    with pytest.raises(OversizedMessageError):
        decoder.feed_data(b"x" * 100)


def test_sse_no_space_after_colon() -> None:
    assert SSEDecoder().feed_data(b"event:x\ndata:{}\n\n") == [b"{}"]


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


# Pieces of event streams: the two shapes the fast paths take whole (`data:` lines,
# and `event:` + `data:`), and everything that must send a read down the general path.
_PIECES = [
    b'data: {"a":1}\n\n',
    b"data: \n\n",
    b"data:  two spaces\n\n",
    b'event: content_block_delta\ndata: {"b":2}\n\n',
    b"event: \ndata: \n\n",
    b"event: x\n",
    b"data: x\n",
    b"data:x\n\n",
    b": comment\n\n",
    b"id: 7\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"data: [DONE]\n\n",
    b"\xc3\xa9",
    b"data:\n\n",
    b"event: x\ndata: \n\n",
    b"error: boom\n\n",
    b"retry: 10\n\n",
    b"\xef\xbb\xbf",
]


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_sse_feed_data_matches_the_rules_on_any_stream_and_any_split(pieces: list[bytes], cuts: list[int]) -> None:
    """The fast paths of `feed_data`, over any split of any stream, dispatch what the rules do."""
    stream = b"".join(pieces)
    bounds = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    decoder = SSEDecoder()
    found: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        found += decoder.feed_data(stream[start:end])
    found += decoder.feed_data(b"\n\n")
    assert found == payloads(stream + b"\n\n")


def test_sse_fast_paths_take_whole_reads() -> None:
    openai = b"".join(b'data: {"i":%d}\n\n' % i for i in range(100))
    assert SSEDecoder().feed_data(openai + b"data: {") == [b'{"i":%d}' % i for i in range(100)]
    anthropic = b"".join(b'event: content_block_delta\ndata: {"i":%d}\n\n' % i for i in range(100))
    assert SSEDecoder().feed_data(anthropic) == [b'{"i":%d}' % i for i in range(100)]
