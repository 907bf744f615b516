"""The plain data types, and the per-token way of building a chunk."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from llmcomm import StreamChunk
from llmcomm._types import content_chunk


def test_a_content_chunk_is_the_constructors_chunk() -> None:
    built = content_chunk("tok", "anthropic", "claude", 7)
    made = StreamChunk("tok", "anthropic", "claude", 7)
    assert type(built) is StreamChunk
    assert built == made
    assert hash(built) == hash(made)
    assert repr(built) == repr(made)
    assert dataclasses.astuple(built) == dataclasses.astuple(made)
    assert pickle.loads(pickle.dumps(built)) == made
    assert copy.copy(built) == made


def test_a_content_chunk_is_frozen() -> None:
    built = content_chunk("tok", "openai", "gpt", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.index
    assert dataclasses.replace(built, text="new") == StreamChunk("new", "openai", "gpt", 0)
