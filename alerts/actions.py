"""Run a rule's actions for an alert: freeze, ticket, webhook, escalate.

Every action is idempotent per (alert, trigger): running the same actions twice -- a replayed
answer, a second "not me" by another channel -- freezes once and opens one ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from alerts.accounts import record_freeze
from alerts.outbox import PENDING
from alerts.ports import ticket_desk
from alerts.store.models import AccountRow, AlertEvent, AlertRow, OutboxRow
from detectors.base import stable_id

SUBJECTS = {
    "account_security": "Account security",
    "trading": "Trading risk",
    "deposit_withdrawal": "Deposits and withdrawals",
    "api": "API",
}


def run_actions(
    session: Session,
    alert: AlertRow,
    actions: Iterable[Mapping[str, Any]],
    *,
    trigger: str,
    now: datetime,
    actor: str = "system",
) -> list[str]:
    """Run serialised actions (``{"type": "ticket", ...}``); returns what was done, for logs."""
    done: list[str] = []
    for a in actions:
        kind = a.get("type")
        if kind == "freeze":
            if freeze_account(session, alert.account_id, now=now, reason=f"{trigger} on alert {alert.id}",
                              alert=alert, actor=actor):
                done.append("freeze")
        elif kind == "ticket":
            category = str(a["category"])
            tid = ticket_desk(session).open_or_attach(
                session, account_id=alert.account_id, category=category, priority=str(a.get("priority", "P3")),
                now=now, subject=f"{SUBJECTS.get(category, category)}: {alert.rule_id} ({alert.severity})",
                kind="alert" if trigger == "match" else f"alert_{trigger}", ref_id=alert.id,
                detail={"rule_id": alert.rule_id, "severity": alert.severity, "trigger": trigger,
                        "evidence": alert.evidence, "event_ids": alert.event_ids},
                queue=a.get("queue"), actor=actor,
            )
            if alert.ticket_id is None or trigger == "denied":
                alert.ticket_id = tid
            done.append(f"ticket:{tid}")
        elif kind in ("webhook", "escalate"):
            target = a.get("name") if kind == "webhook" else a.get("to", "security-staff")
            oid = stable_id("o", alert.id, kind, str(target), trigger)
            if session.get(OutboxRow, oid) is None:
                session.add(OutboxRow(
                    id=oid, alert_id=alert.id, account_id=alert.account_id, channel=kind, purpose=trigger,
                    template="staff_escalation" if kind == "escalate" else "webhook", priority=1,
                    payload={"target": target, "trigger": trigger}, status=PENDING,
                    next_attempt_at=now, created_at=now,
                ))
                done.append(f"{kind}:{target}")
    if done:
        session.add(AlertEvent(alert_id=alert.id, at=now, event=f"actions_{trigger}", actor=actor,
                               detail={"done": done}))
    return done


def freeze_account(
    session: Session, account_id: str, *, now: datetime, reason: str, alert: AlertRow | None = None,
    actor: str = "system",
) -> bool:
    """Mark the account frozen (the built-in account status); False if it already was.

    The exchange's own freeze hook is called through the outbox (channel ``freeze_hook``) so it is
    retried until it succeeds and never runs twice for one alert.
    """
    acct = session.get(AccountRow, account_id, with_for_update=True)
    if acct is None:
        acct = AccountRow(account_id=account_id, status="active", updated_at=now)
        session.add(acct)
    if acct.status == "frozen":
        return False
    acct.status = "frozen"
    acct.frozen_at = now
    acct.frozen_reason = reason
    acct.updated_at = now
    record_freeze(session, account_id, now=now, actor=actor, reason=reason, alert_id=alert.id if alert else None)
    oid = stable_id("o", account_id, "freeze_hook", alert.id if alert else now.isoformat())
    if session.get(OutboxRow, oid) is None:
        session.add(OutboxRow(
            id=oid, alert_id=alert.id if alert else None, account_id=account_id, channel="freeze_hook",
            purpose="freeze", template="freeze_hook", priority=0,
            payload={"action": "freeze", "reason": reason, "actor": actor}, status=PENDING,
            next_attempt_at=now, created_at=now,
        ))
    return True


def acknowledge(session: Session, alert_ids: Iterable[str], *, now: datetime, actor: str) -> list[str]:
    """Staff have seen these alerts (an event on each, once per person); the ids acknowledged now."""
    from sqlalchemy import select

    ids = sorted(set(alert_ids))
    if not ids:
        return []
    seen = set(session.scalars(select(AlertEvent.alert_id).where(
        AlertEvent.alert_id.in_(ids), AlertEvent.event == "acknowledged", AlertEvent.actor == actor)))
    known = set(session.scalars(select(AlertRow.id).where(AlertRow.id.in_(ids))))
    done = [i for i in ids if i in known and i not in seen]
    for i in done:
        session.add(AlertEvent(alert_id=i, at=now, event="acknowledged", actor=actor, detail={}))
    return done
