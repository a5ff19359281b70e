"""The account holder's answer to "was this you?", whichever channel it comes by.

"Not me" freezes the account, sends freeze guidance and opens a P1 ticket -- exactly once,
however many times and by whichever channels the answer arrives (the alert row is locked and
the lifecycle refuses a second denial).  "It was me" closes the alert and never releases a hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from alerts.actions import run_actions
from alerts.lifecycle import DENIED, apply, can
from alerts.ports import ticket_desk
from alerts.stage import enqueue_notifications
from alerts.store.models import AlertEvent, AlertRow, ConfirmToken

DEFAULT_ON_DENIED = [{"type": "freeze", "scope": "account"},
                     {"type": "ticket", "category": "account_security", "priority": "P1"}]


@dataclass(frozen=True)
class AnswerResult:
    applied: bool
    status: str
    message: str


def answer(session: Session, alert_id: str, action: str, *, channel: str, now: datetime,
           actor: str = "user") -> AnswerResult:
    """Apply ``confirm`` or ``deny`` to an alert (inside the caller's transaction)."""
    if action not in ("confirm", "deny"):
        raise ValueError(f"unknown answer {action!r}")
    alert = session.get(AlertRow, alert_id, with_for_update=True)
    if alert is None:
        return AnswerResult(False, "missing", "no such alert")
    if alert.status == DENIED and action == "deny":
        session.add(AlertEvent(alert_id=alert.id, at=now, event="answer_repeated", actor=actor,
                               detail={"action": action, "channel": channel}))
        return AnswerResult(False, alert.status, "already denied")
    if not can(alert.status, action):
        session.add(AlertEvent(alert_id=alert.id, at=now, event="answer_ignored", actor=actor,
                               detail={"action": action, "channel": channel, "status": alert.status}))
        return AnswerResult(False, alert.status, f"alert is {alert.status}")
    alert.status = apply(alert.status, action)
    alert.answer = action
    alert.answered_at = now
    alert.updated_at = now
    alert.version += 1
    session.add(AlertEvent(alert_id=alert.id, at=now, event=f"answer_{action}", actor=actor,
                           detail={"channel": channel}))
    # every other link of this alert stops working
    session.execute(update(ConfirmToken).where(ConfirmToken.alert_id == alert.id, ConfirmToken.used_at.is_(None))
                    .values(used_at=now, used_action="superseded")
                    .execution_options(synchronize_session=False))
    plan = alert.plan or {}
    if action == "deny":
        actions = plan.get("on_denied") or DEFAULT_ON_DENIED
        run_actions(session, alert, actions, trigger="denied", now=now, actor=actor)
        if not any(a.get("type") == "ticket" for a in actions):
            alert.ticket_id = ticket_desk(session).open_or_attach(
                session, account_id=alert.account_id, category="account_security", priority="P1", now=now,
                subject=f"Account security: user denied {alert.rule_id}", kind="alert_denied", ref_id=alert.id,
                detail={"rule_id": alert.rule_id})
        channels = list((plan.get("notify") or {}).get("channels") or alert.channels or ["email"])
        enqueue_notifications(session, alert, now=now, purpose="guidance", template="freeze_guidance",
                              channels=channels)
    else:
        run_actions(session, alert, plan.get("on_confirmed") or [], trigger="confirmed", now=now, actor=actor)
    if alert.ticket_id:
        ticket_desk(session).add_event(session, alert.ticket_id, f"user_{action}", now=now, ref_id=alert.id,
                                       detail={"channel": channel}, actor=actor)
    return AnswerResult(True, alert.status, "ok")
