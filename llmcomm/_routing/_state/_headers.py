"""Reading the providers' rate-limit headers into budget ceilings: pure functions, no I/O.

- OpenAI: `x-ratelimit-remaining-{requests,tokens}` with `x-ratelimit-reset-{requests,tokens}`
  as relative durations (`6m0s`, `1.5s`, `20ms`, `1h2m`).
- Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset}`
  with absolute RFC 3339 reset times.
- `retry-after-ms`, else `retry-after` (seconds or an HTTP date): the provider is closed until then.

A header is the server's text: anything unreadable is ignored, never raised.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, final

from ._types import BUCKETS, Bucket

#: a reset or retry-after further away than this is not plausible: ignored
MAX_WAIT: Final = 86_400.0
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@final
@dataclass(frozen=True, slots=True)
class Ceiling:
    """At most `remaining` more units until `reset` seconds from now."""

    remaining: int
    reset: float


@final
@dataclass(frozen=True, slots=True)
class HeaderReport:
    """What one response's headers say: ceilings per budget, and a retry-after in seconds."""

    ceilings: Mapping[Bucket, Ceiling] = field(default_factory=dict)
    retry_after: float | None = None


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset duration (`6m0s`, `1.5s`, `20ms`, `1h2m3s`, or bare seconds); None if unreadable."""
    text = text.strip()
    if not text or not text.isascii():
        return None
    try:
        return _plausible(float(text))
    except ValueError:
        pass
    total, at = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != at:
            return None
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
        at = match.end()
    return _plausible(total) if at == len(text) else None


def parse_instant(text: str, wall_now: float) -> float | None:
    """Seconds from `wall_now` (Unix time) until an RFC 3339 time; None if unreadable or far."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return _plausible(max(0.0, when.timestamp() - wall_now))


def parse_retry_after(headers: Mapping[str, str], wall_now: float) -> float | None:
    """Seconds the provider asked to wait (`retry-after-ms`, then `retry-after`), or None."""
    if (ms := _number(headers.get("retry-after-ms"))) is not None and (wait := _plausible(ms / 1000.0)) is not None:
        return wait
    value = headers.get("retry-after")
    if not value:
        return None
    if (seconds := _number(value)) is not None:
        return _plausible(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return _plausible(max(0.0, when.timestamp() - wall_now))


def read_headers(headers: Mapping[str, str], wall_now: float) -> HeaderReport:
    """The ceilings and retry-after in `headers` (names in any case); empty when there are none."""
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    ceilings: dict[Bucket, Ceiling] = {}
    for bucket in BUCKETS:
        remaining = _count(lower.get(f"anthropic-ratelimit-{bucket}-remaining"))
        reset = lower.get(f"anthropic-ratelimit-{bucket}-reset")
        if remaining is not None and reset and (seconds := parse_instant(reset, wall_now)) is not None:
            ceilings[bucket] = Ceiling(remaining, seconds)
            continue
        remaining = _count(lower.get(f"x-ratelimit-remaining-{bucket}"))
        reset = lower.get(f"x-ratelimit-reset-{bucket}")
        if remaining is not None and reset and (seconds := parse_duration(reset)) is not None:
            ceilings[bucket] = Ceiling(remaining, seconds)
    return HeaderReport(ceilings, parse_retry_after(lower, wall_now))


def _number(value: str | None) -> float | None:
    if not value or not value.strip().isascii():
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _count(value: str | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 else None


def _plausible(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_WAIT else None
