"""Log-spaced histograms in fixed memory, from which p50/p95/p99 are read.

Every bucket spans a factor of `GROWTH` (1.05), and a quantile is interpolated
inside the bucket that holds it, so an estimate is within 5 % of the true value
(and never outside the observed min and max). Values below or above a
histogram's range fall in an underflow or overflow bucket whose edges are the
exact min and max seen. A histogram never keeps samples.
"""

from __future__ import annotations

import math
from array import array
from typing import Final, final

#: ratio between the edges of one histogram bucket: the bound on a quantile's relative error
GROWTH: Final = 1.05
QUANTILES: Final = (0.5, 0.95, 0.99)


@final
class _Layout:
    """Bucket edges shared by every histogram of one kind."""

    __slots__ = ("buckets", "edges", "highest", "inv_log_growth", "lowest")

    def __init__(self, lowest: float, highest: float, growth: float = GROWTH) -> None:
        self.lowest = lowest
        self.highest = highest
        self.buckets = math.ceil(math.log(highest / lowest) / math.log(growth))
        self.inv_log_growth = 1.0 / math.log(growth)
        self.edges = tuple(min(lowest * growth**i, highest) for i in range(self.buckets + 1))

    def index(self, value: float) -> int:
        # 0 is the underflow bucket, buckets + 1 the overflow one.
        if value < self.lowest:
            return 0
        if value >= self.highest:
            return self.buckets + 1
        return min(1 + int(math.log(value / self.lowest) * self.inv_log_growth), self.buckets)


#: seconds: 1 ms to 1 h
SECONDS: Final = _Layout(1e-3, 3600.0)
#: output tokens per second: 0.1 to 10 million
RATE: Final = _Layout(0.1, 1e7)


@final
class Histogram:
    """Counts of values in fixed log-spaced buckets, with count, sum, min and max."""

    __slots__ = ("_counts", "_layout", "count", "max", "min", "sum")

    def __init__(self, layout: _Layout = SECONDS) -> None:
        self._layout = layout
        self._counts = array("q", bytes(8 * (layout.buckets + 2)))
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value: float) -> None:
        """Add one value (NaN is ignored)."""
        if value != value:  # NaN
            return
        self._counts[self._layout.index(value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        """Add `other`'s values (same layout) to this histogram."""
        counts = self._counts
        for i, c in enumerate(other._counts):
            if c:
                counts[i] += c
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> Histogram:
        """An independent copy (cheap: the buckets are copied in one block)."""
        other = Histogram.__new__(Histogram)
        other._layout = self._layout
        other._counts = self._counts[:]
        other.count, other.sum, other.min, other.max = self.count, self.sum, self.min, self.max
        return other

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> list[float | None]:
        """The estimated quantiles `qs` (ascending, each 0 ≤ q ≤ 1), in one pass; None when empty."""
        if self.count == 0:
            return [None] * len(qs)
        layout = self._layout
        ranks = [q * self.count for q in qs]
        out: list[float | None] = []
        seen = 0
        for i, c in enumerate(self._counts):
            if not c:
                continue
            while len(out) < len(ranks) and seen + c >= ranks[len(out)]:
                if i == 0:
                    lo, hi = self.min, layout.lowest
                elif i > layout.buckets:
                    lo, hi = layout.highest, self.max
                else:
                    lo, hi = layout.edges[i - 1], layout.edges[i]
                value = lo + (hi - lo) * max(0.0, ranks[len(out)] - seen) / c
                out.append(min(max(value, self.min), self.max))
            if len(out) == len(ranks):
                return out
            seen += c
        return out + [self.max] * (len(ranks) - len(out))

    def quantile(self, q: float) -> float | None:
        """The estimated `q`-quantile (0 ≤ q ≤ 1), or None when empty."""
        return self.quantiles((q,))[0]

    def summary(self) -> dict[str, float | int | None]:
        """count, sum, min, max, p50, p95 and p99 as plain data."""
        empty = self.count == 0
        return {
            "count": self.count,
            "sum": self.sum,
            "min": None if empty else self.min,
            "max": None if empty else self.max,
            **{f"p{round(q * 100)}": v for q, v in zip(QUANTILES, self.quantiles(), strict=True)},
        }
