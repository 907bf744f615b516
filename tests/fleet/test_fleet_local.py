"""The in-process state machines and the header readers on their own: pure, on a given clock."""

from __future__ import annotations

import pytest

from llmcomm import Configuration, ConfigurationError
from llmcomm._routing._state import BreakerPolicy, LocalState, Scope, open_state, parse_duration, read_headers
from llmcomm._routing._state._headers import parse_instant, parse_retry_after
from llmcomm._routing._state._types import burst, refill_rate

pytestmark = pytest.mark.anyio
SCOPE = Scope.of("https://api.example.com/v1", "sk-abcdefghijklmnopqrstuvwxyz", "gpt-4o-mini")


def test_breaker_opens_after_the_failures_in_a_row_and_one_probe_goes_at_a_time() -> None:
    state = LocalState(BreakerPolicy(failures=3, cooldown=30.0, probe_lease=5.0))
    for _ in range(2):
        state.record_failure(SCOPE, 100.0)
    assert state.cooling(SCOPE, 100.0) is None
    state.record_failure(SCOPE, 100.0)
    assert state.cooling(SCOPE, 110.0) == 20.0
    assert not state.try_probe(SCOPE, 110.0)  # still cooling
    assert state.cooling(SCOPE, 130.0) == 0.0
    assert state.try_probe(SCOPE, 130.0)
    assert not state.try_probe(SCOPE, 131.0)
    assert state.cooling(SCOPE, 131.0) == 4.0  # the probe's outcome, at most its lease
    assert state.try_probe(SCOPE, 135.5)  # the lease ran out
    state.record_failure(SCOPE, 136.0)  # a failed probe opens at once
    assert state.cooling(SCOPE, 136.0) == 30.0
    assert state.try_probe(SCOPE, 166.0)
    state.release_probe(SCOPE, 166.0)
    assert state.try_probe(SCOPE, 166.0)
    state.record_success(SCOPE, 167.0)
    assert state.cooling(SCOPE, 167.0) is None


def test_an_auth_failure_opens_at_once_for_the_auth_cooldown() -> None:
    state = LocalState(BreakerPolicy(auth_cooldown=300.0))
    state.record_failure(SCOPE, 0.0, auth=True)
    assert state.cooling(SCOPE, 0.0) == 300.0


@pytest.mark.parametrize("rpm", [6, 60, 600, 6000])
def test_a_requests_budget_never_lets_more_than_rpm_through_in_any_minute(rpm: int) -> None:
    scope = Scope.of("http://h/v1", "k", "m", rpm=rpm)
    state, sent, now = LocalState(), [], 0.0
    while now < 180.0:  # greedy: ask every 10 ms for three minutes
        if state.check(scope, now).granted:
            sent.append(now)
        now = round(now + 0.01, 2)
    end = 0
    for start_index, start in enumerate(sent):
        while end < len(sent) and sent[end] < start + 60.0:
            end += 1
        assert end - start_index <= rpm
    # and it keeps to the envelope: the burst, then the refill (a small limit pays most for the burst)
    assert len(sent) >= int(burst(rpm) + 180.0 * refill_rate(rpm)) - 1


def test_a_refused_take_says_how_long_until_it_would_pass() -> None:
    scope = Scope.of("http://h/v1", "k", "m", rpm=60)
    state = LocalState()
    for _ in range(int(burst(60))):
        assert state.check(scope, 0.0).granted
    refused = state.check(scope, 0.0)
    assert (refused.granted, refused.reason) == (False, "requests")
    assert refused.wait == pytest.approx(1 / refill_rate(60))
    assert state.check(scope, refused.wait).granted


def test_tokens_are_settled_to_real_usage_and_a_big_call_goes_when_the_bucket_is_full() -> None:
    scope = Scope.of("http://h/v1", "k", "m", tpm=6000)  # burst 300
    state = LocalState()
    assert state.check(scope, 0.0, input_tokens=1000).granted  # bigger than the burst: goes into debt
    refused = state.check(scope, 0.0, input_tokens=10)
    assert not refused.granted
    state.settle(scope, 0.0, estimate=1000, actual=100)
    assert state.check(scope, 0.0, input_tokens=200).granted


def test_header_ceilings_only_lower_until_their_reset() -> None:
    state = LocalState()
    state.report_headers(
        SCOPE, 0.0, {"x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": "2s"}, wall_now=0
    )
    state.report_headers(
        SCOPE, 0.5, {"x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "9s"}, wall_now=0
    )
    refused = state.check(SCOPE, 1.0, input_tokens=150)
    assert (refused.granted, refused.reason, refused.wait) == (False, "tokens", 1.0)
    assert state.check(SCOPE, 1.0, input_tokens=60).granted
    assert not state.check(SCOPE, 1.0, input_tokens=60).granted  # 40 left
    assert state.check(SCOPE, 2.0, input_tokens=150).granted  # the reset passed
    state.report_headers(
        SCOPE, 3.0, {"x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "1s"}, wall_now=0
    )
    assert not state.check(SCOPE, 3.5, input_tokens=150).granted  # a lower one replaces it at once


def test_retry_after_closes_the_scope_until_then() -> None:
    state = LocalState()
    state.report_headers(SCOPE, 10.0, {"Retry-After": "3"}, wall_now=0)
    refused = state.check(SCOPE, 11.0)
    assert (refused.granted, refused.reason, refused.wait) == (False, "retry-after", 2.0)
    assert state.check(SCOPE, 13.0).granted


def test_hedge_samples_are_a_bounded_window_newest_first() -> None:
    state = LocalState()
    for i in range(250):
        state.record_ttft(SCOPE, i / 1000)
    samples = state.ttft_samples(SCOPE)
    assert len(samples) == 200
    assert samples[0] == 0.249


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0s", 0.0), ("2", 2.0), ("7.66s", 7.66)],
)
def test_openai_reset_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "6x", "s", "-1s", "1e999", "1s2", "١s", "5 s", "2d"])
def test_unreadable_durations_are_ignored(text: str) -> None:
    assert parse_duration(text) is None


def test_anthropic_reset_times_and_retry_after_forms() -> None:
    wall = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert parse_instant("2026-01-01T00:00:07Z", wall) == 7.0
    assert parse_instant("2026-01-01T01:00:07+01:00", wall) == 7.0
    assert parse_instant("2025-12-31T23:59:00Z", wall) == 0.0  # past: already reset
    assert parse_instant("soon", wall) is None
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, wall) == 0.25
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 00:00:05 GMT"}, wall) == 5.0
    assert parse_retry_after({"retry-after": "later"}, wall) is None
    assert parse_retry_after({"retry-after": "-3"}, wall) is None


def test_read_headers_takes_both_wires_and_any_case() -> None:
    report = read_headers(
        {
            "Anthropic-RateLimit-Input-Tokens-Remaining": "40",
            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:30Z",
            "anthropic-ratelimit-requests-remaining": "nope",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
            "x-ratelimit-remaining-requests": "7",
            "x-ratelimit-reset-requests": "6m0s",
        },
        1_767_225_600.0,
    )
    assert {b: (c.remaining, c.reset) for b, c in report.ceilings.items()} == {
        "input-tokens": (40, 30.0),
        "requests": (7, 360.0),
    }
    assert report.retry_after is None


def test_scope_keys_never_hold_the_key_the_url_or_a_name() -> None:
    scope = Scope.of("http://user:pw@10.1.2.3/v1", "sk-very-secret-key-0123456789", "claude:x y")
    key = scope.key("breaker", "state")
    assert key.startswith("llmcomm:v1:breaker:") and key.endswith(":claude%3Ax%20y:state")
    assert "secret" not in key and "pw" not in key and "10.1.2.3" not in key
    assert Scope.of("http://a/v1", "k1", "m") != Scope.of("http://a/v1", "k2", "m")
    assert Scope.of("http://a/v1", "k1", "m") == Scope.of("http://a/v1", "k1", "m")
    with pytest.raises(ValueError, match="rpm must be a positive"):
        Scope.of("http://a/v1", "k", "m", rpm=0)


def test_shared_state_url_is_checked_and_its_password_never_shown() -> None:
    config = Configuration(shared_state="redis://:hunter2-secret@127.0.0.1:6379/0")
    assert "hunter2" not in repr(config)
    assert "shared_state='redis://****@127.0.0.1:6379/0'" in repr(config)
    for bad in (
        "http://:hunter2-secret@host:6379",
        "redis://:hunter2-secret@host:99999",
        "redis://:hunter2 secret@h",
        "redis:///0",
    ):
        with pytest.raises(ConfigurationError) as caught:
            Configuration(shared_state=bad)
        assert "hunter2" not in str(caught.value)
        assert "redis://host:6379/0" in str(caught.value)
    assert Configuration().shared_state is None


def test_shared_state_from_the_environment() -> None:
    env = {
        "OPENAI_API_KEY": "sk-abcdefghijklmnopqrstuvwx",
        "LLM_SHARED_STATE_URL": " redis://:pw-secret@10.0.0.5:6380/2 ",
    }
    assert Configuration.from_env(env).shared_state == "redis://:pw-secret@10.0.0.5:6380/2"
    with pytest.raises(ConfigurationError, match="LLM_SHARED_STATE_URL") as caught:
        Configuration.from_env({**env, "LLM_SHARED_STATE_URL": "mysql://:pw-secret@h"})
    assert "pw-secret" not in str(caught.value)


async def test_open_state_picks_the_backend() -> None:
    from llmcomm._routing._state._redis import RedisState

    assert isinstance(open_state(None), LocalState)
    shared = open_state("redis://127.0.0.1:1/0")
    assert isinstance(shared, RedisState)
    await shared.aclose()


def test_a_lease_is_small_spent_locally_and_given_back_whole() -> None:
    from llmcomm._routing._state._lease import Lease, lease_sizes

    scope = Scope.of("http://h/v1", "k", "m", rpm=6000, tpm=60_000)
    sizes = lease_sizes(scope, {"requests": 1, "tokens": 500})
    assert sizes == {"requests": 9, "tokens": 500}  # 0.1 s of refill, or one call like this one
    assert lease_sizes(Scope.of("http://h/v1", "k", "m", rpm=60), {"requests": 1}) == {"requests": 1}
    lease = Lease()
    assert not lease.covers(scope, {"requests": 1, "tokens": 100}, 0.0)
    lease.add({"requests": 9, "tokens": 500}, 0.0)
    assert lease.covers(scope, {"requests": 1, "tokens": 100, "input-tokens": 100}, 0.5)  # no input budget
    lease.spend(scope, {"requests": 1, "tokens": 400})
    assert lease.low(sizes)  # 100 tokens < half of 500
    assert not lease.covers(scope, {"requests": 1, "tokens": 101}, 0.5)
    assert not lease.covers(scope, {"requests": 1, "tokens": 1}, 1.0)  # expired
    assert lease.take_back() == {"requests": 8, "tokens": 100}
    assert lease.units == {}
