"""Routing state: circuit breakers, rate-limit budgets and hedge statistics, local or shared.

`LocalState` (the default) keeps them in this process. `RedisState` shares them across a
fleet of processes through Redis (`Configuration(shared_state="redis://...")`, extra
`llmcomm[redis]`), reading from a local mirror on the race path and writing Redis behind
it; when Redis fails or is slow, routing goes on with the mirror (fail open). Both
implement `StateBackend`. Key names are documented in `_lua`.

How routing uses it (`now` is `anyio.current_time()`; one `Scope.of(base_url, api_key,
model, rpm=, tpm=)` per provider, made once):

- open: `state = open_state(config.shared_state, BreakerPolicy(...))`, then `state.start()`
  when it has one (connects in the background); close: `await state.aclose()`.
- planning, per provider in order: `state.cooling(scope, now)` is None → eligible; 0.0 →
  `await state.acquire_probe(scope, now)` makes this attempt the probe, else skipped;
  more → skipped (cooling; the value is when it may be probed).
- starting an attempt: `grant = await state.take(scope, now, requests=1, input_tokens=…,
  output_tokens=…)`; not granted → skipped as rate-limited (`grant.reason`, `grant.wait`).
  All out of budget → wait for the smallest `grant.wait` within the deadline, or raise.
- every response, success or error: `state.report_headers(scope, now, headers,
  wall_now=time.time())`.
- outcome: `record_success`; `record_failure` for a retryable error (`auth=True` for an
  authentication error); a probe attempt that never ran: `release_probe`. First content:
  `record_ttft(scope, seconds)`. Final usage: `settle(scope, now, estimate=…, actual=…)`.
"""

from __future__ import annotations

from ._headers import Ceiling, HeaderReport, parse_duration, read_headers
from ._local import LocalState
from ._types import BUCKETS, BreakerPolicy, Bucket, Grant, Scope, StateBackend

__all__ = [
    "BUCKETS",
    "BreakerPolicy",
    "Bucket",
    "Ceiling",
    "Grant",
    "HeaderReport",
    "LocalState",
    "Scope",
    "StateBackend",
    "open_state",
    "parse_duration",
    "read_headers",
]


def open_state(url: str | None, policy: BreakerPolicy | None = None) -> StateBackend:
    """The state backend for `Configuration.shared_state`: `LocalState` for None, `RedisState` for a redis URL.

    Raises `ConfigurationError` when the URL asks for Redis and the `redis` extra is not
    installed. Nothing connects here: the first operation does, on the backend's own thread.
    """
    if not url:
        return LocalState(policy)
    try:
        import coredis  # noqa: F401 -- only to say what to install
    except ImportError:
        from ..._errors import ConfigurationError

        raise ConfigurationError(
            "shared_state names a Redis server but the Redis client is not installed; "
            "run `pip install 'llmcomm[redis]'` or unset shared_state / LLM_SHARED_STATE_URL"
        ) from None
    from ._redis import RedisState

    return RedisState(url, policy)
