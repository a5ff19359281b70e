"""Read side of tickets for staff: filtered, paginated lists and a ticket with its timeline.

The CLI (``vigil tickets``) and the JSON API (``vigil/web/staff.py``) both call these, so a filter
means the same thing in both.  Lists are ordered by urgency -- priority, then resolution deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.store.models import AlertEvent, AlertRow, Delivery, OutboxRow, Ticket, TicketEvent
from tickets.lifecycle import STATES

MAX_PER_PAGE = 200
PRIORITIES = ("P1", "P2", "P3", "P4")


class FilterError(ValueError):
    """A filter value that cannot match anything; the message names the filter and the choices."""


@dataclass(frozen=True)
class TicketFilter:
    queue: Sequence[str] = ()
    status: Sequence[str] = ()
    priority: Sequence[str] = ()
    sla: Sequence[str] = ()
    category: Sequence[str] = ()
    account: str | None = None
    assignee: str | None = None
    active: bool = False  # new, open and pending_user only

    def check(self) -> TicketFilter:
        from tickets.sla import SLA_STATES

        for name, values, allowed in (("status", self.status, STATES),
                                      ("priority", self.priority, PRIORITIES), ("sla", self.sla, SLA_STATES)):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise FilterError(f"{name}: unknown value(s) {', '.join(map(repr, bad))}; "
                                  f"use {', '.join(allowed)}")
        return self


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "page": self.page, "per_page": self.per_page,
                "pages": self.pages, "next_page": self.page + 1 if self.page < self.pages else None}


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)).isoformat()


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id, "account_id": t.account_id, "category": t.category, "priority": t.priority,
        "queue": t.queue, "status": t.status, "subject": t.subject, "assignee": t.assignee,
        "locale": t.locale,
        "sla_state": t.sla_state, "first_response_due": _iso(t.first_response_due),
        "first_response_at": _iso(t.first_response_at), "resolve_due": _iso(t.resolve_due),
        "resolved_at": _iso(t.resolved_at), "resolution_code": t.resolution_code,
        "classifier_confidence": t.classifier_confidence, "external_id": t.external_id,
        "created_at": _iso(t.created_at), "updated_at": _iso(t.updated_at), "version": t.version,
    }


def list_tickets(session: Session, f: TicketFilter, *, page: int = 1, per_page: int = 50) -> Page:
    f.check()
    if page < 1:
        raise FilterError(f"page: must be 1 or more, got {page}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise FilterError(f"per_page: must be between 1 and {MAX_PER_PAGE}, got {per_page}")
    q = select(Ticket)
    for col, values in ((Ticket.queue, f.queue), (Ticket.status, f.status), (Ticket.priority, f.priority),
                        (Ticket.sla_state, f.sla), (Ticket.category, f.category)):
        if values:
            q = q.where(col.in_(list(values)))
    if f.active:
        q = q.where(Ticket.open_key.is_not(None))
    if f.account:
        q = q.where(Ticket.account_id == f.account)
    if f.assignee:
        who = Ticket.assignee.is_(None) if f.assignee == "none" else Ticket.assignee == f.assignee
        q = q.where(who)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Ticket.priority, Ticket.resolve_due, Ticket.id)
                           .offset((page - 1) * per_page).limit(per_page))
    return Page([ticket_dict(t) for t in rows], int(total), page, per_page)


def show_ticket(session: Session, ticket_id: str) -> dict[str, Any] | None:
    """The ticket, its timeline (oldest first) and the alerts it holds.

    The timeline merges the ticket's own events with what happened to its alerts elsewhere in the
    store -- messages queued, delivery receipts, actions such as a freeze -- so staff see one story
    without every writer having to copy its records onto tickets.
    """
    t = session.get(Ticket, ticket_id)
    if t is None:
        return None
    events = list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == t.id)
                                  .order_by(TicketEvent.at, TicketEvent.id)))
    alert_ids = list(dict.fromkeys(
        e.ref_id for e in events if e.kind.startswith(("alert", "user_")) and e.ref_id))
    alerts = {a.id: a for a in session.scalars(select(AlertRow).where(AlertRow.id.in_(alert_ids)))} \
        if alert_ids else {}
    timeline: list[dict[str, Any]] = [
        {"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "ref_id": e.ref_id, "detail": e.detail,
         "source": "ticket"} for e in events]
    if alerts:
        timeline += _alert_story(session, list(alerts))
    timeline.sort(key=lambda e: (e["at"] or "", e["source"] != "ticket"))
    return {
        **ticket_dict(t),
        "timeline": timeline,
        "alerts": [{"id": a.id, "rule_id": a.rule_id, "severity": a.severity, "status": a.status,
                    "answer": a.answer, "ts": _iso(a.ts), "event_ids": a.event_ids}
                   for a in (alerts[i] for i in alert_ids if i in alerts)],
    }


def _alert_story(session: Session, alert_ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rows = list(session.scalars(select(OutboxRow).where(OutboxRow.alert_id.in_(alert_ids))))
    for o in rows:
        out.append({"at": _iso(o.created_at), "kind": "message_queued", "actor": "system",
                    "ref_id": o.alert_id,
                    "detail": {"outbox_id": o.id, "channel": o.channel, "purpose": o.purpose,
                               "template": o.template, "status": o.status}, "source": "outbox"})
    by_id = {o.id: o for o in rows}
    if by_id:
        for d in session.scalars(select(Delivery).where(Delivery.outbox_id.in_(list(by_id)))
                                 .order_by(Delivery.at, Delivery.id)):
            out.append({"at": _iso(d.at), "kind": "delivery", "actor": d.transport,
                        "ref_id": by_id[d.outbox_id].alert_id,
                        "detail": {"outbox_id": d.outbox_id, "channel": d.channel, "attempt": d.attempt,
                                   "status": d.status, "provider_id": d.provider_id, "error": d.error},
                        "source": "delivery"})
    for ev in session.scalars(select(AlertEvent).where(AlertEvent.alert_id.in_(alert_ids),
                                                       AlertEvent.event.like("actions_%"))):
        out.append({"at": _iso(ev.at), "kind": "alert_actions", "actor": ev.actor, "ref_id": ev.alert_id,
                    "detail": {"trigger": ev.event.removeprefix("actions_"), **ev.detail}, "source": "alert"})
    return out
