"""Ports: what the alert core asks of the packages above it, handed in by the composition root.

A rule's ticket action and a "not me" open tickets, but the ticket package sits *above* alerts
in the layer order (tickets are built on alerts' models and lifecycle), so the alert core talks
to a :class:`TicketDesk` instead of importing it.  The composition root (``vigil.bootstrap``,
through :func:`tickets.core.session_info`) puts one on the session factory, next to the ticket
policy: ``sessionmaker.configure(info={"ticket_desk": ..., ...})``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session


class TicketDesk(Protocol):
    def open_or_attach(self, session: Session, *, account_id: str, category: str, priority: str, now: datetime,
                       subject: str, kind: str, ref_id: str | None, detail: dict[str, Any] | None = None,
                       queue: str | None = None, actor: str = "system") -> str:
        """The id of the open ticket for (account, category), opened if needed, with this event on it."""
        ...

    def add_event(self, session: Session, ticket_id: str, kind: str, *, now: datetime, ref_id: str | None,
                  detail: dict[str, Any], actor: str = "system") -> None:
        """Append to a ticket's timeline (once per ticket, kind and ``ref_id``)."""
        ...


def ticket_desk(session: Session) -> TicketDesk:
    """The desk wired into this session's factory; a missing one is a wiring bug, said plainly."""
    desk = session.info.get("ticket_desk")
    if desk is None:
        raise LookupError("no ticket desk on this session factory: wire one with "
                          "sessionmaker.configure(info=tickets.core.session_info()) (vigil.bootstrap does)")
    return desk  # type: ignore[no-any-return]
