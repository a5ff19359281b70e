"""Provider receipts: forward-only, idempotent on the message id, falling back when undelivered."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.store.models import AccountRow, Delivery, OutboxRow
from delivery.receipts import Receipt, apply_receipt, step, sweep_unconfirmed
from tests.delivery.kit import T0, account, alert, channels, outbox
from vigil.bootstrap import App

RETRY = timedelta(minutes=5)


@pytest.mark.parametrize(("current", "incoming", "expected"), [
    ("sent", "delivered", "delivered"),
    ("sent", "read", "delivered"),
    ("delivered", "sent", None),          # late "sent" after "delivered"
    ("delivered", "delivered", None),     # duplicate
    ("undelivered", "delivered", None),   # the first final status wins
    ("sent", "queued", None),
    ("unconfirmed", "delivered", "delivered"),  # a late receipt still counts
    ("sent", "canceled", "canceled"),
    ("retry", "delivered", None),         # a receipt of an attempt that was retried since
    ("sent", "receiving", None),          # not an outbound status
])
def test_status_rank(current: str, incoming: str, expected: str | None) -> None:
    assert step(current, Receipt("SM1", incoming)).status == expected


@pytest.mark.parametrize(("code", "retry", "action"), [
    ("30003", True, None), ("30008", True, None), ("30001", True, None),
    ("30005", False, "bad_address"), ("30006", False, "bad_address"), ("30004", False, None),
    ("30007", False, "ops_alert"), ("21610", False, "opt_out"), (None, False, None), ("99999", False, None),
])
def test_undelivered_codes(code: str | None, retry: bool, action: str | None) -> None:
    st = step("sent", Receipt("SM1", "undelivered", code))
    assert (st.retry, st.fallback, st.action) == (retry, not retry, action)
    if retry:  # one retry only, then the next channel
        st2 = step("sent", Receipt("SM1", "undelivered", code), retries_done=1)
        assert (st2.retry, st2.fallback, st2.status) == (False, True, "undelivered")


def _sent_sms(app: App, deliverer_factory: Any, *, fallback: tuple[str, ...] = ("email",)) -> Any:
    """One SMS alert (strategy fallback: sms, then email) handed to the provider."""
    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["sms", *fallback], strategy="fallback")
    chans = channels()
    rep = deliverer_factory(chans).run_once(T0)
    assert rep.sent == 1 and len(chans["sms"].sent) == 1 and not chans["email"].sent
    with app.sessions() as s:
        row = outbox(s, alert_id=a.id, channel="sms")[0]
    return a, row, chans


def _apply(app: App, r: Receipt, at: datetime = T0) -> Any:
    with app.sessions.begin() as s:
        return apply_receipt(s, r, now=at, retry_delay=RETRY)


def test_delivered_then_late_and_duplicate_receipts_change_nothing(app: App, deliverer_factory: Any) -> None:
    a, row, _ = _sent_sms(app, deliverer_factory)
    sid = row.provider_id
    assert _apply(app, Receipt(sid, "delivered")).status == "delivered"
    for late in ("sent", "queued", "delivered", "undelivered"):
        assert _apply(app, Receipt(sid, late, "30003" if late == "undelivered" else None)).status is None
    with app.sessions() as s:
        r = s.get(OutboxRow, row.id)
        assert r.status == "delivered" and r.delivered_at is not None
        assert outbox(s, alert_id=a.id, channel="email") == []  # no fallback
        audit = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.outbox_id == row.id,
                                                                          Delivery.status.like("receipt:%")))
        assert audit == 5  # every callback is kept for the record


def test_undelivered_to_a_dead_number_flags_it_and_falls_back_once(app: App, deliverer_factory: Any) -> None:
    a, row, chans = _sent_sms(app, deliverer_factory)
    first = _apply(app, Receipt(row.provider_id, "undelivered", "30005", "Unknown destination handset"))
    again = _apply(app, Receipt(row.provider_id, "undelivered", "30005"))  # Twilio sent it twice
    assert first.status == "undelivered" and first.fallback_id is not None
    assert again.status is None and again.fallback_id is None
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").phone_bad is True  # type: ignore[union-attr]
        assert [r.status for r in outbox(s, alert_id=a.id, channel="email")] == ["pending"]
    rep = deliverer_factory(chans).run_once(T0 + timedelta(seconds=5))
    assert rep.sent == 1 and len(chans["email"].sent) == 1 and len(chans["sms"].sent) == 1  # no second SMS


def test_unreachable_handset_is_retried_once_then_falls_back(app: App, deliverer_factory: Any) -> None:
    _, row, _ = _sent_sms(app, deliverer_factory)
    out = _apply(app, Receipt(row.provider_id, "undelivered", "30003"))
    assert out.status == "retry" and out.fallback_id is None
    chans = channels()
    d = deliverer_factory(chans)
    assert d.run_once(T0 + timedelta(minutes=4)).claimed == 0  # the retry waits its delay
    assert d.run_once(T0 + RETRY).sent == 1 and len(chans["sms"].sent) == 1
    with app.sessions() as s:
        second = s.get(OutboxRow, row.id).provider_id  # type: ignore[union-attr]
    assert second != row.provider_id
    # the old message's receipts no longer move the row; the new one's do
    assert _apply(app, Receipt(row.provider_id, "delivered")).status is None
    out2 = _apply(app, Receipt(second, "undelivered", "30003"))
    assert out2.status == "undelivered" and out2.fallback_id is not None


def test_stop_reported_by_a_receipt_opts_the_number_out(app: App, deliverer_factory: Any) -> None:
    _, row, _ = _sent_sms(app, deliverer_factory)
    _apply(app, Receipt(row.provider_id, "failed", "21610"))
    with app.sessions() as s:
        assert s.get(AccountRow, "A1").sms_opt_out is True  # type: ignore[union-attr]


def test_unknown_message_id_is_ignored(app: App) -> None:
    out = _apply(app, Receipt("SMnope", "delivered"))
    assert out.outbox_id is None and out.status is None


def test_no_receipt_in_time_falls_back_and_a_late_one_still_counts(app: App, deliverer_factory: Any) -> None:
    _, row, chans = _sent_sms(app, deliverer_factory)
    d = deliverer_factory(chans)
    early = d.run_once(T0 + timedelta(minutes=9))
    assert early.unconfirmed == 0
    rep = d.run_once(T0 + timedelta(minutes=10))  # receipt_timeout_seconds = 600
    assert rep.unconfirmed == 1 and rep.sent == 1 and len(chans["email"].sent) == 1
    with app.sessions() as s:
        assert s.get(OutboxRow, row.id).status == "unconfirmed"  # type: ignore[union-attr]
    assert d.run_once(T0 + timedelta(minutes=30)).unconfirmed == 0  # swept once
    assert _apply(app, Receipt(row.provider_id, "delivered")).status == "delivered"


def test_sweep_skips_answered_alerts(app: App, deliverer_factory: Any) -> None:
    from alerts.answers import answer

    a, _, _ = _sent_sms(app, deliverer_factory)
    with app.sessions.begin() as s:
        answer(s, a.id, "confirm", channel="link:sms", now=T0)
    with app.sessions.begin() as s:
        made = sweep_unconfirmed(s, now=T0 + timedelta(hours=1), timeout=timedelta(minutes=10),
                                 channels=["sms"])
    assert made == []  # the user already answered: nobody to chase on another channel
