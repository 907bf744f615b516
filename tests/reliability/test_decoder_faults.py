"""Bytes as the network delivers them: multi-byte characters split anywhere, and one 16 MiB event.

The decoders are fed every split of a multi-byte event; the 16 MiB event goes
end to end through the real SDK clients, from a fake server in a child process so
that the memory measured is the client's alone.
"""

from __future__ import annotations

import gc
import itertools
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator

import anyio
import orjson
import pytest
from anyio.abc import Process
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcomm import LLMCommunication, ProviderConfig, ProviderUnavailableError
from llmcomm._wire._sse import DEFAULT_MAX_EVENT_BYTES, JSONLinesDecoder, OversizedMessageError, SSEDecoder

from ..helpers import config
from ..wire_events import ANTHROPIC, OPENAI, decode, text_of
from ._support import CANARIES

MiB = 1024 * 1024
TEXT = "é 你好 🎉 ∑"  # characters of two, three and four UTF-8 bytes
PAYLOAD = orjson.dumps({"type": "content_block_delta", "delta": {"type": "text_delta", "text": TEXT}})
EVENT = b"event: content_block_delta\ndata: " + PAYLOAD + b"\n\n"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_sse_event_split_at_every_pair_of_byte_boundaries(newline: bytes) -> None:
    raw = EVENT.replace(b"\n", newline)
    for first, second in itertools.combinations(range(len(raw) + 1), 2):
        decoder = SSEDecoder()
        events = decoder.feed_data(raw[:first]) + decoder.feed_data(raw[first:second]) + decoder.feed_data(raw[second:])
        assert events == [PAYLOAD], (first, second)
    assert orjson.loads(PAYLOAD)["delta"]["text"] == TEXT


def test_an_empty_read_between_cr_and_lf_changes_nothing() -> None:
    raw = EVENT.replace(b"\n", b"\r\n")
    cut = raw.index(b"\r") + 1
    decoder = SSEDecoder()
    events = decoder.feed_data(raw[:cut]) + decoder.feed_data(b"") + decoder.feed_data(raw[cut:])
    assert events == [PAYLOAD]


def test_sse_events_fed_one_byte_at_a_time() -> None:
    decoder = SSEDecoder()
    raw = EVENT * 3 + b": keep-alive\n\n" + EVENT
    events = [event for index in range(len(raw)) for event in decoder.feed_data(raw[index : index + 1])]
    assert events == [PAYLOAD] * 4


def test_json_line_split_at_every_byte_boundary() -> None:
    line = orjson.dumps({"type": "stream_event", "event": {"delta": {"text": TEXT}}})
    raw = line + b"\n"
    for cut in range(len(raw) + 1):
        decoder = JSONLinesDecoder()
        assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.flush() == [line], cut


def test_an_oversized_event_is_refused_at_the_bound_and_forgotten() -> None:
    decoder = SSEDecoder()
    piece = b"x" * (64 * 1024)
    fed = 0
    with pytest.raises(OversizedMessageError):
        decoder.feed_data(b"data: ")
        for _ in range(16 * MiB // len(piece)):
            decoder.feed_data(piece)
            fed += len(piece)
    assert DEFAULT_MAX_EVENT_BYTES - len(piece) <= fed <= DEFAULT_MAX_EVENT_BYTES  # refused as soon as it passed 4 MiB
    assert decoder.feed_data(EVENT) == [PAYLOAD]  # and the decoder can go on


def _utf16_literal(units: list[int]) -> bytes:
    """A JSON string's inside for UTF-16 code units: ASCII as is, everything else escaped."""
    return b"".join(bytes([u]) if 0x20 <= u < 0x7F and u not in (0x22, 0x5C) else b"\\u%04x" % u for u in units)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6),
    read=st.integers(min_value=1, max_value=64),
)
def test_text_cut_between_utf16_code_units_comes_back_whole(text: str, cuts: list[int], read: int) -> None:
    """Servers that cut text by UTF-16 index put the halves of one character in two events."""
    raw = text.encode("utf-16-le")
    units = [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]
    bounds = sorted({min(cut, len(units)) for cut in cuts} | {0, len(units)})
    for wire in (ANTHROPIC, OPENAI):
        events = b"".join(wire.text_literal(_utf16_literal(units[a:b])) for a, b in itertools.pairwise(bounds))
        body = wire.start + events + wire.finish + wire.marker
        assert text_of(decode(wire.decoder(), body, read)) == text, wire.name


# A fake server in its own process: its copy of the 16 MiB body is not the client's memory.
_SERVER = """
import sys
import anyio
from llmcomm.testing import FakeServer, Script

async def main() -> None:
    body = b"data: " + b"x" * int(sys.argv[1])
    async with FakeServer(default=Script(body_override=body, content_type="text/event-stream")) as server:
        server.route(model="small", script=Script(text="warm"))
        print(server.port, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def _serve(size: int) -> AsyncIterator[int]:
    process: Process = await anyio.open_process(
        [sys.executable, "-c", _SERVER, str(size)], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(15):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive()
        yield int(line)
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


@pytest.mark.anyio
async def test_one_16_mib_event_is_a_typed_error_in_bounded_memory() -> None:
    async for port in _serve(16 * MiB):
        origin = f"http://127.0.0.1:{port}"
        providers = [
            ProviderConfig(name="anthropic", kind="anthropic", base_url=origin, api_key=CANARIES["anthropic"]),
            ProviderConfig(name="openai", kind="openai", base_url=f"{origin}/v1", api_key=CANARIES["openai"]),
        ]
        async with LLMCommunication(config(*providers)) as llm:
            for name in ("anthropic", "openai"):
                assert await llm.generate_text("hi", provider=name, model="small") == "warm"
                gc.collect()
                tracemalloc.start()
                try:
                    started = time.monotonic()
                    with pytest.raises(ProviderUnavailableError, match="malformed") as caught:
                        await llm.generate_text("hi", provider=name)
                    elapsed = time.monotonic() - started
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert isinstance(caught.value.__cause__, OversizedMessageError)
                assert not caught.value.retryable
                assert elapsed < 5.0
                # Bounded by the decoder's 4 MiB bound, far below the event: it is never held whole.
                assert peak < 16 * MiB, f"{name}: peak {peak / MiB:.1f} MiB"
