"""Rate-limit budgets on the attempt path: charge at the start, read headers, settle at the end.

An attempt takes its call's estimate from its provider's budgets (`StateBackend.take`)
before it sends anything: requests 1, tokens the request's estimated input (4
characters a token) plus its `max_tokens`, as the providers themselves count a
request against a tokens-per-minute limit. A provider with no room is not sent to:
the attempt ends at once as "skipped-rate-limit", its error a `RateLimitError`
whose `retry_after` says when there is room. The response headers the provider
saw (`send()` hands them to `REPLY_HEADERS`) lower the budgets; the winner's real
usage replaces the estimate when the reply ends, and a failed attempt gives its
tokens back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .._errors import RateLimitError
from .._types import Request
from ..providers._base import config_of
from ..providers._send import REPLY_HEADERS

if TYPE_CHECKING:
    from ._attempt import AttemptState

log = logging.getLogger("llmcomm")

#: characters per token, for the estimate charged before the real usage is known
CHARS_PER_TOKEN = 4
#: the output tokens assumed when neither the request nor the provider says `max_tokens`
DEFAULT_OUTPUT_TOKENS = 1024


def estimate(request: Request, attempt: AttemptState) -> tuple[int, int]:
    """The input and output tokens charged for `request` before its usage is known."""
    chars = len(request.system or "") + sum(len(m.text) for m in request.messages)
    config = config_of(attempt.provider)
    config_max = config.max_tokens if config is not None else None
    output = request.max_tokens or (config_max if isinstance(config_max, int) else DEFAULT_OUTPUT_TOKENS)
    return chars // CHARS_PER_TOKEN + 1, output


async def charge(attempt: AttemptState, request: Request, now: float) -> RateLimitError | None:
    """Take `attempt`'s estimate from its provider's budgets; the error to skip it with when there is no room."""
    state, scope = attempt.store, attempt.fleet
    if state is None or scope is None:
        return None
    input_tokens, output_tokens = estimate(request, attempt)
    try:
        grant = await state.take(scope, now, requests=1, input_tokens=input_tokens, output_tokens=output_tokens)
    except Exception as exc:  # a state that cannot answer never fails a call: fail open, uncounted
        # the type only: a Redis error's text may hold its URL
        log.warning("rate-limit state failed (%s); %s is sent uncounted", type(exc).__name__, attempt.provider.name)
        return None
    if grant.granted:
        attempt.charged = input_tokens + output_tokens
        return None
    what = "a retry-after it sent" if grant.reason == "retry-after" else f"its {grant.reason} per minute"
    return RateLimitError(
        f"skipped: no rate-limit budget left ({what}); room again in {grant.wait:.3g} s. "
        "Raise the provider's rpm/tpm if it allows more, or add a provider",
        provider=attempt.provider.name,
        retry_after=grant.wait,
    )


@contextmanager
def reading_headers(attempt: AttemptState) -> Iterator[None]:
    """Within the block, the provider's response headers are kept on `attempt` (rate-limit ones only)."""
    if attempt.store is None:
        yield
        return

    def sink(headers: Mapping[str, str]) -> None:
        kept = {k: v for k, v in headers.items() if "ratelimit" in k.lower() or k.lower().startswith("retry-after")}
        if kept:
            attempt.headers = kept

    token = REPLY_HEADERS.set(sink)
    try:
        yield
    finally:
        REPLY_HEADERS.reset(token)


def report(attempt: AttemptState, now: float) -> None:
    """Hand what the attempt learnt to the budgets: its headers, and the tokens a failed attempt did not spend.

    Time-to-first-token samples belong to the hedge policy, which records them itself.
    """
    state, scope = attempt.store, attempt.fleet
    if state is None or scope is None:
        return
    if attempt.headers:
        state.report_headers(scope, now, attempt.headers, wall_now=time.time())
    if attempt.first_at is None and attempt.error is not None and attempt.charged:
        state.settle(scope, now, estimate=attempt.charged, actual=0)
        attempt.charged = 0


def settle(attempt: AttemptState, total_tokens: int, now: float) -> None:
    """The winner's reply ended: its real usage replaces the estimate charged (kept when none was reported)."""
    state, scope = attempt.store, attempt.fleet
    if state is not None and scope is not None and attempt.charged and total_tokens > 0:
        state.settle(scope, now, estimate=attempt.charged, actual=total_tokens)
        attempt.charged = 0
