"""When the race starts the next provider beside a silent one: the hedge policy.

Fixed (DESIGN Part 1): the next provider starts `fallback_timeout` (2 s) after
the running attempt started, if nothing has shown progress by then.

Adaptive (`AdaptiveHedge`): per provider and model, a bounded sliding window of
times to first progress (the race measures them: from an attempt's start to its
first content, reasoning or closing chunk); the hedge fires at the window's p95
once it holds `min_samples`, clamped to [`floor`, `fallback_timeout`], and at
`fallback_timeout` before that. A hedge budget bounds the extra attempts to
`budget_share` of the calls of the last `budget_window` seconds: in an outage,
when every call would hedge, hedging stops (logged once) and calls wait for
their provider's reply or failure, so an outage cannot double the load; it
resumes (logged once) when the share falls back under the budget.

Every time is a reading of the race's clock (`anyio.current_time()`), passed
in as `now`: the rules run in virtual time. The statistics sit behind the small
`HedgeStats` protocol, so a shared (fleet-wide) store can replace the
in-process one.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Final, Protocol, final

logger = logging.getLogger("llmcomm")

#: (provider name, model): the unit the statistics are kept for
StatsKey = tuple[str, str]


class HedgeStats(Protocol):
    """Time-to-first-token samples per provider and model, in seconds, on the race's clock."""

    def record(self, key: StatsKey, seconds: float, now: float) -> None:
        """Add one sample for `key`, observed at `now`."""

    def quantile(self, key: StatsKey, q: float, now: float) -> tuple[float, int]:
        """The `q` quantile of `key`'s current window (NaN when empty), and how many samples it holds."""


@final
class _Window:
    __slots__ = ("cached", "dirty", "samples")

    def __init__(self, size: int) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=size)  # (observed at, seconds)
        self.cached: dict[float, float] = {}
        self.dirty = False


@final
class InProcessStats:
    """`HedgeStats` in this process: per key, at most `window` samples, none older than `max_age` s.

    Memory is bounded by `window` samples times `max_keys` keys (the oldest key is
    dropped beyond that). A quantile is computed over a sorted copy of the window
    (nearest rank), recomputed only after the window changed.
    """

    def __init__(self, window: int = 200, max_age: float = 600.0, max_keys: int = 1000) -> None:
        self.window = window
        self.max_age = max_age
        self.max_keys = max_keys
        self._windows: dict[StatsKey, _Window] = {}

    def __repr__(self) -> str:
        return f"InProcessStats(window={self.window}, max_age={self.max_age}, keys={len(self._windows)})"

    def _expire(self, win: _Window, now: float) -> None:
        samples = win.samples
        while samples and now - samples[0][0] > self.max_age:
            samples.popleft()
            win.dirty = True

    def record(self, key: StatsKey, seconds: float, now: float) -> None:
        win = self._windows.get(key)
        if win is None:
            if len(self._windows) >= self.max_keys:
                del self._windows[next(iter(self._windows))]
            win = self._windows[key] = _Window(self.window)
        win.samples.append((now, seconds))
        win.dirty = True

    def quantile(self, key: StatsKey, q: float, now: float) -> tuple[float, int]:
        win = self._windows.get(key)
        if win is None:
            return math.nan, 0
        self._expire(win, now)
        n = len(win.samples)
        if n == 0:
            return math.nan, 0
        if win.dirty:
            win.cached.clear()
            win.dirty = False
        value = win.cached.get(q)
        if value is None:
            ordered = sorted(seconds for _, seconds in win.samples)
            value = win.cached[q] = ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]
        return value, n


@final
class HedgeBudget:
    """Extra attempts at most `share` of the calls of the last `window` seconds (at least `minimum`).

    `minimum` hedges are allowed in any window whatever the traffic (a burst, as
    gRPC's retry throttle starts with a full bucket), so a quiet client still
    hedges and a cold start is not starved; above `minimum / share` calls per
    window (100 a minute by default) the share alone decides. Says once in the log when it runs out, and once when it
    allows hedges again. Memory: one timestamp per call and per hedge of the window.
    """

    def __init__(self, share: float = 0.10, window: float = 60.0, minimum: int = 10) -> None:
        self.share = share
        self.window = window
        self.minimum = minimum
        self._calls: deque[float] = deque()
        self._hedges: deque[float] = deque()
        #: whether hedging is paused because the budget is spent
        self.exhausted = False

    def __repr__(self) -> str:
        return f"HedgeBudget(share={self.share}, window={self.window}, minimum={self.minimum})"

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        for times in (self._calls, self._hedges):
            while times and times[0] <= horizon:
                times.popleft()

    def _allowed(self) -> bool:
        return len(self._hedges) + 1 <= max(self.minimum, self.share * len(self._calls) + 1e-9)

    def call(self, now: float) -> None:
        """A call started under this budget."""
        self._calls.append(now)
        if self.exhausted:
            self._prune(now)
            if self._allowed():
                self.exhausted = False
                logger.warning(
                    "llmcomm: hedging resumed: extra attempts are back under %g %% of the calls of the last %g s",
                    self.share * 100,
                    self.window,
                    extra={"event": "hedge_budget", "exhausted": False},
                )

    def spend(self, now: float) -> bool:
        """Take one hedge from the budget; False (nothing taken) when it is spent."""
        self._prune(now)
        if self._allowed():
            self._hedges.append(now)
            return True
        if not self.exhausted:
            self.exhausted = True
            logger.warning(
                "llmcomm: hedging paused: extra attempts reached %g %% of the calls of the last %g s "
                "(a provider is slow for most calls: an outage?); calls wait for their provider's reply or "
                "failure until the share falls (raise AdaptiveHedge(budget_share=...) to allow more)",
                self.share * 100,
                self.window,
                extra={"event": "hedge_budget", "exhausted": True},
            )
        return False

    def share_used(self, now: float) -> float:
        """Hedges over calls in the current window (0 with no calls)."""
        self._prune(now)
        return len(self._hedges) / len(self._calls) if self._calls else 0.0


@final
class AdaptiveHedge:
    """The adaptive hedge policy: pass it (or `hedge="adaptive"`) to `Configuration(hedge=...)`.

    The backup starts at the `quantile` (default p95) of the running provider's
    time to first token, over its last `window` samples no older than `max_age`
    seconds, once there are `min_samples`; never earlier than `floor` seconds,
    never later than the configuration's `fallback_timeout` (used alone until
    `min_samples`). Hedges are limited by a budget: at most `budget_share` of the
    calls of the last `budget_window` seconds (at least `budget_minimum` hedges per
    window). `stats` replaces the in-process statistics (any `HedgeStats`). One
    policy serves the clients of one event loop; it holds state, so share it
    between clients only on purpose. Raises `ValueError` for out-of-range values.
    """

    def __init__(
        self,
        *,
        min_samples: int = 20,
        floor: float = 0.25,
        quantile: float = 0.95,
        window: int = 200,
        max_age: float = 600.0,
        budget_share: float = 0.10,
        budget_window: float = 60.0,
        budget_minimum: int = 10,
        stats: HedgeStats | None = None,
    ) -> None:
        if min_samples < 1 or window < min_samples:
            raise ValueError(f"need 1 <= min_samples <= window, got min_samples={min_samples}, window={window}")
        if not floor >= 0 or not 0 < quantile < 1 or not max_age > 0:
            raise ValueError(f"need floor >= 0, 0 < quantile < 1 and max_age > 0, got {floor}, {quantile}, {max_age}")
        if not 0 <= budget_share <= 1 or not budget_window > 0 or budget_minimum < 0:
            raise ValueError(
                "need 0 <= budget_share <= 1, budget_window > 0 and budget_minimum >= 0, "
                f"got {budget_share}, {budget_window}, {budget_minimum}"
            )
        self.min_samples = min_samples
        self.floor = floor
        self.quantile = quantile
        self.stats: HedgeStats = stats if stats is not None else InProcessStats(window, max_age)
        self.budget = HedgeBudget(budget_share, budget_window, budget_minimum)
        self._label: Final = f"p{round(quantile * 100):d}"

    def __repr__(self) -> str:
        return (
            f"AdaptiveHedge(min_samples={self.min_samples}, floor={self.floor}, quantile={self.quantile}, "
            f"budget_share={self.budget.share}, budget_window={self.budget.window})"
        )

    def delay(self, key: StatsKey, cap: float, now: float) -> tuple[float, str]:
        """Seconds after an attempt on `key` starts before the hedge, and why ("hedge-p95 0.41 s")."""
        value, n = self.stats.quantile(key, self.quantile, now)
        if n < self.min_samples or math.isnan(value):
            return cap, f"hedge-warmup {cap:g} s"
        if value >= cap:
            return cap, f"hedge-cap {cap:g} s"
        if value <= self.floor:
            return self.floor, f"hedge-floor {self.floor:g} s"
        return value, f"hedge-{self._label} {value:.3g} s"

    def observe(self, key: StatsKey, seconds: float, now: float) -> None:
        """One attempt on `key` showed its first progress `seconds` after it started (or still had
        none when it lost the race: a lower bound, which keeps the slow tail in the window)."""
        self.stats.record(key, seconds, now)


def hedge_policy(setting: object) -> AdaptiveHedge | None:
    """The policy `Configuration(hedge=...)` asks for: None for "fixed", a new `AdaptiveHedge` for "adaptive"."""
    if isinstance(setting, AdaptiveHedge):
        return setting
    return AdaptiveHedge() if setting == "adaptive" else None


def reason_kind(reason: str) -> str:
    """The kind of a hedge reason, for counting: "hedge-p95 0.41 s" -> "p95"."""
    return reason.partition(" ")[0].removeprefix("hedge-")
