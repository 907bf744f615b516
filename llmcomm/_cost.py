"""What a reply cost, from the prices the user configured: never a guess.

Prices are per million tokens, in whatever currency the user's table uses
(`ProviderConfig(input_price=..., output_price=..., cache_read_price=...,
cache_write_price=...)`, or the `<KIND>_INPUT_PRICE`-style variables). llmcomm ships
no price list: prices change and differ by contract, so a provider without both an
input and an output price has `cost=None`.
"""

from __future__ import annotations

import math

from ._types import UsageInfo

#: the price fields of `ProviderConfig`, in the order the variables are documented
PRICE_FIELDS = ("input_price", "output_price", "cache_read_price", "cache_write_price")


def price_problem(name: str, value: object) -> str | None:
    """Why `value` cannot be the price `name`, or None when it can (a finite number >= 0, or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return f"{name} must be a price per million tokens (a number >= 0), got {value!r}"
    return None


def cost_of(usage: UsageInfo | None, prices: object | None) -> float | None:
    """The cost of `usage` at the prices `prices` carries (a `ProviderConfig`'s price
    fields, per million tokens), or None when an input or output price is missing.

    Cache reads and writes are charged at their own prices when given, else at the
    input price; `prompt_tokens` already includes them (UsageInfo's rule), so the
    uncached input is what is left. Reasoning tokens are output tokens.
    """
    if usage is None or prices is None:
        return None
    # A provider of the user's own may carry a `config` of another shape: no prices, no cost.
    input_price, output_price = getattr(prices, "input_price", None), getattr(prices, "output_price", None)
    if input_price is None or output_price is None:
        return None
    cache_read, cache_write = usage.cache_read_tokens, usage.cache_write_tokens
    uncached = max(usage.prompt_tokens - cache_read - cache_write, 0)
    read_price = getattr(prices, "cache_read_price", None)
    write_price = getattr(prices, "cache_write_price", None)
    read_price = input_price if read_price is None else read_price
    write_price = input_price if write_price is None else write_price
    total = (
        uncached * input_price
        + cache_read * read_price
        + cache_write * write_price
        + usage.completion_tokens * output_price
    )
    return float(total) / 1_000_000
