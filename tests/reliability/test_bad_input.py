"""Bad input: random message lists and options into `generate_response`.

The property: a call either fails with a clean `InvalidRequestError` before any
byte reaches the network, or it is a valid request that the server answers. Any
other exception type, or a refused request that still reached the server, is a
failure. Inputs that once broke the property are also checked one by one at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcomm import (
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    LLMResponse,
    Message,
    ProviderConfig,
    ProviderUnavailableError,
)
from llmcomm.testing import FakeServer, Script

from ..helpers import KEY, config

REPLY = "a valid request was answered"
# Valid text for the valid halves of a call; lone surrogates come in through JUNK.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
BLANK = st.sampled_from(["", " ", "\n\t", "\u3000"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=4),
    TEXT,
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
)

ROLE = st.one_of(st.sampled_from(["user", "assistant", "system"]), st.sampled_from(["robot", "", "User", "tool"]), JUNK)
CONTENT = st.one_of(TEXT, BLANK, TEXT, JUNK, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})))
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": ROLE, "content": CONTENT}, optional={"name": st.one_of(st.none(), TEXT, JUNK)}),
    st.fixed_dictionaries({"role": st.just("user"), "content": TEXT}),
    st.dictionaries(st.sampled_from(["role", "content", "name", "text"]), JUNK, max_size=3),
    st.builds(SimpleNamespace, role=ROLE, content=CONTENT),
    st.builds(Message, ROLE, CONTENT),
    JUNK,
)
MESSAGES = st.one_of(
    st.lists(MESSAGE, max_size=5),
    st.lists(MESSAGE, max_size=4).map(tuple),
    st.lists(MESSAGE, max_size=4).map(iter),
    TEXT,
    BLANK,
    st.dictionaries(TEXT, JUNK, max_size=2),
    JUNK,
)

NONBLANK = TEXT.filter(str.strip)
TURN = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": TEXT}),
    st.builds(Message, st.sampled_from(["user", "assistant"]), TEXT),
    st.builds(SimpleNamespace, role=st.sampled_from(["user", "assistant"]), content=TEXT),
)
VALID_MESSAGES = st.one_of(
    NONBLANK,
    st.builds(
        lambda system, turns, last: [*system, *turns, last],
        st.lists(st.fixed_dictionaries({"role": st.just("system"), "content": TEXT}), max_size=1),
        st.lists(TURN, max_size=3),
        st.builds(Message, st.just("user"), NONBLANK),
    ),
)
VALID_TIMEOUT = st.floats(min_value=5, max_value=1e6)  # shorter ones are valid too, but then time out
VALID_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": st.integers(1, 10**6),
        "temperature": st.floats(0, 2),
        "timeout": VALID_TIMEOUT,
        "model": NONBLANK,
        "system": TEXT,
        "provider": st.sampled_from(["anthropic", "openai"]),
        "request_id": NONBLANK,
        "extra": st.dictionaries(
            TEXT.filter(lambda k: k not in ("model", "messages", "stream", "system")), JSON, max_size=3
        ),
    },
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": st.one_of(st.none(), st.integers(-3, 10**6), st.floats(), st.booleans(), TEXT),
        "temperature": st.one_of(st.none(), st.floats(), st.integers(-3, 5), st.booleans(), TEXT),
        "timeout": st.one_of(st.none(), VALID_TIMEOUT, st.floats(max_value=0), st.sampled_from([math.nan, math.inf]), st.booleans(), TEXT),
        "model": st.one_of(st.none(), TEXT, BLANK, JUNK),
        "system": st.one_of(st.none(), TEXT, BLANK, JUNK),
        "provider": st.one_of(st.none(), st.sampled_from(["anthropic", "openai"]), JUNK),
        "request_id": st.one_of(st.none(), TEXT, JUNK),
        "extra": st.one_of(st.none(), st.dictionaries(TEXT, JSON, max_size=3), st.dictionaries(st.sampled_from(["model", "stream", "messages"]), JSON, max_size=1), JUNK),
        "colour": JUNK,
        "stream": st.booleans(),
    },
)  # fmt: skip
#: fully valid calls, fully random ones, and each half of a call random on its own
CALLS = st.one_of(
    st.tuples(VALID_MESSAGES, VALID_OPTIONS),
    st.tuples(MESSAGES, OPTIONS),
    st.tuples(VALID_MESSAGES, OPTIONS),
    st.tuples(MESSAGES, VALID_OPTIONS),
)


async def _call(llm: LLMCommunication, messages: Any, options: dict[str, Any]) -> LLMResponse | InvalidRequestError:
    try:
        with anyio.fail_after(10):
            return await llm.generate_response(messages, **options)
    except InvalidRequestError as exc:
        return exc


def _providers(server: FakeServer) -> list[ProviderConfig]:
    return [
        ProviderConfig(name="anthropic", kind="anthropic", base_url=server.anthropic_base_url, api_key=KEY),
        ProviderConfig(name="openai", kind="openai", base_url=server.openai_base_url, api_key=KEY),
    ]


@pytest.fixture(params=["asyncio", "trio"])
def portal(request: pytest.FixtureRequest) -> Iterator[BlockingPortal]:
    with start_blocking_portal(request.param) as running:
        yield running


def test_random_input_is_refused_cleanly_or_served(portal: BlockingPortal) -> None:
    checked = {"refused": 0, "served": 0}
    with portal.wrap_async_context_manager(FakeServer(default=Script(text=REPLY))) as server:
        llm = LLMCommunication(config(*_providers(server)))
        with portal.wrap_async_context_manager(llm):

            @settings(max_examples=200, deadline=None, derandomize=True, database=None)
            @given(CALLS)
            def check(call: tuple[Any, dict[str, Any]]) -> None:
                messages, options = call
                before = server.request_count
                try:
                    outcome = portal.call(_call, llm, messages, options)
                except LLMException as exc:  # any other llmcomm error breaks the property as well
                    raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
                if isinstance(outcome, InvalidRequestError):
                    assert type(outcome) is InvalidRequestError
                    assert server.request_count == before, "a refused request reached the server"
                    checked["refused"] += 1
                    return
                assert outcome.content == REPLY
                assert server.request_count == before + 1
                sent = server.requests[-1]
                assert sent.api == (options.get("provider") or "anthropic")
                if options.get("model") is not None:
                    assert sent.model == options["model"]
                checked["served"] += 1

            check()
        # The client closed: every connection it opened is closed too.
        deadline = time.monotonic() + 1.0
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0
    assert checked["refused"] > 20 and checked["served"] > 20, checked  # both sides of the property were exercised


# Inputs that once broke the property, one per cause: each is a clean refusal now.
_ONCE_ESCAPED: dict[str, tuple[Any, dict[str, Any], type[Exception], str]] = {
    "lone-surrogate-in-prompt": (
        "lone \ud800 surrogate",
        {},
        ProviderUnavailableError,
        "_request.build_request accepts text that is not valid UTF-8; the SDK's JSON encoding then fails "
        "with UnicodeEncodeError, reported as ProviderUnavailableError",
    ),
    "lone-surrogate-in-system": (
        "hi",
        {"system": "\udfff"},
        ProviderUnavailableError,
        "_request.build_request accepts a system text with a lone surrogate (ProviderUnavailableError)",
    ),
    "lone-surrogate-in-model": (
        "hi",
        {"model": "m\ud800"},
        ProviderUnavailableError,
        "_request._optional_str accepts a model name with a lone surrogate (ProviderUnavailableError)",
    ),
    "extra-not-json": (
        "hi",
        {"extra": {"metadata": object()}},
        ProviderUnavailableError,
        "_request._extra does not check that extra is JSON-serialisable; the SDK's TypeError is reported as "
        "ProviderUnavailableError 'malformed event stream'",
    ),
    "extra-nan": (
        "hi",
        {"extra": {"top_p": math.nan}},
        ProviderUnavailableError,
        "_request._extra lets NaN through; the SDK's JSON encoder raises ValueError (ProviderUnavailableError)",
    ),
    "unhashable-role": (
        [{"role": [], "content": "hi"}],
        {},
        TypeError,
        "_request.to_message tests `role not in ROLES` on an unhashable role: a raw TypeError",
    ),
    "unhashable-provider": (
        "hi",
        {"provider": ["anthropic"]},
        TypeError,
        "_manager.ProviderManager.select looks an unhashable name up in a dict: a raw TypeError",
    ),
}


@pytest.fixture
async def both_providers(fake: FakeServer) -> AsyncIterator[LLMCommunication]:
    fake.default = Script(text=REPLY)
    async with LLMCommunication(config(*_providers(fake))) as llm:
        yield llm


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("messages", "options"),
    [pytest.param(messages, options, id=name) for name, (messages, options, _raised, _reason) in _ONCE_ESCAPED.items()],
)
async def test_known_bad_input_is_refused_before_io(
    fake: FakeServer, both_providers: LLMCommunication, messages: Any, options: dict[str, Any]
) -> None:
    for name in ("anthropic", "openai"):
        with pytest.raises(InvalidRequestError):
            await both_providers.generate_response(messages, **{"provider": name, **options})
    assert fake.request_count == 0
