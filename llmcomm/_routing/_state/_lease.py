"""Budget leases: units a process took from the fleet's bucket ahead of its next calls.

With a lease, `take` answers from memory; Redis is asked in the background to top the
lease up, so a steady stream of calls never waits for it. Units leased are already gone
from the shared bucket, so the fleet never spends more than its budget; a lease is small
(a tenth of a second of the budget's refill, at most a quarter of its burst) and what is
left of it after `LEASE_TTL` seconds goes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ._types import BUCKETS, LEASE_TTL, Bucket, Scope, burst, refill_rate

#: how much of a budget's refill one process leases ahead, in seconds
LEASE_SECONDS: Final = 0.1


@dataclass(slots=True)
class Lease:
    """Units of each budget this process may spend until `until` (the caller's clock)."""

    units: dict[Bucket, float] = field(default_factory=dict)
    until: float = 0.0
    topping: bool = False

    def covers(self, scope: Scope, wants: Mapping[Bucket, int], now: float) -> bool:
        """Whether the lease pays for `wants` on every configured budget of `scope`."""
        return self.until > now and all(
            self.units.get(bucket, 0.0) >= n for bucket, n in wants.items() if n > 0 and scope.limit(bucket)
        )

    def spend(self, scope: Scope, wants: Mapping[Bucket, int]) -> None:
        for bucket, n in wants.items():
            if n > 0 and scope.limit(bucket):
                self.units[bucket] = self.units.get(bucket, 0.0) - n

    def add(self, units: Mapping[Bucket, float], now: float) -> None:
        for bucket, n in units.items():
            self.units[bucket] = self.units.get(bucket, 0.0) + n
        self.until = now + LEASE_TTL

    def low(self, sizes: Mapping[Bucket, int]) -> bool:
        """Whether some budget has less than half of its lease size left."""
        return any(self.units.get(bucket, 0.0) < size / 2 for bucket, size in sizes.items() if size)

    def take_back(self) -> dict[Bucket, float]:
        """Empty the lease; what it held, to give back."""
        left = {bucket: n for bucket, n in self.units.items() if n > 0}
        self.units.clear()
        return left


def lease_sizes(scope: Scope, wants: Mapping[Bucket, int]) -> dict[Bucket, int]:
    """Units to lease ahead per configured budget of `scope`, sized for calls like `wants`."""
    sizes: dict[Bucket, int] = {}
    for bucket in BUCKETS:
        if limit := scope.limit(bucket):
            ahead = max(refill_rate(limit) * LEASE_SECONDS, 1.0 if bucket == "requests" else wants.get(bucket, 0))
            sizes[bucket] = max(1, int(min(ahead, burst(limit) / 4)))
    return sizes
