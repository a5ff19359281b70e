"""Escalation: a reminder on the next channel that can reach the account, then the rule's actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alerts.store.models import AccountRow, AlertRow, OutboxRow, Ticket
from delivery.escalate import escalate_once, next_channel
from notifiers.base import DeliveryResult
from tests.delivery.kit import T0, account, alert, channels, outbox
from vigil.bootstrap import App


def _row(channel: str, status: str) -> OutboxRow:
    return OutboxRow(channel=channel, status=status)


def test_next_channel_rules() -> None:
    acct = AccountRow(account_id="A", phone="+8210", email="a@x", push_token="t", sms_opt_out=False,
                      phone_bad=False)
    chans = ["push", "sms", "email"]
    # strategy "fallback": only push was used, so SMS is next
    assert next_channel(chans, [_row("push", "sent")], acct) == "sms"
    # strategy "all": every channel used; the second one that did not fail
    assert next_channel(chans, [_row("push", "sent"), _row("sms", "sent"), _row("email", "sent")], acct) \
        == "sms"
    assert next_channel(chans, [_row("push", "sent"), _row("sms", "failed"), _row("email", "sent")], acct) \
        == "email"
    # a copy to the number changed lately (payload.previous) did not reach the current number: SMS is still next,
    # and its failure does not rule the channel out
    old_number = OutboxRow(channel="sms", status="failed", payload={"previous": True})
    assert next_channel(chans, [_row("push", "sent"), old_number], acct) == "sms"
    # an opted-out number is skipped
    acct.sms_opt_out = True
    assert next_channel(chans, [_row("push", "sent")], acct) == "email"
    assert next_channel(["sms"], [_row("sms", "sent")], acct) is None


def test_reminder_on_the_next_channel_then_expiry_and_ticket(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s, phone=None)  # no phone: the reminder cannot be an SMS
        a = alert(s, channels=["push", "sms", "email"], strategy="fallback")
    chans = channels()
    d = deliverer_factory(chans)
    d.run_once(T0)
    assert len(chans["push"].sent) == 1
    assert escalate_once(app.sessions, now=T0 + timedelta(minutes=29)).reminded == 0
    rep = escalate_once(app.sessions, now=T0 + timedelta(minutes=30))
    assert rep.reminders == [(a.id, "email")]
    d.run_once(T0 + timedelta(minutes=30))
    (mail,) = chans["email"].sent
    assert mail.subject and mail.data.get("actions") == "confirm,deny"  # the reminder asks again
    with app.sessions() as s:
        assert [r.template for r in outbox(s, alert_id=a.id, purpose="reminder")] == ["reminder"]
    assert escalate_once(app.sessions, now=T0 + timedelta(minutes=59)).expired == 0  # a fresh window
    rep = escalate_once(app.sessions, now=T0 + timedelta(minutes=60))
    assert rep.expired == 1 and rep.escalated == 0
    with app.sessions() as s:
        row = s.get(AlertRow, a.id)
        assert row is not None and row.status == "expired"
        (t,) = s.query(Ticket).all()
        assert t.priority == "P2" and row.ticket_id == t.id
    assert escalate_once(app.sessions, now=T0 + timedelta(hours=5)).expired == 0  # once


def test_rule_can_page_staff_without_a_reminder(app: App, deliverer_factory: Any) -> None:
    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["sms", "email"], on_expired=[
            {"type": "escalate", "to": "security-staff", "reminder": False},
            {"type": "ticket", "category": "account_security", "priority": "P2"}])
    staff = channels(escalate=lambda m: DeliveryResult("delivered", provider_id="page-1"))
    deliverer_factory(staff).run_once(T0)
    rep = escalate_once(app.sessions, now=T0 + timedelta(minutes=30))
    assert (rep.reminded, rep.expired, rep.escalated) == (0, 1, 1)
    with app.sessions() as s:
        assert s.get(AlertRow, a.id).status == "escalated"  # type: ignore[union-attr]
        (page,) = outbox(s, alert_id=a.id, channel="escalate")
        assert page.template == "staff_escalation"
    deliverer_factory(staff).run_once(T0 + timedelta(minutes=30))
    assert len(staff["escalate"].sent) == 1


def test_answered_alert_is_neither_reminded_nor_escalated(app: App, deliverer_factory: Any) -> None:
    from alerts.answers import answer

    with app.sessions.begin() as s:
        account(s)
        a = alert(s, channels=["push", "sms"])
    deliverer_factory(channels()).run_once(T0)
    with app.sessions.begin() as s:
        answer(s, a.id, "confirm", channel="push", now=T0 + timedelta(minutes=5))
    rep = escalate_once(app.sessions, now=T0 + timedelta(hours=1))
    assert (rep.reminded, rep.expired) == (0, 0)
