"""Anthropic Messages events into chunks: a sans-I/O state machine.

Events: `message_start` (model, first usage), `content_block_start`,
`content_block_delta` (`text_delta` -> text, `thinking_delta` -> reasoning,
`input_json_delta` -> a tool-call delta, `signature_delta` kept for the
thinking block), `content_block_stop` (a tool call's closing delta with the
parsed call; a thinking or redacted_thinking block as one `ReasoningPart`),
`message_delta` (stop reason and the final, cumulative usage), `message_stop`
(terminal), `ping`, `error`.
"""

from __future__ import annotations

from typing import Any, final

import orjson

from .._messages import ReasoningPart
from .._types import ChunkBatch, UsageInfo, content_chunk
from ._calls import ToolCallState
from ._decoder import DONE, Append, MalformedEventError, StreamDecoder, as_text, count, lenient_loads, wire_error
from ._sse import DEFAULT_MAX_EVENT_BYTES

# Each may be restated by a later event; the last value reported is the count.
_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@final
class AnthropicDecoder(StreamDecoder):
    """Decodes one Messages stream (or a whole Message body) into chunks."""

    __slots__ = ("_calls", "_counts", "_thinking")

    terminal = "message_stop"

    def __init__(self, provider: str, model: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(provider, model, max_event_bytes)
        self._counts: dict[str, int] = {}
        self._calls = ToolCallState()
        # block index -> [thinking text so far, signature, redacted data] of an open thinking block
        self._thinking: dict[object, list[str | None]] = {}

    def feed(self, data: bytes) -> ChunkBatch:
        """The chunks one network read completes (see `StreamDecoder`)."""
        batch: ChunkBatch = []
        if self.finished or self.failure is not None:
            return batch
        append = batch.append
        loads = orjson.loads
        name = self.provider
        model = self.model
        index = self.index
        slow = bool(self._held)  # while a surrogate half waits, every event takes the careful path
        try:
            for payload in self._sse.feed_data(data):
                try:
                    event = loads(payload)
                except orjson.JSONDecodeError as exc:
                    if payload == DONE:  # a proxy's OpenAI-style sentinel
                        self.finished = True
                        break
                    event = lenient_loads(payload, exc)
                    if event is None:
                        continue
                    slow = True
                # The per-token path, a text delta, inline; everything else through _handle().
                if (
                    not slow
                    and event.get("type") == "content_block_delta"
                    and (text := event["delta"].get("text"))
                    and text.__class__ is str
                ):
                    append(content_chunk(text, name, model, index))
                    index += 1
                    continue
                self.index = index
                stop = self._handle(event, append, slow)
                index = self.index
                if stop:  # nothing after the terminal event is decoded, in this read or later
                    break
                model = self.model
                slow = bool(self._held)
        except Exception as exc:
            self.index = index
            if not batch:
                raise
            self.failure = exc  # the text before the bad event still reaches the consumer
            return batch
        self.index = index
        return batch

    def _handle(self, event: dict[str, Any], append: Append, repair: bool) -> bool:
        """Decode one event; True when it is the terminal event."""
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event["delta"]
            if not isinstance(delta, dict):
                raise MalformedEventError(f"a content_block_delta's delta is a {type(delta).__name__}")
            delta_kind = delta.get("type")
            if delta_kind == "input_json_delta":
                self._piece(append, self._calls.piece(event.get("index"), None, None, delta.get("partial_json")))
            elif delta_kind == "signature_delta":
                if (block := self._thinking.get(event.get("index"))) is not None:
                    block[1] = (block[1] or "") + as_text(delta.get("signature"), "delta.signature")
            else:
                text = as_text(delta.get("text"), "delta.text")
                thinking = as_text(delta.get("thinking"), "delta.thinking")
                if thinking and (block := self._thinking.get(event.get("index"))) is not None:
                    block[0] = (block[0] or "") + thinking
                self._emit(append, text, thinking, repair)
        elif kind == "ping":
            if self._thinking:  # inside an open thinking block a ping says the model is thinking
                self.thinking_alive = True
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict):
                self._start_block(event.get("index"), block, append, repair)
        elif kind == "content_block_stop":
            key = event.get("index")
            self._piece(append, self._calls.done(key))
            if (thought := self._thinking.pop(key, None)) is not None:
                said, signature, redacted = thought
                self._piece(append, part=ReasoningPart(said or "", signature, redacted, self.provider))
        elif kind == "message_start":
            message = event["message"]
            model = message.get("model")
            if isinstance(model, str) and model:
                self.model = model
            self._count(message.get("usage"))
        elif kind == "message_delta":
            delta = event.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if reason:
                self._finish(reason)
            self._count(event.get("usage"))
        elif kind == "message_stop":
            self.finished = True
            return True
        elif kind == "error" or event.get("error"):
            raise wire_error(event)
        return False

    def _start_block(self, key: object, block: dict[str, Any], append: Append, repair: bool) -> None:
        kind = block.get("type")
        if kind == "tool_use":
            self._piece(append, self._calls.piece(key, block.get("id"), block.get("name"), None))
            whole = block.get("input")
            if isinstance(whole, dict) and whole:  # a proxy that sends the input whole, not in deltas
                self._piece(append, self._calls.done(key, whole))
            return
        if kind == "redacted_thinking":
            self._thinking[key] = ["", None, as_text(block.get("data"), "content_block.data")]
            return
        # a block may open with text (some proxies send it here)
        text = as_text(block.get("text"), "content_block.text")
        thinking = as_text(block.get("thinking"), "content_block.thinking")
        if kind == "thinking":
            self._thinking[key] = [thinking, as_text(block.get("signature"), "content_block.signature") or None, None]
        self._emit(append, text, thinking, repair)

    def _open_parts(self) -> ChunkBatch:
        batch: ChunkBatch = []
        for delta in self._calls.done_all():
            self._piece(batch.append, delta)
        return batch

    def _count(self, usage: object) -> None:
        if isinstance(usage, dict):
            counts = self._counts
            for key in _COUNTS:
                value = count(usage.get(key))
                if value is not None:
                    counts[key] = value

    def usage(self) -> UsageInfo | None:
        """Input (cache reads and writes included), output, and the cache counts."""
        counts = self._counts
        if not counts:
            return None
        read = counts.get("cache_read_input_tokens", 0)
        write = counts.get("cache_creation_input_tokens", 0)
        return UsageInfo.of(
            counts.get("input_tokens", 0) + read + write,
            counts.get("output_tokens", 0),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )

    def message(self, body: bytes) -> ChunkBatch:
        """The chunks of a whole Message (a JSON body answering a stream request)."""
        obj = self._loads_body(body)
        if obj.get("type") == "error" or obj.get("error"):
            raise wire_error(obj, "error in the reply")
        content = obj.get("content")
        if obj.get("type") != "message" or not isinstance(content, list):
            raise MalformedEventError("the JSON body is not a Message")
        model = obj.get("model")
        if isinstance(model, str) and model:
            self.model = model
        texts: list[str] = []
        thoughts: list[str] = []
        for block in content:
            if not isinstance(block, dict):
                raise MalformedEventError(f"a content block is a {type(block).__name__}")
            if block.get("type") == "text":
                texts.append(as_text(block.get("text"), "content.text"))
            elif block.get("type") == "thinking":
                thoughts.append(as_text(block.get("thinking"), "content.thinking"))
        if reason := obj.get("stop_reason"):
            self._finish(reason)
        self._count(obj.get("usage"))
        batch: ChunkBatch = []
        self._emit(batch.append, "", "".join(thoughts), True)
        self._emit(batch.append, "".join(texts), "", True)
        for position, block in enumerate(content):  # then the reasoning blocks whole, and the tool calls
            kind = block.get("type")
            if kind in ("thinking", "redacted_thinking"):
                thought = as_text(block.get("thinking"), "content.thinking")
                signature = as_text(block.get("signature"), "content.signature") or None
                redacted = as_text(block.get("data"), "content.data") if kind == "redacted_thinking" else None
                self._piece(batch.append, part=ReasoningPart(thought, signature, redacted, self.provider))
            elif kind == "tool_use":
                self._piece(batch.append, self._calls.piece(position, block.get("id"), block.get("name"), None))
                self._piece(batch.append, self._calls.done(position, block.get("input")))
        return batch
