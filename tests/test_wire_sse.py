"""SSE framing as the WHATWG rules put it: a leading byte-order mark, empty data, unknown fields."""

from __future__ import annotations

import itertools

import pytest

from llmcomm._wire._sse import SSEDecoder

from .sse_reference import payloads

BOM = b"\xef\xbb\xbf"
EVENTS = b'data: {"a":1}\n\ndata: {"b":2}\n\n'
NAMED = b'event: x\ndata: {"a":1}\n\nevent: y\ndata: {"b":2}\n\n'
PAYLOADS = [b'{"a":1}', b'{"b":2}']


def feed_data_in_pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    decoder = SSEDecoder()
    payloads: list[bytes] = []
    bounds = [0, *cuts, len(data)]
    for start, end in itertools.pairwise(bounds):
        payloads += decoder.feed_data(data[start:end])
    return payloads


@pytest.mark.parametrize("body", [EVENTS, NAMED], ids=["data-lines", "named-events"])
def test_a_leading_bom_is_skipped_wherever_the_first_read_ends(body: bytes) -> None:
    stream = BOM + body
    for cut in range(len(stream) + 1):
        assert feed_data_in_pieces(stream, [cut]) == PAYLOADS, cut
    for first, second in ((1, 2), (0, 1), (2, 3), (1, 5)):
        assert feed_data_in_pieces(stream, [first, second]) == PAYLOADS
    decoder = SSEDecoder()
    assert decoder.feed_data(BOM[:1]) + decoder.feed_data(BOM[1:] + body) == PAYLOADS


def test_a_bom_after_empty_reads_is_still_the_leading_one() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_data(b"") == []
    assert decoder.feed_data(BOM[:2]) == []
    assert decoder.feed_data(b"") == []
    assert decoder.feed_data(BOM[2:] + EVENTS) == PAYLOADS


def test_only_one_leading_bom_is_skipped() -> None:
    # A second mark, or one later in the stream, is content (the standard strips one).
    assert SSEDecoder().feed_data(BOM + b"data: " + BOM + b"x\n\n") == [BOM + b"x"]
    assert SSEDecoder().feed_data(b"data: x\n\n" + BOM + b"data: y\n\n") == [b"x"]


def test_bytes_that_only_start_like_a_bom_are_kept() -> None:
    assert SSEDecoder().feed_data(b"\xef\xbbdata: x\n\ndata: y\n\n") == [b"y"]
    assert SSEDecoder().feed_data(b"data: \xef\n\n") == [b"\xef"]


@pytest.mark.parametrize(
    "frame",
    [
        b"data:\n\n",
        b"data: \n\n",
        b"event: ping\ndata:\n\n",
        b"event: ping\ndata: \n\n",
        b"data:\r\n\r\n",
        b"id: 1\n\n",
    ],
)
@pytest.mark.parametrize("body", [EVENTS, NAMED], ids=["data-lines", "named-events"])
def test_an_event_with_empty_data_is_not_dispatched(frame: bytes, body: bytes) -> None:
    first, _, rest = body.partition(b"\n\n")
    stream = first + b"\n\n" + frame + rest
    assert SSEDecoder().feed_data(stream) == PAYLOADS
    assert payloads(stream) == PAYLOADS  # the plain reading of the rules agrees
    assert SSEDecoder().feed_data(frame * 3) == []


def test_two_empty_data_lines_are_one_newline_of_data() -> None:
    # The standard joins data lines with a newline: two empty lines make "\n", which is dispatched.
    assert SSEDecoder().feed_data(b"data:\ndata:\n\n") == [b"\n"]


def test_an_error_field_is_kept_aside_and_bounded() -> None:
    assert SSEDecoder().error_field is None
    decoder = SSEDecoder()
    assert decoder.feed_data(b'error: {"code":400,"message":"too long"}\n\ndata: [DONE]\n\n') == [b"[DONE]"]
    assert decoder.error_field == b'{"code":400,"message":"too long"}'
    decoder.feed_data(b"error: " + b"x" * 10_000 + b"\n\n")
    assert decoder.error_field == b"x" * 4096
    assert SSEDecoder().feed_data(b"data: fine\n\n") == [b"fine"]
