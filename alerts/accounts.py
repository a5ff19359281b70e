"""An account as staff see it, and the one staff action on it: unfreezing.

The CLI (``vigil accounts show|unfreeze``) calls these, and a web console can call the same: the
rules of an unfreeze -- a reason is required, the account must be frozen, the exchange's own
account service is told through the freeze hook, the trail records who, when and why -- live here
once, not in each front end.

The account's audit trail is ``vigil_account_events`` (every freeze and unfreeze).  An unfreeze is
also written where people already look: on the alert whose "not me" froze the account and on the
account's open tickets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.lifecycle import OPEN_STATES
from alerts.outbox import PENDING
from alerts.store.models import AccountEvent, AccountRow, AlertEvent, AlertRow, OutboxRow, Ticket
from detectors.base import stable_id

FROZEN, UNFROZEN = "frozen", "unfrozen"
MAX_REASON = 2000


class AccountError(ValueError):
    """A staff action that cannot be done to this account; the message says why."""


@dataclass(frozen=True)
class Freeze:
    """What froze the account: when, by whom (``system`` for a "not me"), why, and the alert."""

    at: datetime | None
    actor: str
    reason: str
    alert_id: str | None


@dataclass(frozen=True)
class AccountOverview:
    account_id: str
    known: bool  # False: nothing about this account in the engine's tables
    status: str
    freeze: Freeze | None
    contact: dict[str, Any]  # locale, timezone, tier, which channels can reach it
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    recent_alerts: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    trail: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        freeze = None if self.freeze is None else {
            "at": _iso(self.freeze.at), "actor": self.freeze.actor, "reason": self.freeze.reason,
            "alert_id": self.freeze.alert_id}
        return {"account_id": self.account_id, "known": self.known, "status": self.status, "freeze": freeze,
                "contact": self.contact, "open_alerts": self.open_alerts, "recent_alerts": self.recent_alerts,
                "tickets": self.tickets, "trail": self.trail}


def record_freeze(session: Session, account_id: str, *, now: datetime, actor: str, reason: str,
                  alert_id: str | None) -> None:
    """The trail entry of a freeze (called by :func:`alerts.actions.freeze_account`)."""
    session.add(AccountEvent(account_id=account_id, at=now, event=FROZEN, actor=actor, reason=reason,
                             alert_id=alert_id, detail={}))


def overview(session: Session, account_id: str, *, alerts: int = 10, trail: int = 20) -> AccountOverview:
    """Status, what froze it, open and recent alerts, tickets and the audit trail."""
    acct = session.get(AccountRow, account_id)
    rows = session.scalars(select(AlertRow).where(AlertRow.account_id == account_id)
                           .order_by(AlertRow.ts.desc(), AlertRow.id)).all()
    tickets = session.scalars(select(Ticket).where(Ticket.account_id == account_id)
                              .order_by(Ticket.created_at.desc())).all()
    events = session.scalars(select(AccountEvent).where(AccountEvent.account_id == account_id)
                             .order_by(AccountEvent.at.desc(), AccountEvent.id.desc()).limit(trail)).all()
    status = acct.status if acct else "active"
    contact: dict[str, Any] = {}
    if acct is not None:
        contact = {"locale": acct.locale, "timezone": acct.timezone, "tier": acct.tier,
                   "email": bool(acct.email), "phone": bool(acct.phone) and not acct.phone_bad,
                   "push": bool(acct.push_token), "sms_opt_out": acct.sms_opt_out,
                   "source_status": acct.source_status}
    return AccountOverview(
        account_id=account_id,
        known=acct is not None or bool(rows) or bool(tickets),
        status=status,
        freeze=_freeze(acct, events) if status == FROZEN else None,
        contact=contact,
        open_alerts=[_alert(a) for a in rows if a.status in OPEN_STATES],
        recent_alerts=[_alert(a) for a in rows[:alerts]],
        tickets=[{"id": t.id, "priority": t.priority, "status": t.status, "category": t.category,
                  "queue": t.queue, "subject": t.subject, "created_at": _iso(t.created_at),
                  "open": t.open_key is not None} for t in tickets],
        trail=[{"at": _iso(e.at), "event": e.event, "actor": e.actor, "reason": e.reason,
                "alert_id": e.alert_id} for e in events],
    )


def summaries(session: Session, *, frozen_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """Accounts that need a look -- frozen, or with alerts or tickets: frozen first, then by open
    alerts and the latest alert."""
    from sqlalchemy import case, func

    open_ = func.sum(case((AlertRow.status.in_(sorted(OPEN_STATES)), 1), else_=0))
    per: dict[str, dict[str, Any]] = {}
    for acct, n, n_open, last in session.execute(
            select(AlertRow.account_id, func.count(), open_, func.max(AlertRow.ts)).group_by(AlertRow.account_id)):
        per[acct] = {"account_id": acct, "status": "active", "alerts": int(n), "open_alerts": int(n_open or 0),
                     "last_alert": _iso(last), "open_tickets": 0, "frozen_at": None}
    for acct, n in session.execute(select(Ticket.account_id, func.count()).where(Ticket.open_key.is_not(None))
                                   .group_by(Ticket.account_id)):
        per.setdefault(acct, _empty(acct))["open_tickets"] = int(n)
    ids = list(per)
    frozen = session.scalars(select(AccountRow).where(AccountRow.status == FROZEN)).all()
    for a in frozen:
        per.setdefault(a.account_id, _empty(a.account_id))
    for i in range(0, len(ids), 900):
        for a in session.scalars(select(AccountRow).where(AccountRow.account_id.in_(ids[i:i + 900]))):
            per[a.account_id]["status"] = a.status
    for a in frozen:
        per[a.account_id].update(status=FROZEN, frozen_at=_iso(a.frozen_at))
    rows = [r for r in per.values() if not frozen_only or r["status"] == FROZEN]
    rows.sort(key=lambda r: r["last_alert"] or "", reverse=True)  # latest alert first, then (stable):
    rows.sort(key=lambda r: (r["status"] != FROZEN, -r["open_alerts"], -r["open_tickets"]))
    return rows[:limit]


def _empty(account_id: str) -> dict[str, Any]:
    return {"account_id": account_id, "status": "active", "alerts": 0, "open_alerts": 0, "last_alert": None,
            "open_tickets": 0, "frozen_at": None}


def unfreeze_account(session: Session, account_id: str, *, now: datetime, actor: str, reason: str) -> Freeze:
    """Lift a freeze; returns the freeze that was lifted.

    Raises :class:`AccountError` when the reason is empty or the account is not frozen.  The
    exchange's account service hears of it through the freeze hook (outbox channel
    ``freeze_hook``, ``data.action = "unfreeze"``), retried like the freeze was.
    """
    reason = " ".join((reason or "").split())
    if not reason:
        raise AccountError("an unfreeze needs a reason (--reason): it is kept in the account's audit trail")
    acct = session.get(AccountRow, account_id, with_for_update=True)
    if acct is None or acct.status != FROZEN:
        state = "unknown to Vigil" if acct is None else f"not frozen (status {acct.status})"
        raise AccountError(f"account {account_id!r} is {state}; nothing to unfreeze")
    events = session.scalars(select(AccountEvent).where(AccountEvent.account_id == account_id)
                             .order_by(AccountEvent.at.desc(), AccountEvent.id.desc()).limit(5)).all()
    lifted = _freeze(acct, events)
    reason = reason[:MAX_REASON]
    acct.status, acct.frozen_at, acct.frozen_reason, acct.updated_at = "active", None, None, now
    entry = AccountEvent(account_id=account_id, at=now, event=UNFROZEN, actor=actor, reason=reason,
                         alert_id=lifted.alert_id,
                         detail={"frozen_at": _iso(lifted.at), "frozen_by": lifted.actor,
                                 "frozen_reason": lifted.reason})
    session.add(entry)
    session.flush()  # the entry's id is the reference the alert and the tickets point to
    detail = {"reason": reason, "account_event": entry.id, "frozen_at": _iso(lifted.at)}
    alert = session.get(AlertRow, lifted.alert_id) if lifted.alert_id else None
    if alert is not None:
        session.add(AlertEvent(alert_id=alert.id, at=now, event="account_unfrozen", actor=actor, detail=detail))
    open_tickets = session.scalars(select(Ticket.id).where(Ticket.account_id == account_id,
                                                           Ticket.open_key.is_not(None))).all()
    if open_tickets:
        from alerts.ports import ticket_desk

        desk = ticket_desk(session)
        for tid in open_tickets:
            desk.add_event(session, tid, "account_unfrozen", now=now, ref_id=f"account_event:{entry.id}",
                           detail=detail, actor=actor)
    oid = stable_id("o", account_id, "freeze_hook", "unfreeze", str(entry.id))
    session.add(OutboxRow(
        id=oid, alert_id=alert.id if alert is not None else None, account_id=account_id, channel="freeze_hook",
        purpose="unfreeze", template="freeze_hook", priority=0,
        payload={"action": "unfreeze", "reason": reason, "actor": actor}, status=PENDING,
        next_attempt_at=now, created_at=now,
    ))
    return lifted


def _freeze(acct: AccountRow | None, events: Any) -> Freeze:
    """The latest freeze from the trail; an account frozen before the trail existed still says when and why."""
    for e in events:
        if e.event == FROZEN:
            return Freeze(e.at, e.actor, e.reason, e.alert_id)
        if e.event == UNFROZEN:
            break
    reason = (acct.frozen_reason if acct else None) or ""
    alert_id = reason.rsplit(" on alert ", 1)[1] if " on alert " in reason else None
    return Freeze(acct.frozen_at if acct else None, "system", reason, alert_id)


def _alert(a: AlertRow) -> dict[str, Any]:
    return {"id": a.id, "ts": _iso(a.ts), "rule_id": a.rule_id, "severity": a.severity, "status": a.status,
            "mode": a.mode, "answer": a.answer, "ticket_id": a.ticket_id}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None
