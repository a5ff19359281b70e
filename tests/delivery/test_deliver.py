"""The delivery job with the policy: budget, coalescing, 429 backoff, fallback, two workers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from alerts.answers import answer
from alerts.store.models import AccountRow, OutboxRow
from delivery.policy import PolicySettings, RateLimiter
from notifiers.base import DeliveryResult, Message
from tests.delivery.kit import T0, account, alert, channels, outbox
from vigil.bootstrap import App


def _sms_alerts(app: App, n: int, *, severity: str = "high", start: int = 1) -> list[str]:
    with app.sessions.begin() as s:
        account(s)
        return [alert(s, i, severity=severity).id for i in range(start, start + n)]


def test_sixth_sms_in_an_hour_is_held_until_the_window_frees(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 6)
    chans = channels()
    d = deliverer_factory(chans)
    rep = d.run_once(T0)
    assert (rep.sent, rep.held) == (5, 1) and len(chans["sms"].sent) == 5
    with app.sessions() as s:
        (held,) = outbox(s, status="held")
        assert held.next_attempt_at == T0 + timedelta(hours=1)
        assert "budget of 5 per 1h" in (held.last_error or "")
        assert held.attempts == 0  # a hold is not a failed attempt
    assert d.run_once(T0 + timedelta(minutes=59)).claimed == 0
    rep = d.run_once(T0 + timedelta(hours=1))
    assert rep.sent == 1 and len(chans["sms"].sent) == 6  # never dropped


def test_over_budget_critical_alerts_go_out_coalesced(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 5)  # the budget is used up by five ordinary alerts
    chans = channels()
    d = deliverer_factory(chans)
    assert d.run_once(T0).sent == 5
    # minute 1: three critical alerts and one ordinary one arrive
    with app.sessions.begin() as s:
        crit = [alert(s, i, severity="critical", now=T0 + timedelta(minutes=1)).id for i in (10, 11, 12)]
        alert(s, 13, severity="high", now=T0 + timedelta(minutes=1))
    rep = d.run_once(T0 + timedelta(minutes=1))
    assert rep.sent == 0 and rep.held == 4  # the last SMS went out a minute ago: coalescing window
    rep = d.run_once(T0 + timedelta(minutes=10))  # 10 min after the last send: one critical SMS
    assert rep.sent == 1 and rep.coalesced == 3
    assert len(chans["sms"].sent) == 6
    with app.sessions() as s:
        rows = outbox(s, channel="sms")
        by_status = Counter("handed over" if r.sent_at else r.status for r in rows)
        assert by_status == {"handed over": 6, "coalesced": 3}
        carrier = next(r for r in rows if r.payload.get("coalesced"))
        assert carrier.alert_id in crit and len(carrier.payload["coalesced"]) == 3
        # every alert is still accounted for: sent itself or riding along in the carrier
        riders = {r.id for r in rows if r.status == "coalesced"}
        assert riders == set(carrier.payload["coalesced"])


def test_guidance_after_not_me_is_never_held(app: App, deliverer_factory: Any) -> None:
    ids = _sms_alerts(app, 5)
    chans = channels()
    d = deliverer_factory(chans)
    assert d.run_once(T0).sent == 5
    now = T0 + timedelta(minutes=30)
    with app.sessions.begin() as s:
        answer(s, ids[0], "deny", channel="sms", now=now)
    rep = d.run_once(now)
    assert rep.held == 0
    kinds = [m.channel for m in chans["sms"].sent[5:]]
    assert kinds == ["sms"]  # the freeze guidance went out over budget (critical purpose)


def test_429_backs_off_the_provider_and_is_retried_not_failed(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 3)
    calls: list[str] = []

    def rate_limited(m: Message) -> DeliveryResult:
        calls.append(m.outbox_id)
        if len(calls) == 1:
            return DeliveryResult("transient", error_code="20429", error="too many requests",
                                  action="backoff", retry_after=120)
        return DeliveryResult("sent", provider_id=f"SM{len(calls)}")

    chans = channels(sms=rate_limited)
    limiter = RateLimiter()
    # one SMS sender: with N of them, up to N - 1 calls may already be under way when the 429 comes
    d = deliverer_factory(chans, limiter=limiter, concurrency={"sms": 1})
    rep = d.run_once(T0)
    # the first call got 429; the other two were not even tried: the provider is blocked
    assert len(calls) == 1 and rep.retried == 1 and rep.throttled == 2 and rep.sent == 0
    with app.sessions() as s:
        rows = outbox(s, channel="sms")
        assert {r.status for r in rows} == {"retry"}
        # never sooner than Retry-After, jitter or not
        assert all(r.next_attempt_at >= T0 + timedelta(seconds=120) for r in rows)
    assert d.run_once(T0 + timedelta(seconds=119)).claimed == 0
    later = T0 + timedelta(seconds=60 * 30)
    rep = d.run_once(later)
    assert rep.sent == 3
    with app.sessions() as s:
        assert {r.status for r in outbox(s, channel="sms")} == {"sent"}


def test_rate_limit_is_shared_by_the_workers_of_a_process(app: App, deliverer_factory: Any) -> None:
    from delivery.policy import RateLimit

    _sms_alerts(app, 4)
    chans = channels()
    shared = RateLimiter({"sms": RateLimit(per_second=1, burst=2)})
    a = deliverer_factory(chans, worker="w1", limiter=shared)
    b = deliverer_factory(chans, worker="w2", limiter=shared)
    assert a.run_once(T0, limit=2).sent == 2
    rep = b.run_once(T0, limit=2)
    assert rep.sent == 0 and rep.throttled == 2
    assert b.run_once(T0 + timedelta(seconds=2)).sent == 2


def test_permanent_error_marks_the_number_and_falls_back_to_email(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["sms", "email"], strategy="fallback")
    chans = channels(sms=lambda m: DeliveryResult("permanent", error_code="21211", error="invalid To",
                                                  action="bad_address"))
    d = deliverer_factory(chans)
    rep = d.run_once(T0)
    assert (rep.failed, rep.fallbacks) == (1, 1)
    rep = d.run_once(T0)
    assert rep.sent == 1 and len(chans["email"].sent) == 1
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").phone_bad is True  # type: ignore[union-attr]
        sms = outbox(s, alert_id=a.id, channel="sms")[0]
        assert sms.status == "failed" and "invalid To" in (sms.last_error or "")  # the dead-letter reason
        email = outbox(s, alert_id=a.id, channel="email")[0]
        assert email.payload["fallback_from"] == "sms"


def test_a_code_that_deserves_one_retry_gets_one_then_falls_back(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s)
        alert(s, channels=["sms", "email"], strategy="fallback")
    chans = channels(sms=lambda m: DeliveryResult("transient", error_code="30003", error="unreachable",
                                                  max_retries=1))
    d = deliverer_factory(chans)
    assert d.run_once(T0).retried == 1
    rep = d.run_once(T0 + timedelta(hours=2))
    assert (rep.failed, rep.fallbacks, rep.dead) == (1, 1, 0) and len(chans["sms"].sent) == 2


def test_transient_errors_exhaust_into_the_dead_letters(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 1)
    chans = channels(sms=lambda m: DeliveryResult("transient", error="HTTP 503"))
    d = deliverer_factory(chans)
    now = T0
    for _ in range(app.settings.delivery.max_attempts):
        d.run_once(now)
        now += timedelta(hours=3)
    with app.sessions() as s:
        (row,) = outbox(s, channel="sms")
        assert row.status == "dead" and row.attempts == app.settings.delivery.max_attempts
        assert row.last_error == "HTTP 503"


def test_alert_answered_meanwhile_is_not_sent_on_other_channels(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["push", "sms"])
    with app.sessions.begin() as s:
        answer(s, a.id, "confirm", channel="link:push", now=T0)
    chans = channels()
    deliverer_factory(chans).run_once(T0)
    assert chans["sms"].sent == [] and chans["push"].sent == []
    with app.sessions() as s:
        assert {r.status for r in outbox(s, alert_id=a.id, purpose="alert")} == {"failed"}
        assert all("already confirmed" in (r.last_error or "") for r in outbox(s, alert_id=a.id))


def test_push_carries_the_action_token(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s)
        alert(s, channels=["push"])
    chans = channels()
    deliverer_factory(chans).run_once(T0)
    (msg,) = chans["push"].sent
    assert msg.data["actions"] == "confirm,deny" and len(msg.data["token"]) >= 22


def test_two_workers_never_send_the_same_message(app: App) -> None:
    """Two Deliverers in threads, each with its own engine, drain one outbox: each row once."""
    import random

    from alerts.store.db import make_engine, session_factory
    from delivery.deliver import Deliverer
    from tests.delivery.kit import render

    with app.sessions.begin() as s:
        for k in range(20):
            account(s, f"W{k}", phone=f"+8210555{k:05d}")
            for i in range(3):
                alert(s, i, account_id=f"W{k}", channels=["sms", "email", "push"])
    with app.sessions() as s:
        expected = set(s.scalars(select(OutboxRow.id)))
    assert len(expected) == 180
    chans = channels()  # shared recorder: it sees every send of both workers
    policy = PolicySettings(budgets={})
    engines = [make_engine(app.settings.database_url) for _ in range(2)]
    workers = [Deliverer(session_factory(e), app.settings, chans, render, worker=f"w{i}", policy=policy,
                         rng=random.Random(i)) for i, e in enumerate(engines)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(d: Deliverer) -> None:
        try:
            start.wait()
            while d.run_once(T0, limit=10).claimed:
                pass
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert not errors
    sent = Counter(m.outbox_id for ch in chans.values() for m in ch.sent)
    assert set(sent) == expected
    assert max(sent.values()) == 1
    with app.sessions() as s:
        assert {r.status for r in outbox(s)} == {"sent"}
        owners = Counter(d.lease_owner for d in outbox(s))
        assert owners == {None: 180}
