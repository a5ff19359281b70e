"""A lease is a promise: re-checked and renewed before every send, kept alive while the call runs,
and settled from the attempt row when its worker dies mid-call (issue 14 point 5)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from alerts.store.db import make_engine, session_factory
from alerts.store.models import Delivery, OutboxRow
from delivery.deliver import Deliverer
from delivery.outbox import claim
from delivery.policy import PolicySettings
from delivery.transmit import presend
from notifiers.base import DeliveryResult, Message
from tests.delivery.conftest import make_test_app
from tests.delivery.kit import T0, account, alert, channels, outbox, render
from vigil.bootstrap import App

NO_BUDGET = PolicySettings(budgets={}, receipt_channels=[])


def _real_now() -> datetime:
    return datetime.now(UTC)


def _app_with(app: App, **delivery: Any) -> App:
    """The same database with other ``delivery`` settings (the lease, the senders)."""
    from tests.app.helpers import Clock

    return make_test_app(app.settings.database_url, Clock(T0), app.rules,
                         delivery={**app.settings.delivery.model_dump(), **delivery})


def _sms_alerts(app: App, n: int, channels_: tuple[str, ...] = ("sms",)) -> None:
    with app.sessions.begin() as s:
        for i in range(n):
            account(s, f"L{i}", phone=f"+8210777{i:05d}", email=f"l{i}@example.com", push_token=f"tok{i}")
            alert(s, i, account_id=f"L{i}", channels=channels_)


def _slow(seconds: float) -> Any:
    def script(m: Message) -> DeliveryResult:
        time.sleep(seconds)
        return DeliveryResult("sent", provider_id=f"SM-{m.outbox_id}")
    return script


def test_a_pass_that_outlives_its_lease_sends_each_message_once(app: App) -> None:
    """Worker A's pass takes 3x its 1 s lease; worker B claims what A's lease no longer covers.
    Each message goes out once, every transmission has its attempt row, A's leftovers are skipped."""
    quick = _app_with(app, lease_seconds=1)
    _sms_alerts(quick, 24)
    chans = channels(sms=_slow(0.12))  # one sender: 24 x 0.12 s = ~3 s for A alone
    engines = [make_engine(quick.settings.database_url) for _ in range(2)]
    a, b = (Deliverer(session_factory(e), quick.settings, chans, render, worker=w, policy=NO_BUDGET,
                      clock=_real_now, concurrency={"sms": 1}) for e, w in zip(engines, "ab", strict=True))
    reports: dict[str, Any] = {}
    ta = threading.Thread(target=lambda: reports.setdefault("a", a.run_once(_real_now(), limit=100)))
    ta.start()
    deadline = time.monotonic() + 60
    while not chans["sms"].sent and time.monotonic() < deadline:  # A has claimed and begun to send
        time.sleep(0.01)
    time.sleep(1.2)  # A's lease on the rows it has not sent yet has run out
    reports["b"] = b.drain(_real_now)
    ta.join()
    sent = Counter(m.outbox_id for m in chans["sms"].sent)
    assert len(sent) == 24 and max(sent.values()) == 1, sent.most_common(3)
    assert reports["a"].lease_lost > 0 and reports["b"].sent > 0  # B really took work over
    assert reports["a"].sent + reports["b"].sent == 24
    with quick.sessions() as s:
        attempts = list(s.scalars(select(Delivery)))
        assert Counter(d.status for d in attempts) == {"sent": 24}  # every transmission, once
        assert {d.worker for d in attempts} == {a.worker, b.worker} and a.worker != b.worker
        assert {r.status for r in outbox(s)} == {"sent"} and {r.attempts for r in outbox(s)} == {1}
    for d in (a, b):
        d.close()
    for e in engines:
        e.dispose()
    quick.close()


def test_a_call_slower_than_the_lease_keeps_its_lease(app: App) -> None:
    """The heartbeat renews the lease while the provider takes 2.5 s against a 1 s lease."""
    quick = _app_with(app, lease_seconds=1)
    _sms_alerts(quick, 1)
    chans = channels(sms=_slow(2.5))
    a = Deliverer(quick.sessions, quick.settings, chans, render, worker="a", policy=NO_BUDGET, clock=_real_now)
    b = Deliverer(quick.sessions, quick.settings, chans, render, worker="b", policy=NO_BUDGET, clock=_real_now)
    ta = threading.Thread(target=a.run_once, args=(_real_now(),))
    ta.start()
    deadline = time.monotonic() + 60
    while not chans["sms"].sent and time.monotonic() < deadline:  # A's provider call is under way
        time.sleep(0.01)
    stolen = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # B keeps trying to take the message over
        stolen += b.run_once(_real_now()).claimed
        time.sleep(0.1)
    ta.join()
    assert stolen == 0 and len(chans["sms"].sent) == 1
    with quick.sessions() as s:
        (row,) = outbox(s)
        assert row.status == "sent" and row.lease_owner is None
    quick.close()


def _die_mid_call(app: App, *, handed: bool) -> OutboxRow:
    """What a worker killed during its provider call leaves behind: a claim, and an ``in_flight``
    attempt row once it had reached the handover."""
    lease = timedelta(seconds=app.settings.delivery.lease_seconds)
    got = claim(app.sessions, worker="dead@host:1:0", now=T0, limit=10, lease=lease)
    (oid,) = got.ids
    if handed:
        aid = presend(app.sessions, oid=oid, token=got.token, worker="dead@host:1:0", channel="x", transport="x",
                      at=T0, lease_until=T0 + lease)
        assert aid is not None
    with app.sessions() as s:
        row = s.get(OutboxRow, oid)
        assert row is not None
        return row


def test_a_message_handed_over_by_a_dead_worker_is_presumed_sent_not_resent(app: App, deliverer_factory: Any
                                                                            ) -> None:
    _sms_alerts(app, 1)
    _die_mid_call(app, handed=True)
    chans = channels()
    d = deliverer_factory(chans, policy=NO_BUDGET)
    assert d.run_once(T0 + timedelta(seconds=60)).claimed == 0  # the lease still holds
    rep = d.run_once(T0 + timedelta(seconds=app.settings.delivery.lease_seconds + 1))
    assert rep.presumed_sent == 1 and rep.sent == 0 and chans["sms"].sent == []
    with app.sessions() as s:
        (row,) = outbox(s)
        assert row.status == "sent" and row.provider_id is None and row.attempts == 1
        assert "presumed sent" in (row.last_error or "")
        (att,) = s.scalars(select(Delivery))
        assert att.status == "unknown" and "handed it to the provider" in (att.error or "")


def test_a_message_not_yet_handed_over_by_a_dead_worker_is_sent(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 1, ("email",))
    _die_mid_call(app, handed=False)  # SMTP: killed before the relay said 354
    chans = channels()
    rep = deliverer_factory(chans, policy=NO_BUDGET).run_once(T0 + timedelta(hours=1))
    assert rep.sent == 1 and len(chans["email"].sent) == 1
    with app.sessions() as s:
        assert Counter(d.status for d in s.scalars(select(Delivery))) == {"sent": 1}
        (row,) = outbox(s)
        assert row.attempts == 1 and row.status == "sent"


def test_an_idempotent_channel_resends_with_the_same_key(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 1, ("webhook",))
    _die_mid_call(app, handed=True)
    chans = channels(webhook=None)
    chans["webhook"].idempotent = True  # type: ignore[misc]  # a receiver that drops a delivery id it has seen
    rep = deliverer_factory(chans, policy=NO_BUDGET).run_once(T0 + timedelta(hours=1))
    assert rep.sent == 1 and rep.presumed_sent == 0
    (msg,) = chans["webhook"].sent
    with app.sessions() as s:
        (row,) = outbox(s)
        assert msg.outbox_id == row.id  # the webhook's X-Vigil-Delivery is the outbox id: the same key


def test_an_unknown_outcome_follows_the_channels_policy(app: App, deliverer_factory: Any) -> None:
    """SMS (default ``presume_sent``): sent, waiting for its receipt; email (``retry``): a later
    attempt, never a second transmission now."""
    _sms_alerts(app, 1, ("sms", "email"))
    timeout = DeliveryResult("unknown", provider_id="<x@y>", error="no answer after DATA: timed out")
    chans = channels(sms=lambda m: DeliveryResult("unknown", error="ReadTimeout"), email=lambda m: timeout)
    rep = deliverer_factory(chans, policy=NO_BUDGET).run_once(T0)
    assert rep.unknown == 2 and rep.retried == 1
    assert len(chans["sms"].sent) == 1 and len(chans["email"].sent) == 1
    with app.sessions() as s:
        by_channel = {r.channel: r for r in outbox(s)}
        assert by_channel["sms"].status == "sent"
        assert by_channel["email"].status == "retry" and by_channel["email"].next_attempt_at > T0
        assert Counter(d.status for d in s.scalars(select(Delivery))) == {"unknown": 2}


def test_a_hung_channel_never_delays_the_others(app: App, deliverer_factory: Any) -> None:
    _sms_alerts(app, 5, ("email", "sms", "push"))
    release = threading.Event()

    def hung(m: Message) -> DeliveryResult:
        release.wait(30)
        return DeliveryResult("delivered", provider_id=m.outbox_id)

    chans = channels(email=hung)
    d = deliverer_factory(chans, policy=NO_BUDGET)
    t = threading.Thread(target=d.drain, args=(lambda: T0,))
    t.start()
    try:
        deadline = time.monotonic() + 20
        done = False
        while time.monotonic() < deadline and not done:
            with app.sessions() as s:
                st = Counter((r.channel, r.status) for r in outbox(s))
            done = st[("sms", "sent")] == 5 and st[("push", "sent")] == 5
            time.sleep(0.05)
        assert done, st  # every SMS and push went out while all the email senders hang
        assert st[("email", "sending")] == 5
    finally:
        release.set()
        t.join()
    assert len(chans["email"].sent) == 5


def test_drain_sends_more_than_one_claim(app: App) -> None:
    small = _app_with(app, batch_size=7)
    _sms_alerts(small, 30, ("push",))
    chans = channels()
    d = Deliverer(small.sessions, small.settings, chans, render, policy=NO_BUDGET)
    rep = d.drain(lambda: T0)
    assert rep.sent == 30 and rep.claimed == 30 and len(chans["push"].sent) == 30
    d.close()
    small.close()


def test_workers_have_unique_identities(app: App, deliverer_factory: Any) -> None:
    a, b = deliverer_factory(channels(), worker="w"), deliverer_factory(channels(), worker="w")
    assert a.worker != b.worker and a.worker.startswith("w@")
    host, pid, rand = a.worker.removeprefix("w@").split(":")
    assert pid.isdigit() and len(rand) == 8 and host
