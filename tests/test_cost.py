"""`LLMResponse.cost` from the user's own price table, and the cost counter in metrics; never a guess."""

from __future__ import annotations

import math

import pytest

from llmcomm import Configuration, ConfigurationError, LLMCommunication, ProviderConfig, UsageInfo
from llmcomm._cost import cost_of
from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789abcdef"


def test_cost_of_charges_each_kind_of_token_at_its_price() -> None:
    prices = ProviderConfig(
        name="p", kind="anthropic", input_price=3.0, output_price=15.0, cache_read_price=0.3, cache_write_price=3.75
    )
    # 1,000 prompt tokens: 600 uncached, 300 cache reads, 100 cache writes; 200 output tokens.
    usage = UsageInfo.of(1000, 200, cache_read_tokens=300, cache_write_tokens=100)
    assert cost_of(usage, prices) == pytest.approx((600 * 3.0 + 300 * 0.3 + 100 * 3.75 + 200 * 15.0) / 1e6)


def test_cache_tokens_without_their_own_price_cost_the_input_price() -> None:
    prices = ProviderConfig(name="p", kind="openai", input_price=2.0, output_price=8.0)
    usage = UsageInfo.of(1000, 10, cache_read_tokens=400)
    assert cost_of(usage, prices) == pytest.approx((1000 * 2.0 + 10 * 8.0) / 1e6)


@pytest.mark.parametrize(
    "prices",
    [
        {},
        {"input_price": 1.0},
        {"output_price": 1.0},
    ],
)
def test_no_cost_without_both_input_and_output_prices(prices: dict[str, float]) -> None:
    config = ProviderConfig(name="p", kind="openai", **prices)  # type: ignore[arg-type]
    assert cost_of(UsageInfo.of(10, 10), config) is None


def test_a_provider_of_the_user_s_own_has_no_cost() -> None:
    class Custom:
        config = object()

    assert cost_of(UsageInfo.of(10, 10), Custom.config) is None


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "3", True])
def test_a_bad_price_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="input_price"):
        ProviderConfig(name="p", kind="openai", input_price=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_reply_carries_its_cost_and_metrics_add_it_up(server: FakeServer, kind: str) -> None:
    server.default = Script(text="priced", input_tokens=1000, output_tokens=500)
    base_url = server.anthropic_base_url if kind == "anthropic" else server.openai_base_url
    entry = ProviderConfig(
        name=kind,
        kind=kind,  # type: ignore[arg-type]
        api_key=KEY,
        base_url=base_url,
        input_price=3.0,
        output_price=15.0,
    )
    async with LLMCommunication(Configuration(providers=[entry])) as llm:
        first = await llm.generate_response("hi")
        second = await llm.generate_response("hi again")
        snapshot = llm.metrics.snapshot()
        text = llm.metrics.prometheus()
    assert first.usage.prompt_tokens == 1000
    assert first.usage.completion_tokens == 500
    assert first.cost == pytest.approx((1000 * 3.0 + 500 * 15.0) / 1e6)
    assert second.cost == first.cost
    assert first.cost is not None
    assert snapshot["total"]["cost"] == pytest.approx(2 * first.cost)
    assert f'llmcomm_cost_total{{provider="{kind}",model=' in text


async def test_without_prices_the_cost_is_none(server: FakeServer) -> None:
    entry = ProviderConfig(name="p", kind="openai", api_key=KEY, base_url=server.openai_base_url)
    async with LLMCommunication(Configuration(providers=[entry])) as llm:
        response = await llm.generate_response("hi")
        assert llm.metrics.snapshot()["total"]["cost"] == 0.0
    assert response.cost is None


def test_prices_come_from_the_environment_per_kind() -> None:
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_INPUT_PRICE": "3",
        "ANTHROPIC_OUTPUT_PRICE": "15",
        "ANTHROPIC_CACHE_READ_PRICE": "0.3",
        "ANTHROPIC_CACHE_WRITE_PRICE": "3.75",
        "OPENAI_API_KEY": KEY,
        "OPENAI_INPUT_PRICE": "2.5",
        "PATH": "",
    }
    anthropic, openai = Configuration.from_env(environ=env).providers
    assert isinstance(anthropic, ProviderConfig) and isinstance(openai, ProviderConfig)
    assert (anthropic.input_price, anthropic.output_price) == (3.0, 15.0)
    assert (anthropic.cache_read_price, anthropic.cache_write_price) == (0.3, 3.75)
    assert (openai.input_price, openai.output_price) == (2.5, None)


@pytest.mark.parametrize("value", ["cheap", "-1", "nan", "inf"])
def test_a_bad_price_variable_is_named(value: str) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_OUTPUT_PRICE": value, "PATH": ""}
    with pytest.raises(ConfigurationError, match="OPENAI_OUTPUT_PRICE") as caught:
        Configuration.from_env(environ=env)
    assert not caught.value.nothing_configured
