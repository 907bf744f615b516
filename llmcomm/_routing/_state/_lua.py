"""The Lua scripts that update shared state atomically in Redis.

Each script touches one key, reads the server's clock (`TIME`, so the processes of a fleet
never compare their own clocks) and sets a TTL on what it writes. Times cross the wire
as milliseconds relative to the server's now; a breaker's "open" is -1 when closed.
Keys and fields:

- `llmcomm:v1:breaker:<endpoint>:<model>:state` hash: `f` failures in a row, `o` open
  until, `p` probe slot held until (server milliseconds; 0: none). A success leaves a
  closed breaker (not a deleted key), so a missing key means Redis lost it and a process
  that knows the breaker open writes it back.
- `llmcomm:v1:budget:<endpoint>:<model>:buckets` hash: per budget (`r` requests, `t`
  tokens, `i` input tokens, `o` output tokens) `<b>l` level and `<b>t` its time, `<b>c`
  a header ceiling until `<b>u`; `blk` closed (retry-after) until.
- `llmcomm:v1:hedge:<endpoint>:<model>:ttft` list: time-to-first-token samples in
  milliseconds, newest first, trimmed to the window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final, final

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

_BREAKER_READ: Final = """
local k = KEYS[1]
local f = tonumber(redis.call('HGET', k, 'f') or '0')
local o = tonumber(redis.call('HGET', k, 'o') or '0')
local p = tonumber(redis.call('HGET', k, 'p') or '0')
local function reply(granted)
  local open = -1
  if o > 0 then open = math.max(o - now, 0) end
  return {granted, f, tostring(open), tostring(math.max(p - now, 0)), redis.call('EXISTS', k)}
end
"""


@final
@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1, the name EVALSHA knows it by."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest())


#: ARGV: threshold, cooldown ms, "1" for an authentication failure, auth cooldown ms
BREAKER_FAILURE: Final = Script(
    "breaker_failure",
    _NOW
    + _BREAKER_READ
    + """
if ARGV[3] == '1' then
  o = now + tonumber(ARGV[4]); p = 0
else
  f = f + 1
  if p > 0 or f >= tonumber(ARGV[1]) then o = now + tonumber(ARGV[2]); p = 0 end
end
redis.call('HSET', k, 'f', f, 'o', tostring(o), 'p', tostring(p))
redis.call('PEXPIRE', k, math.ceil(math.max(o - now, 0) + tonumber(ARGV[2])))
return reply(0)
""",
)

#: ARGV: cooldown ms; leaves a closed breaker behind, so that a missing key means Redis lost it
BREAKER_SUCCESS: Final = Script(
    "breaker_success",
    """
redis.call('HSET', KEYS[1], 'f', 0, 'o', '0', 'p', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {0, 0, '-1', '0', 1}
""",
)

#: ARGV: probe lease ms, cooldown ms
BREAKER_PROBE: Final = Script(
    "breaker_probe",
    _NOW
    + _BREAKER_READ
    + """
if o > 0 and o <= now and p <= now then
  p = now + tonumber(ARGV[1])
  redis.call('HSET', k, 'p', tostring(p))
  redis.call('PEXPIRE', k, math.ceil(tonumber(ARGV[1]) + tonumber(ARGV[2])))
  return reply(1)
end
return reply(0)
""",
)

BREAKER_RELEASE: Final = Script(
    "breaker_release",
    _NOW
    + _BREAKER_READ
    + """
if p > 0 then redis.call('HSET', k, 'p', '0'); p = 0 end
return reply(0)
""",
)

#: ARGV: failures, open for ms, cooldown ms; writes only when the key is gone (Redis restarted or flushed)
BREAKER_SEED: Final = Script(
    "breaker_seed",
    _NOW
    + _BREAKER_READ
    + """
if redis.call('EXISTS', k) == 0 then
  f = tonumber(ARGV[1]); o = now + tonumber(ARGV[2]); p = 0
  redis.call('HSET', k, 'f', f, 'o', tostring(o), 'p', '0')
  redis.call('PEXPIRE', k, math.ceil(tonumber(ARGV[2]) + tonumber(ARGV[3])))
end
return reply(0)
""",
)

BREAKER_STATE: Final = Script("breaker_state", _NOW + _BREAKER_READ + "return reply(0)\n")

_BUDGET_READ: Final = """
local k = KEYS[1]
local keep = tonumber(ARGV[1])
local h = redis.call('HGETALL', k)
local s = {}
for j = 1, #h, 2 do s[h[j]] = tonumber(h[j + 1]) end
local names = {'r', 't', 'i', 'o'}
local function expire()
  local last = s['blk'] or 0
  for _, b in ipairs(names) do last = math.max(last, s[b .. 'u'] or 0) end
  redis.call('PEXPIRE', k, math.ceil(keep + math.max(last - now, 0)))
end
"""

#: ARGV: TTL ms, "1" to charge without asking, then per budget (requests, tokens, input,
#: output): capacity (0: no configured limit), refill per ms, units wanted, units to lease
#: besides when there are (never past a header ceiling). Answers granted (1/0), the wait
#: in ms, the budget that said no, and the units leased per budget.
BUDGET_TAKE: Final = Script(
    "budget_take",
    _NOW
    + _BUDGET_READ
    + """
local force = ARGV[2] == '1'
local blk = s['blk'] or 0
if not force and blk > now then return {0, tostring(blk - now), 'retry-after', '0', '0', '0', '0'} end
local wait, reason, levels, capped = 0, '', {}, false
for j, b in ipairs(names) do
  local at = 4 * j - 1
  local cap, rate, n = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  if cap > 0 then
    local lvl = s[b .. 'l']
    if lvl == nil then lvl = cap else lvl = math.min(cap, lvl + math.max(now - (s[b .. 't'] or now), 0) * rate) end
    levels[j] = lvl
    local need = math.min(n, cap)
    if lvl < need - 1e-9 and (need - lvl) / rate > wait then wait = (need - lvl) / rate; reason = b end
  end
  local u = s[b .. 'u'] or 0
  if u > now then capped = true end
  if n > 0 and u > now and (s[b .. 'c'] or 0) < n and u - now > wait then wait = u - now; reason = b end
end
if wait > 0 and not force then return {0, tostring(wait), reason, '0', '0', '0', '0'} end
local leased = {}
for j, b in ipairs(names) do
  local at = 4 * j - 1
  local cap, n, extra = tonumber(ARGV[at]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  leased[j] = 0
  if cap > 0 then
    local left = levels[j] - n
    if extra > 0 and not capped and not force then leased[j] = math.max(0, math.min(extra, math.floor(left))) end
    redis.call('HSET', k, b .. 'l', tostring(math.min(cap, left - leased[j])), b .. 't', tostring(now))
  end
  local u = s[b .. 'u'] or 0
  if n > 0 and u > now then redis.call('HSET', k, b .. 'c', tostring(math.max((s[b .. 'c'] or 0) - n, 0))) end
end
expire()
return {1, '0', '', tostring(leased[1]), tostring(leased[2]), tostring(leased[3]), tostring(leased[4])}
""",
)

#: ARGV: TTL ms, retry-after ms (-1: none), then per budget: remaining (-1: no header), reset ms
BUDGET_REPORT: Final = Script(
    "budget_report",
    _NOW
    + _BUDGET_READ
    + """
local retry = tonumber(ARGV[2])
if retry >= 0 and now + retry > (s['blk'] or 0) then
  s['blk'] = now + retry
  redis.call('HSET', k, 'blk', tostring(s['blk']))
end
for j, b in ipairs(names) do
  local remaining, reset = tonumber(ARGV[1 + 2 * j]), tonumber(ARGV[2 + 2 * j])
  local u = s[b .. 'u'] or 0
  if remaining >= 0 and not (u > now and (s[b .. 'c'] or 0) <= remaining) then
    s[b .. 'c'] = remaining; s[b .. 'u'] = now + reset
    redis.call('HSET', k, b .. 'c', tostring(remaining), b .. 'u', tostring(now + reset))
  end
end
expire()
return 1
""",
)

#: ARGV: TTL ms; answers the retry-after left and each budget's ceiling and its time left (ms)
BUDGET_STATE: Final = Script(
    "budget_state",
    _NOW
    + _BUDGET_READ
    + """
local out = {tostring(math.max((s['blk'] or 0) - now, 0))}
for _, b in ipairs(names) do
  table.insert(out, tostring(s[b .. 'c'] or 0))
  table.insert(out, tostring(math.max((s[b .. 'u'] or 0) - now, 0)))
end
return out
""",
)

#: ARGV: sample ms, window length, TTL ms
HEDGE_PUSH: Final = Script(
    "hedge_push",
    """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""",
)
