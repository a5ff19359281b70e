"""Support tickets: one open ticket per account and category; later alerts attach to it.

SLA targets per priority (first response, resolution) follow the exchanges' practice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.store.models import Ticket, TicketEvent
from detectors.base import stable_id

PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
SLA: dict[str, tuple[timedelta, timedelta]] = {
    "P1": (timedelta(minutes=15), timedelta(hours=4)),
    "P2": (timedelta(hours=1), timedelta(hours=24)),
    "P3": (timedelta(hours=4), timedelta(hours=72)),
    "P4": (timedelta(hours=24), timedelta(days=7)),
}
TICKET_STATES = ("new", "open", "pending_user", "resolved", "closed")


def open_or_attach(
    session: Session,
    *,
    account_id: str,
    category: str,
    priority: str,
    now: datetime,
    subject: str,
    kind: str,
    ref_id: str | None,
    detail: dict[str, Any] | None = None,
    queue: str | None = None,
    actor: str = "system",
    locale: str | None = None,
) -> Ticket:
    """The open ticket for (account, category), created if needed, with this event on its timeline.

    A higher priority raises the ticket's priority and tightens its SLA deadlines.
    """
    key = f"{account_id}:{category}"
    ticket = session.scalars(select(Ticket).where(Ticket.open_key == key)).first()
    if ticket is None:
        first, resolve = SLA[priority]
        ticket = Ticket(
            id=stable_id("t", key, ref_id or "", now.isoformat()),
            account_id=account_id, category=category, priority=priority, queue=queue or category,
            status="new", subject=subject[:300], open_key=key, locale=locale,
            first_response_due=now + first, resolve_due=now + resolve,
            created_at=now, updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(ticket)
        except IntegrityError:  # another worker opened it first: attach to theirs
            ticket = session.scalars(select(Ticket).where(Ticket.open_key == key)).one()
        else:
            add_event(session, ticket, "opened", now=now, ref_id=None, detail={"priority": priority}, actor=actor)
    elif PRIORITY_RANK[priority] < PRIORITY_RANK[ticket.priority]:
        first, resolve = SLA[priority]
        ticket.priority = priority
        if ticket.first_response_at is None:
            ticket.first_response_due = min(_aware(ticket.first_response_due) or now + first, now + first)
        ticket.resolve_due = min(_aware(ticket.resolve_due) or now + resolve, now + resolve)
        ticket.updated_at = now
        add_event(session, ticket, "priority_raised", now=now, ref_id=ref_id, detail={"priority": priority})
    add_event(session, ticket, kind, now=now, ref_id=ref_id, detail=detail or {}, actor=actor)
    return ticket


def add_event(
    session: Session, ticket: Ticket, kind: str, *, now: datetime, ref_id: str | None,
    detail: dict[str, Any], actor: str = "system",
) -> None:
    if ref_id is not None:
        exists = session.scalars(
            select(TicketEvent.id).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == kind, TicketEvent.ref_id == ref_id
            )
        ).first()
        if exists is not None:
            return
    session.add(TicketEvent(ticket_id=ticket.id, at=now, kind=kind, actor=actor, ref_id=ref_id, detail=detail))
    ticket.updated_at = now


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
