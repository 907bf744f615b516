"""Routing: the per-call race on one clock, its call state, retry, the breaker, and the
fleet state they share (`_state/`: in this process, or on Redis).

The flow reads caller -> facade (`_client.py`, `_stream.py`) -> routing (here) ->
providers. Every time in here is an `anyio.current_time()` reading, so the rules
are tested in virtual time.
"""

from ._background import Background as Background
from ._breaker import CooldownTracker as CooldownTracker
from ._call import Call as Call
from ._guard import loop_token as loop_token
from ._hedge import AdaptiveHedge as AdaptiveHedge
from ._hedge import HedgeStats as HedgeStats
from ._hedge import hedge_policy as hedge_policy
from ._manager import ProviderManager as ProviderManager
from ._retry import RetryHandler as RetryHandler

__all__ = [
    "AdaptiveHedge",
    "Background",
    "Call",
    "CooldownTracker",
    "HedgeStats",
    "ProviderManager",
    "RetryHandler",
    "hedge_policy",
    "loop_token",
]
