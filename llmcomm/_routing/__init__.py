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
from ._manager import ProviderManager as ProviderManager
from ._retry import RetryHandler as RetryHandler

__all__ = ["Background", "Call", "CooldownTracker", "ProviderManager", "RetryHandler", "loop_token"]
