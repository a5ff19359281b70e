"""The pure delivery policy: per-account budget and per-provider token bucket."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.policy import Budget, PolicySettings, RateLimit, RateLimiter, TokenBucket, budget_verdict
from tests.delivery.kit import T0

SMS = Budget(max=5, per_seconds=3600)
TEN_MIN = timedelta(minutes=10)


def test_under_budget_sends_and_the_sixth_sms_waits_for_the_oldest_to_age_out() -> None:
    sent = [T0 + timedelta(minutes=m) for m in (0, 5, 10, 15, 20)]
    now = T0 + timedelta(minutes=25)
    assert budget_verdict(SMS, sent[:4], now=now, critical=False, coalesce=TEN_MIN).send
    v = budget_verdict(SMS, sent, now=now, critical=False, coalesce=TEN_MIN)
    assert not v.send and v.until == T0 + timedelta(hours=1)
    assert "5 per 1h" in v.reason
    # an hour after the first send there is room again
    assert budget_verdict(SMS, sent, now=T0 + timedelta(hours=1), critical=False, coalesce=TEN_MIN).send


def test_critical_over_budget_goes_out_once_per_coalescing_window() -> None:
    sent = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 3, 4)]
    now = T0 + timedelta(minutes=10)
    first = budget_verdict(SMS, sent, now=now, critical=True, coalesce=TEN_MIN)
    assert not first.send and first.until == T0 + timedelta(minutes=14)  # last send + 10 min
    later = budget_verdict(SMS, sent, now=T0 + timedelta(minutes=14), critical=True, coalesce=TEN_MIN)
    assert later.send and later.over_budget


def test_no_budget_means_unlimited_and_old_sends_do_not_count() -> None:
    assert budget_verdict(None, [T0] * 100, now=T0, critical=False, coalesce=TEN_MIN).send
    old = [T0 - timedelta(hours=2)] * 50
    assert budget_verdict(SMS, old, now=T0, critical=False, coalesce=TEN_MIN).send


@settings(max_examples=150, deadline=None)
@given(arrivals=st.lists(st.tuples(st.integers(0, 4 * 3600), st.booleans()), min_size=1, max_size=40))
def test_obeying_the_verdicts_never_breaks_the_budget_nor_drops(arrivals: list[tuple[int, bool]]) -> None:
    """Simulate messages arriving (second, critical?) and a worker that obeys every verdict."""
    pending = sorted((T0 + timedelta(seconds=s), crit, i) for i, (s, crit) in enumerate(arrivals))
    sent: list[tuple[object, bool, bool]] = []  # (time, critical, over_budget)
    due = list(pending)
    steps = 0
    while due:
        steps += 1
        assert steps < 10_000
        due.sort()
        at, crit, i = due.pop(0)
        v = budget_verdict(SMS, [t for t, _, _ in sent], now=at, critical=crit, coalesce=TEN_MIN)
        if v.send:
            sent.append((at, crit, v.over_budget))
        else:
            assert v.until is not None and v.until > at
            due.append((v.until, crit, i))
    assert len(sent) == len(arrivals)  # held, never dropped
    ordinary = [t for t, _, over in sent if not over]
    for t in ordinary:  # within any hour ending at an ordinary send, at most 5 ordinary sends
        assert sum(1 for u in ordinary if t - timedelta(hours=1) < u <= t) <= 5
    over = sorted(t for t, _, o in sent if o)
    assert all(b - a >= TEN_MIN for a, b in itertools.pairwise(over))


def test_token_bucket_rate_and_burst() -> None:
    b = TokenBucket(2.0, burst=3)
    assert [b.take(T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(T0) == pytest.approx(0.5)
    assert b.take(T0 + timedelta(seconds=0.5)) == 0.0
    assert b.take(T0 + timedelta(seconds=0.5)) == pytest.approx(0.5)
    assert b.take(T0 + timedelta(seconds=100)) == 0.0  # refilled, capped at the burst
    assert b.tokens == pytest.approx(2.0)


def test_a_429_blocks_the_provider_for_its_retry_after_and_only_that_provider() -> None:
    lim = RateLimiter({"sms": RateLimit(per_second=100, burst=10)}, default_backoff=30)
    assert lim.acquire("sms", T0) == 0.0
    assert lim.backoff("sms", T0, 120) == 120
    assert lim.acquire("sms", T0 + timedelta(seconds=20)) == pytest.approx(100)
    assert lim.acquire("push", T0 + timedelta(seconds=20)) == 0.0  # unconfigured: unlimited
    assert lim.acquire("sms", T0 + timedelta(seconds=121)) == 0.0
    # no Retry-After: the default backoff
    assert lim.backoff("push", T0, None) == 30
    assert lim.acquire("push", T0 + timedelta(seconds=29)) == pytest.approx(1)


def test_policy_settings_are_strict_and_know_what_is_critical() -> None:
    p = PolicySettings()
    assert p.budgets["sms"].max == 5 and p.budgets["sms"].per_seconds == 3600
    assert p.is_critical(0, "alert") and p.is_critical(3, "guidance") and not p.is_critical(1, "alert")
    with pytest.raises(ValueError, match="extra"):
        PolicySettings.model_validate({"budgets": {"sms": {"max": 5, "per_seconds": 60, "burst": 1}}})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        PolicySettings.model_validate({"budgets": {"sms": {"max": 0, "per_seconds": 60}}})
