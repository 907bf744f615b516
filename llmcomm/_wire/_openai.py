"""OpenAI Chat Completions chunks into `StreamChunk`s: a sans-I/O state machine.

Only choice 0 is the reply: a request with `n` > 1 streams the choices
interleaved, and the others are skipped. `delta.content` is a str or, from some
servers (Mistral), a list of parts; `delta.reasoning_content` (DeepSeek, vLLM)
and `delta.reasoning` (OpenRouter, Ollama) are reasoning; `delta.refusal` is a
refusal. `delta.tool_calls[]` pieces are tool-call deltas, keyed by their
`index`; each call's closing delta (with the parsed call) comes when the finish
reason does. `[DONE]` is terminal.
"""

from __future__ import annotations

from typing import Any, final

import orjson

from .._types import ChunkBatch, StreamChunk, UsageInfo, content_chunk
from ._calls import ToolCallState
from ._decoder import (
    DONE,
    Append,
    MalformedEventError,
    StreamDecoder,
    as_text,
    count,
    lenient_loads,
    wire_error,
)
from ._sse import DEFAULT_MAX_EVENT_BYTES


@final
class OpenAIDecoder(StreamDecoder):
    """Decodes one Chat Completions stream (or a whole completion body) into chunks."""

    __slots__ = ("_calls", "_usage")

    terminal = "[DONE]"

    def __init__(self, provider: str, model: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(provider, model, max_event_bytes)
        self._usage: UsageInfo | None = None
        self._calls = ToolCallState()

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
                    if payload == DONE:
                        self.finished = True
                        break
                    event = lenient_loads(payload, exc)
                    if event is None:
                        continue
                    slow = True
                # The per-token path inline: choice 0 alone, a delta with text and no reasoning,
                # nothing else to note. Anything else goes through _handle(), which decides the same way.
                if not slow and not event.get("error") and not event.get("usage"):
                    choices = event.get("choices")
                    if choices.__class__ is list and len(choices) == 1:
                        choice = choices[0]
                        delta = choice.get("delta")
                        if (
                            delta
                            and (
                                len(delta) == 1
                                or not (
                                    delta.get("reasoning_content")
                                    or delta.get("reasoning")
                                    or delta.get("tool_calls")
                                    or delta.get("refusal")
                                )
                            )
                            and (text := delta.get("content"))
                            and text.__class__ is str
                            and not choice.get("finish_reason")
                            and not choice.get("index")
                        ):
                            append(content_chunk(text, name, model, index))
                            index += 1
                            continue
                self.index = index
                self._handle(event, append, slow)
                index = self.index
                slow = bool(self._held)
        except Exception as exc:
            self.index = index
            if not batch:
                raise
            self.failure = exc  # the text before the bad event still reaches the consumer
            return batch
        self.index = index
        return batch

    def _handle(self, event: dict[str, Any], append: Append, repair: bool) -> None:
        get = event.get
        if error := get("error"):
            raise wire_error(error)
        choices = get("choices")
        if choices is not None and not isinstance(choices, list):
            raise MalformedEventError(f"`choices` is a {type(choices).__name__}, not a list")
        for choice in choices or ():
            if not isinstance(choice, dict):
                raise MalformedEventError(f"a choice is a {type(choice).__name__}")
            if choice.get("index"):  # another of n choices: only choice 0 is the reply
                continue
            delta = choice.get("delta")
            if delta:
                if not isinstance(delta, dict):
                    raise MalformedEventError(f"a choice's delta is a {type(delta).__name__}")
                self._emit(append, *_text_and_reasoning(delta), repair)
                if (calls := delta.get("tool_calls")) is not None:
                    self._tool_pieces(calls, append)
                if refusal := as_text(delta.get("refusal"), "delta.refusal"):
                    append(StreamChunk("", self.provider, self.model, self.index, refusal=refusal))
                    self.index += 1
            if reason := choice.get("finish_reason"):
                self._finish(reason)
                for done in self._calls.done_all():
                    self._piece(append, done)
        if raw := get("usage"):
            self._usage = _usage(raw)

    def _tool_pieces(self, calls: object, append: Append) -> None:
        if not isinstance(calls, list):
            raise MalformedEventError(f"`tool_calls` is a {type(calls).__name__}, not a list")
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                raise MalformedEventError(f"a tool call is a {type(call).__name__}")
            function = call.get("function")
            if function is not None and not isinstance(function, dict):
                raise MalformedEventError(f"a tool call's function is a {type(function).__name__}")
            function = function or {}
            key = call.get("index")
            if key is None:  # servers that number no calls send each whole, with its id
                key = call.get("id") or self._calls.last_key or position
            self._piece(append, self._calls.piece(key, call.get("id"), function.get("name"), function.get("arguments")))

    def _open_parts(self) -> ChunkBatch:
        batch: ChunkBatch = []
        for delta in self._calls.done_all():
            self._piece(batch.append, delta)
        return batch

    def usage(self) -> UsageInfo | None:
        """The last usage the server reported (None if it reported none)."""
        return self._usage

    def message(self, body: bytes) -> ChunkBatch:
        """The chunks of a whole chat completion (a JSON body answering a stream request)."""
        obj = self._loads_body(body)
        if obj.get("error"):
            raise wire_error(obj["error"], "error in the reply")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise MalformedEventError("the JSON body is not a chat completion")
        batch: ChunkBatch = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise MalformedEventError(f"a choice is a {type(choice).__name__}")
            if choice.get("index"):
                continue
            message = choice.get("message")
            if isinstance(message, dict):
                text, reasoning = _text_and_reasoning(message)
                self._emit(batch.append, "", reasoning, True)
                self._emit(batch.append, text, "", True)
                if refusal := as_text(message.get("refusal"), "message.refusal"):
                    batch.append(StreamChunk("", self.provider, self.model, self.index, refusal=refusal))
                    self.index += 1
                if (calls := message.get("tool_calls")) is not None:
                    self._tool_pieces(calls, batch.append)
                    for done in self._calls.done_all():
                        self._piece(batch.append, done)
            if reason := choice.get("finish_reason"):
                self._finish(reason)
            break
        if raw := obj.get("usage"):
            self._usage = _usage(raw)
        return batch


def _text_and_reasoning(delta: dict[str, Any]) -> tuple[str, str]:
    """Answer text and reasoning of a delta (or a whole message)."""
    content = delta.get("content")
    reasoning = as_text(delta.get("reasoning_content") or delta.get("reasoning"), "reasoning")
    if content.__class__ is not list:
        return as_text(content, "content"), reasoning
    texts: list[str] = []
    thoughts = [reasoning]
    for part in content:
        if not isinstance(part, dict):
            raise MalformedEventError(f"a content part is a {type(part).__name__}")
        kind = part.get("type")
        if kind == "text":
            texts.append(as_text(part.get("text"), "content.text"))
        elif kind == "thinking":  # Mistral: a list of text parts (or a str)
            thinking = part.get("thinking")
            if isinstance(thinking, list):
                thoughts += [as_text(p.get("text"), "thinking.text") for p in thinking if isinstance(p, dict)]
            else:
                thoughts.append(as_text(thinking, "thinking"))
    return "".join(texts), "".join(thoughts)


def _usage(raw: object) -> UsageInfo:
    """`usage` as reported; `prompt_tokens` already includes cached tokens on this wire."""
    if not isinstance(raw, dict):
        raise MalformedEventError(f"`usage` is a {type(raw).__name__}")
    prompt = count(raw.get("prompt_tokens")) or 0
    completion = count(raw.get("completion_tokens")) or 0
    total = count(raw.get("total_tokens"))
    prompt_details = raw.get("prompt_tokens_details")
    cached = count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    if cached is None:  # DeepSeek reports its cache hits at the top level
        cached = count(raw.get("prompt_cache_hit_tokens"))
    completion_details = raw.get("completion_tokens_details")
    reasoning = count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else None
    return UsageInfo(
        prompt,
        completion,
        prompt + completion if total is None else total,
        cache_read_tokens=cached or 0,
        reasoning_tokens=reasoning or 0,
    )
