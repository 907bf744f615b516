"""The retry policy: exponential backoff with full jitter that honours `Retry-After`.

A plain object with injectable randomness, so its behaviour is tested in
microseconds; the race (`_race.py`) is its one user.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import final

from .._errors import LLMException


@final
class RetryHandler:
    """Exponential backoff with full jitter that honours `Retry-After`.

    Retry `n` (0-based) waits a random time in `[0, min(max_delay, base_delay * 2**n)]`
    seconds, unless the provider asked for a delay: then exactly that. Only errors
    marked `retryable` are retried, and at most `max_retries` times. Pass one to
    `Configuration(retry=...)` to tune a client.
    """

    def __init__(
        self,
        max_retries: int = 2,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        *,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._uniform = rng

    def __repr__(self) -> str:
        return f"RetryHandler(max_retries={self.max_retries}, base_delay={self.base_delay}, max_delay={self.max_delay})"

    def should_retry(self, error: LLMException, retries_done: int) -> bool:
        """Whether `error` may be retried after `retries_done` retries."""
        return error.retryable and retries_done < self.max_retries

    def delay(self, retries_done: int, error: LLMException | None = None) -> float:
        """Seconds to wait before the next retry."""
        if error is not None and error.retry_after is not None:
            return float(error.retry_after)
        return self._uniform(0.0, min(self.max_delay, self.base_delay * 2**retries_done))
