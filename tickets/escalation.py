"""The SLA tick: warnings before a breach, breaches, and the queues' escalation chains.

``sla_tick`` is what the daemon's escalate job calls (the composition root hands it to
:func:`delivery.escalate.escalate_once`): it warns before a breach (once per clock) and at a
breach walks the queue's escalation chain (Grafana OnCall-style steps: notify the staff channel
through an outbox row on channel ``escalate``, reassign, raise priority), each step exactly once
-- the ticket timeline is the record of what was done, so a replayed tick does nothing twice.

Split from :mod:`tickets.sla` (pure clocks) so that the clocks and the ticket operations
(:mod:`tickets.core`) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.outbox import PENDING
from alerts.store.models import OutboxRow, Ticket, TicketEvent
from detectors.base import stable_id
from tickets.core import add_event, policy_for
from tickets.lifecycle import ACTIVE
from tickets.routing import TicketPolicy
from tickets.sla import BREACHED, WARNING, Clock, as_utc, assess


# -- the escalate job's part (store) --------------------------------------------------------------
@dataclass
class SlaReport:
    checked: int = 0
    warned: int = 0
    breached: int = 0
    escalation_steps: int = 0
    notified: int = 0
    reassigned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"checked": self.checked, "warned": self.warned, "breached": self.breached,
                "escalation_steps": self.escalation_steps, "notified": self.notified,
                "reassigned": len(self.reassigned)}


def sla_tick(session: Session, now: datetime, *, policy: TicketPolicy | None = None, limit: int = 5000
             ) -> SlaReport:
    """Warn, mark breaches and run due escalation steps for active tickets (caller's transaction).

    Tickets are locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two daemon replicas split the
    work instead of notifying twice.
    """
    pol = policy or policy_for(session)
    report = SlaReport()
    tickets = list(session.scalars(
        select(Ticket).where(Ticket.status.in_(sorted(ACTIVE)))
        .order_by(Ticket.resolve_due, Ticket.id).limit(limit).with_for_update(skip_locked=True)
    ))
    for t in tickets:
        report.checked += 1
        a = assess(priority=t.priority, status=t.status, due_first=t.first_response_due,
                   due_resolve=t.resolve_due, first_response_at=t.first_response_at,
                   resolved_at=t.resolved_at, now=now, policy=pol, previous=t.sla_state)
        for c in a.clocks:
            if c.state == WARNING:
                _warn(session, t, c, now, pol, report)
            elif c.state == BREACHED and c.remaining is not None:  # breached while still running
                _breach(session, t, c, now, pol, report)
        if a.state != t.sla_state:
            t.sla_state = a.state
            t.updated_at = now
    return report


def sla_tick_report(session: Session, now: datetime) -> dict[str, int]:
    """:func:`sla_tick` as the plain counts the escalate job reports (``EscalateReport.sla``)."""
    from tickets.surveys import release_held

    counts = sla_tick(session, now).as_dict()
    counts["surveys_released"] = release_held(session, now=now)  # accounts unfrozen since
    return counts


def _done(session: Session, t: Ticket, kind: str, ref: str) -> bool:
    found = session.scalars(select(TicketEvent.id).where(
        TicketEvent.ticket_id == t.id, TicketEvent.kind == kind, TicketEvent.ref_id == ref)).first()
    return found is not None


def _warn(session: Session, t: Ticket, c: Clock, now: datetime, pol: TicketPolicy, report: SlaReport) -> None:
    if _done(session, t, "sla_warning", c.name):
        return
    q = pol.queues.get(t.queue)
    left = int(c.remaining.total_seconds()) if c.remaining else 0
    detail: dict[str, object] = {"clock": c.name, "due": _iso(c.due), "left_s": left}
    add_event(session, t, "sla_warning", now=now, ref_id=c.name, detail=detail)
    report.warned += 1
    if q is not None and q.notify:
        report.notified += _notify(session, t, q.notify, f"sla_warning:{c.name}", now, detail)


def _breach(session: Session, t: Ticket, c: Clock, now: datetime, pol: TicketPolicy, report: SlaReport
            ) -> None:
    if not _done(session, t, "sla_breached", c.name):
        add_event(session, t, "sla_breached", now=now, ref_id=c.name,
                  detail={"clock": c.name, "due": _iso(c.due), "queue": t.queue, "priority": t.priority})
        report.breached += 1
    chain_queue = _breach_queue(session, t, c.name) or t.queue
    assert c.due is not None
    since = now - as_utc(c.due)
    for i, step in enumerate(pol.chain(chain_queue)):
        ref = f"{c.name}:{i}"
        if since < (step.after or timedelta(0)):
            break  # steps are ordered: a later step never runs before an earlier one
        if _done(session, t, "sla_escalated", ref):
            continue
        did: dict[str, object] = {"clock": c.name, "step": i}
        if step.notify:
            target = _target(step.notify, chain_queue, pol)
            if target:
                report.notified += _notify(session, t, target, f"sla_breach:{ref}", now,
                                           {"clock": c.name, "due": _iso(c.due), "step": i})
                did["notified"] = target
        if step.reassign and step.reassign != t.queue:
            did["from_queue"], t.queue = t.queue, step.reassign
            did["queue"] = step.reassign
            report.reassigned.append(t.id)
        if step.assignee or step.reassign:
            did["from_assignee"], t.assignee = t.assignee, step.assignee
            did["assignee"] = step.assignee
        if step.raise_priority and t.priority != "P1":
            did["from_priority"], t.priority = t.priority, f"P{int(t.priority[1]) - 1}"
            did["priority"] = t.priority
        t.updated_at = now
        t.version += 1
        add_event(session, t, "sla_escalated", now=now, ref_id=ref, detail=did)
        report.escalation_steps += 1


def _breach_queue(session: Session, t: Ticket, clock: str) -> str | None:
    """The queue whose chain applies: the one the ticket was in when the clock breached."""
    ev = session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == t.id, TicketEvent.kind == "sla_breached", TicketEvent.ref_id == clock,
    )).first()
    return str(ev.detail.get("queue")) if ev is not None and ev.detail.get("queue") else None


def _target(notify: str, queue: str, pol: TicketPolicy) -> str | None:
    """``notify: queue`` means the queue's own staff target."""
    if notify == "queue":
        q = pol.queues.get(queue)
        return q.notify if q else None
    return notify


def _notify(session: Session, t: Ticket, target: str, purpose: str, now: datetime, detail: dict[str, object]
            ) -> int:
    oid = stable_id("o", t.id, "escalate", target, purpose)
    if session.get(OutboxRow, oid) is not None:
        return 0
    payload = {"target": target, "ticket_id": t.id, "queue": t.queue, "priority": t.priority,
               "category": t.category, "subject": t.subject, "reason": purpose, **detail}
    session.add(OutboxRow(
        id=oid, alert_id=None, account_id=t.account_id, channel="escalate", purpose=purpose.split(":")[0],
        template="ticket_sla", priority=1 if purpose.startswith("sla_breach") else 3, payload=payload,
        status=PENDING, next_attempt_at=now, created_at=now,
    ))
    return 1


def _iso(dt: datetime | None) -> str | None:
    return as_utc(dt).isoformat() if dt is not None else None
