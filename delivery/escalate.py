"""The escalate job: alerts nobody answered in time.

First expiry: a reminder on the *next* channel -- the first of the rule's channels that has not
carried this alert yet and can still reach the account (no SMS to an opted-out or dead number,
no push without a token), else the next one after the first that did not fail -- and the window
starts again.  A rule can skip the reminder (``on_expired: [{escalate: {reminder: false}}]``).
Second expiry: the alert expires and the rule's ``on_expired`` actions run (a ticket, staff
escalation); when they page staff, the alert moves on to ``escalated``.

Rows are locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two daemons never remind or
escalate the same alert twice; reminders and actions are idempotent besides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.actions import run_actions
from alerts.lifecycle import apply, can
from alerts.outbox import DEAD_LETTERS, OutboxStatus, enqueue_notifications
from alerts.store.models import AccountRow, AlertEvent, AlertRow, OutboxRow

log = logging.getLogger(__name__)
SlaTick = Callable[[Session, datetime], Mapping[str, Any]]  # the ticket SLA tick (tickets.escalation)
FAILED = (*DEAD_LETTERS, OutboxStatus.UNDELIVERED.value, OutboxStatus.CANCELED.value)  # the channel did not carry it


@dataclass
class EscalateReport:
    reminded: int = 0
    expired: int = 0
    escalated: int = 0
    reminders: list[tuple[str, str]] = field(default_factory=list)  # (alert_id, channel)
    sla: dict[str, Any] = field(default_factory=dict)  # ticket SLA warnings, breaches, escalations


def reachable(acct: AccountRow | None, channel: str) -> bool:
    """Can ``channel`` still reach the account?  Channels without a contact field always can."""
    if acct is None:
        return True
    if channel == "sms":
        return bool(acct.phone) and not acct.sms_opt_out and not acct.phone_bad
    if channel == "push":
        return bool(acct.push_token)
    if channel == "email":
        return bool(acct.email)
    return True


def next_channel(channels: list[str], rows: list[OutboxRow], acct: AccountRow | None) -> str | None:
    """The channel for the reminder (pure given the alert's outbox rows).

    A copy sent to a contact changed lately (``payload.previous``) neither uses up nor fails the
    channel: the account's current contact on it has not been tried."""
    rows = [r for r in rows if not (r.payload or {}).get("previous")]
    failed = {r.channel for r in rows if r.status in FAILED}
    used = {r.channel for r in rows}
    usable = [c for c in channels if c not in failed and reachable(acct, c)]
    fresh = [c for c in usable if c not in used]
    if fresh:
        return fresh[0]
    rest = usable[1:2] or usable[:1]
    return rest[0] if rest else None


def _wants_reminder(plan: dict[str, Any]) -> bool:
    actions = plan.get("on_expired") or []
    return not any(a.get("type") == "escalate" and a.get("reminder") is False for a in actions)


def escalate_once(sessions: sessionmaker[Session], *, now: datetime, limit: int = 500,
                  sla: SlaTick | None = None) -> EscalateReport:
    """Remind and expire unanswered alerts; then run ``sla`` (the ticket SLA tick the composition
    root passes in, :func:`tickets.escalation.sla_tick`) in a transaction of its own."""
    report = EscalateReport()
    with sessions.begin() as s:
        due = list(s.scalars(
            select(AlertRow).where(AlertRow.confirm.is_(True), AlertRow.status.in_(("new", "notified")),
                                   AlertRow.expires_at <= now)
            .order_by(AlertRow.expires_at).limit(limit).with_for_update(skip_locked=True)
        ))
        for alert in due:
            plan = alert.plan or {}
            notify = plan.get("notify") or {}
            channels = list(notify.get("channels") or alert.channels)
            nxt = None
            if alert.escalation_step == 0 and channels and _wants_reminder(plan):
                rows = list(s.scalars(select(OutboxRow).where(OutboxRow.alert_id == alert.id,
                                                              OutboxRow.purpose == "alert")))
                nxt = next_channel(channels, rows, s.get(AccountRow, alert.account_id))
            if nxt is not None:
                enqueue_notifications(s, alert, now=now, purpose="reminder", template="reminder",
                                      channels=[nxt])
                alert.escalation_step = 1
                alert.expires_at = now + timedelta(seconds=int(notify.get("expires_s", 1800)))
                alert.updated_at = now
                s.add(AlertEvent(alert_id=alert.id, at=now, event="reminded", detail={"channels": [nxt]}))
                report.reminded += 1
                report.reminders.append((alert.id, nxt))
                continue
            alert.status = apply(alert.status, "expire")
            alert.escalation_step = 2
            alert.updated_at = now
            s.add(AlertEvent(alert_id=alert.id, at=now, event="expired"))
            done = run_actions(s, alert, plan.get("on_expired") or [], trigger="expired", now=now)
            report.expired += 1
            paged = [d.split(":", 1)[1] for d in done if d.startswith("escalate:")]
            if paged and can(alert.status, "escalate"):
                alert.status = apply(alert.status, "escalate")
                s.add(AlertEvent(alert_id=alert.id, at=now, event="escalated", detail={"to": paged}))
                report.escalated += 1
    # ticket SLA clocks, in a transaction of their own: a warning before a breach, escalation at it
    if sla is not None:
        with sessions.begin() as s:
            report.sla = dict(sla(s, now))
    return report
