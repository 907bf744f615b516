"""Streamed tool calls, put together piece by piece: the state both wire decoders share.

Each wire numbers the pieces of a call its own way (Anthropic by content block,
OpenAI by `tool_calls[].index`); the key is that number, and `ToolCallDelta.index`
is the call's ordinal in the reply (0, 1, ... in the order the calls began).
"""

from __future__ import annotations

from typing import final

from .._messages import ToolCall, ToolCallDelta, parse_arguments
from ._decoder import as_text


@final
class ToolCallState:
    """The calls of one reply that are still open, and how many have begun."""

    __slots__ = ("_open", "began", "last_key")

    def __init__(self) -> None:
        self.began = 0
        self.last_key: object = None  # the key of the call that began last
        # key -> [ordinal, id, name, pieces]
        self._open: dict[object, tuple[int, list[str], list[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def piece(self, key: object, call_id: object, name: object, arguments: object) -> ToolCallDelta | None:
        """The delta for one piece of call `key` (its first piece opens it); None for an empty piece."""
        call_id = as_text(call_id, "tool call id") or None
        name = as_text(name, "tool call name") or None
        fragment = as_text(arguments, "tool call arguments")
        state = self._open.get(key)
        if state is None:
            if name is None:  # a piece of a call that never began (no tool name): nothing to call
                return None
            state = (self.began, [call_id or "", name], [])
            self._open[key] = state
            self.began += 1
            self.last_key = key
        else:
            head = state[1]
            if call_id is not None and not head[0]:
                head[0] = call_id
            if name is not None:
                head[1] = name if not head[1] or head[1] == name else head[1] + name
            if call_id is None and name is None and not fragment:
                return None
        if fragment:
            state[2].append(fragment)
        return ToolCallDelta(state[0], call_id, name, fragment)

    def done(self, key: object, whole_input: object = None) -> ToolCallDelta | None:
        """The closing delta of call `key`, with the parsed call (None if no such call is open).

        `whole_input`: the arguments as an object, when the wire gave them whole rather than in pieces.
        """
        state = self._open.pop(key, None)
        if state is None:
            return None
        ordinal, (call_id, name), pieces = state
        raw = "".join(pieces)
        if not raw and isinstance(whole_input, dict):
            arguments: dict[str, object] = whole_input
            left = ""
        else:
            arguments, left = parse_arguments(raw)
        return ToolCallDelta(ordinal, None, None, "", True, ToolCall(call_id, name, arguments, left))

    def done_all(self) -> list[ToolCallDelta]:
        """The closing deltas of every call still open, in the order they began."""
        out: list[ToolCallDelta] = []
        for key in list(self._open):
            delta = self.done(key)
            if delta is not None:
                out.append(delta)
        return out
