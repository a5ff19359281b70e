"""The escalate job: alerts nobody answered in time.

First expiry: a reminder on the next channel and the window starts again.  Second expiry: the
alert expires, the rule's ``on_expired`` actions run (a ticket, staff escalation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.actions import run_actions
from alerts.lifecycle import apply
from alerts.stage import enqueue_notifications
from alerts.store.models import AlertEvent, AlertRow

log = logging.getLogger(__name__)


@dataclass
class EscalateReport:
    reminded: int = 0
    expired: int = 0


def escalate_once(sessions: sessionmaker[Session], *, now: datetime, limit: int = 500) -> EscalateReport:
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
            if alert.escalation_step == 0 and channels:
                # remind on the next channel (the second listed, else the first)
                nxt = channels[1:2] or channels[:1]
                enqueue_notifications(s, alert, now=now, purpose="reminder", template="reminder", channels=nxt)
                alert.escalation_step = 1
                alert.expires_at = now + timedelta(seconds=int(notify.get("expires_s", 1800)))
                s.add(AlertEvent(alert_id=alert.id, at=now, event="reminded", detail={"channels": nxt}))
                report.reminded += 1
            else:
                alert.status = apply(alert.status, "expire")
                alert.escalation_step = 2
                alert.updated_at = now
                s.add(AlertEvent(alert_id=alert.id, at=now, event="expired"))
                run_actions(s, alert, plan.get("on_expired") or [], trigger="expired", now=now)
                report.expired += 1
    return report
