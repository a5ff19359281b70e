"""Support tickets: one open ticket per account and category; later alerts attach to it.

A ticket is opened by a rule action (``alerts/actions.py``), by a denial (``alerts/answers.py``)
or from the user's own words (:func:`open_from_text`).  It is routed to a queue by the ticket
policy (``tickets/routing.py``), gets SLA deadlines for its priority (``tickets/sla.py``), and
keeps a timeline of everything that happened: alerts, messages, receipts, answers, freezes, staff
actions.  Status moves follow the table in ``tickets/lifecycle.py``.

The policy in force is the one the session carries in ``session.info["ticket_policy"]`` (set once
by bootstrap on the sessionmaker), else the shipped default -- so the lead's call sites need no
extra argument and nothing is read at import time.

    TicketError            a staff action cannot be done (message for a person)
    ├── TicketNotFound
    └── TicketConflict     e.g. reopening while another ticket holds the account and category
    TicketStateError       (tickets.lifecycle) an illegal status move
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.store.models import AccountRow, Ticket, TicketEvent
from detectors.base import stable_id
from tickets.lifecycle import ACTIVE, OPEN, PENDING_USER, RESOLVED, apply, check_code
from tickets.sla import assess, business_time_between, due_dates

if TYPE_CHECKING:
    from tickets.classify import Classification, TextClassifier
    from tickets.routing import TicketPolicy

PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
# the shipped policy's targets, kept for callers that read them directly; the policy file wins
SLA: dict[str, tuple[timedelta, timedelta]] = {
    "P1": (timedelta(minutes=15), timedelta(hours=4)),
    "P2": (timedelta(hours=1), timedelta(hours=24)),
    "P3": (timedelta(hours=4), timedelta(hours=72)),
    "P4": (timedelta(hours=24), timedelta(days=7)),
}
TICKET_STATES = ("new", "open", "pending_user", "resolved", "closed")
STAFF_FIRST_RESPONSE = frozenset({"ack", "assign", "ask_user", "resolve"})


# Hooks the modules built on this one register (tickets/__init__.py imports them), so that this
# module does not import them back: surveys on resolution, sentiment on the holder's words.
ON_RESOLVED: list[Any] = []
ON_TEXT: list[Any] = []


class TicketError(Exception):
    pass


class TicketNotFound(TicketError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"no ticket {ticket_id!r}")


class TicketConflict(TicketError):
    pass


def policy_for(session: Session) -> TicketPolicy:
    """The ticket policy wired into this session's factory, else the shipped default."""
    pol = session.info.get("ticket_policy")
    if pol is not None:
        return pol  # type: ignore[no-any-return]
    from tickets.routing import default_policy

    return default_policy()


def session_info(policy_path: str | None = None, model_path: str | None = None) -> dict[str, Any]:
    """What bootstrap passes to ``sessionmaker.configure(info=...)``: the policy, and the desk the
    alert core opens tickets through (``alerts.ports``); raises ``PolicyError`` on a bad file."""
    from tickets.routing import default_policy, load_policy

    info: dict[str, Any] = {"ticket_policy": load_policy(policy_path) if policy_path else default_policy(),
                            "ticket_desk": DESK}
    if model_path:
        info["ticket_model"] = model_path
    return info


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


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
    source: str = "alert",
    confidence: float | None = None,
) -> Ticket:
    """The open ticket for (account, category), created if needed, with this event on its timeline.

    A new ticket is routed by category, priority, severity (``detail["severity"]``), the account's
    tier and language; an explicit ``queue`` wins when the policy knows it.  A higher priority
    raises the ticket's priority, tightens its deadlines and re-routes it if nobody owns it yet.
    A message arriving while the ticket waits for the user moves it back to ``open``.
    """
    pol = policy_for(session)
    detail = detail or {}
    key = f"{account_id}:{category}"
    ticket = session.scalars(select(Ticket).where(Ticket.open_key == key)).first()
    acct = session.get(AccountRow, account_id)
    facts = {"category": category, "severity": detail.get("severity"), "tier": acct.tier if acct else None,
             "language": locale or (acct.locale if acct else None), "source": source}
    if ticket is None:
        routed, why = _route(pol, queue, priority, facts)
        first, resolve = _due(pol, priority, now)
        ticket = Ticket(
            id=stable_id("t", key, ref_id or "", now.isoformat()),
            account_id=account_id, category=category, priority=priority, queue=routed,
            status="new", subject=subject[:300], open_key=key, locale=facts["language"],
            first_response_due=first, resolve_due=resolve, classifier_confidence=confidence,
            sla_state="ok", created_at=now, updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(ticket)
        except IntegrityError:  # another worker opened it first: attach to theirs
            ticket = session.scalars(select(Ticket).where(Ticket.open_key == key)).one()
        else:
            add_event(session, ticket, "opened", now=now, ref_id=None, actor=actor,
                      detail={"priority": priority, "queue": routed, "routed_by": why, "source": source})
    else:
        if PRIORITY_RANK[priority] < PRIORITY_RANK[ticket.priority]:
            _raise_priority(session, ticket, pol, priority, now, ref_id, queue, facts)
        if ticket.status == PENDING_USER:
            move(session, ticket, "attach", now=now, actor=actor, detail={"by": kind})
    add_event(session, ticket, kind, now=now, ref_id=ref_id, detail=detail, actor=actor)
    return ticket


def _route(pol: TicketPolicy, queue: str | None, priority: str, facts: dict[str, Any]) -> tuple[str, str]:
    if queue is not None and queue in pol.queues:
        return queue, "explicit"
    routed, why = pol.route(priority=priority, **facts)
    return routed, why if queue is None else f"{why} (queue {queue!r} is not in the ticket policy)"


def _due(pol: TicketPolicy, priority: str, start: datetime) -> tuple[datetime, datetime]:
    return due_dates(priority, start, pol)


def _raise_priority(session: Session, t: Ticket, pol: TicketPolicy, priority: str, now: datetime,
                    ref_id: str | None, queue: str | None, facts: dict[str, Any], why: str | None = None) -> None:
    first, resolve = _due(pol, priority, now)
    t.priority = priority
    if t.first_response_at is None:
        t.first_response_due = min(_aware(t.first_response_due) or first, first)
    t.resolve_due = min(_aware(t.resolve_due) or resolve, resolve)
    t.updated_at = now
    t.version += 1
    detail: dict[str, Any] = {"priority": priority, **({"why": why} if why else {})}
    if t.assignee is None:
        routed, why = _route(pol, queue, priority, facts)
        if routed != t.queue:
            detail.update(from_queue=t.queue, queue=routed, routed_by=why)
            t.queue = routed
    add_event(session, t, "priority_raised", now=now, ref_id=ref_id, detail=detail)


def raise_one_level(session: Session, ticket: Ticket, *, now: datetime, ref_id: str, why: str) -> bool:
    """One priority level up (P3 -> P2; P1 stays), once per ``ref_id`` -- e.g. a furious message
    (``tickets.sentiment``).  Deadlines tighten and an unowned ticket is re-routed, as when a
    higher-priority alert joins it.  False when nothing changed."""
    if ticket.priority == "P1":
        return False
    seen = session.scalars(select(TicketEvent.id).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "priority_raised",
        TicketEvent.ref_id == ref_id)).first()
    if seen is not None:
        return False
    higher = {"P2": "P1", "P3": "P2", "P4": "P3"}[ticket.priority]
    acct = session.get(AccountRow, ticket.account_id)
    facts = {"category": ticket.category, "severity": None, "tier": acct.tier if acct else None,
             "language": ticket.locale, "source": "text"}
    _raise_priority(session, ticket, policy_for(session), higher, now, ref_id, None, facts, why=why)
    return True


def add_event(
    session: Session, ticket: Ticket, kind: str, *, now: datetime, ref_id: str | None,
    detail: dict[str, Any], actor: str = "system",
) -> None:
    """Append to the timeline; an event with a ``ref_id`` is recorded once per (ticket, kind, ref)."""
    if ref_id is not None:
        exists = session.scalars(
            select(TicketEvent.id).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == kind, TicketEvent.ref_id == ref_id
            )
        ).first()
        if exists is not None:
            return
    session.add(TicketEvent(ticket_id=ticket.id, at=now, kind=kind, actor=actor, ref_id=ref_id,
                            detail=detail))
    ticket.updated_at = now


# -- status moves and staff actions ---------------------------------------------------------------
def move(session: Session, ticket: Ticket, event: str, *, now: datetime, actor: str = "system",
         detail: dict[str, Any] | None = None) -> str:
    """Apply a lifecycle event: status, open_key, first response, SLA pause and resume; the new status."""
    before = ticket.status
    after = apply(before, event)
    pol = policy_for(session)
    if event in STAFF_FIRST_RESPONSE and actor != "system" and ticket.first_response_at is None:
        ticket.first_response_at = now
    if after == PENDING_USER and before != PENDING_USER and pol.sla.pause_while_pending_user \
            and ticket.sla_state != "breached":
        ticket.sla_state = "paused"
    if before == PENDING_USER and after != PENDING_USER and pol.sla.pause_while_pending_user \
            and ticket.resolve_due is not None:
        since = _last_move_into(session, ticket, PENDING_USER) or now
        waited = business_time_between(since, now, pol.calendar(ticket.priority))
        due = _aware(ticket.resolve_due)
        if waited > timedelta(0) and due is not None and due > since:
            ticket.resolve_due = due + waited
    if after == RESOLVED:
        ticket.open_key = None
        ticket.resolved_at = now
        ticket.sla_state = assess(
            priority=ticket.priority, status=after, due_first=ticket.first_response_due,
            due_resolve=ticket.resolve_due, first_response_at=ticket.first_response_at, resolved_at=now,
            now=now, policy=pol, previous=ticket.sla_state).state
    if before == RESOLVED and after == OPEN:
        key = f"{ticket.account_id}:{ticket.category}"
        other = session.scalars(select(Ticket.id).where(Ticket.open_key == key)).first()
        if other is not None:
            raise TicketConflict(f"ticket {other} is already open for {key}; add to it instead of reopening")
        ticket.open_key = key
        ticket.resolved_at = None
        ticket.resolution_code = None
        ticket.resolve_due = _due(pol, ticket.priority, now)[1]  # a reopened ticket gets a fresh target
        ticket.sla_state = "ok"
    ticket.status = after
    ticket.updated_at = now
    ticket.version += 1
    if after != before:
        session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="status", actor=actor, ref_id=None,
                                detail={"from": before, "to": after, "event": event, **(detail or {})}))
    return after


def _last_move_into(session: Session, ticket: Ticket, status: str) -> datetime | None:
    rows = session.scalars(select(TicketEvent)
                           .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "status")
                           .order_by(TicketEvent.at.desc(), TicketEvent.id.desc()))
    for ev in rows:
        if ev.detail.get("to") == status:
            return _aware(ev.at)
    return None


def get_ticket(session: Session, ticket_id: str, *, lock: bool = False) -> Ticket:
    t = session.get(Ticket, ticket_id, with_for_update=lock or None)  # type: ignore[arg-type]
    if t is None:
        raise TicketNotFound(ticket_id)
    return t


def assign(session: Session, ticket_id: str, assignee: str | None, *, now: datetime, actor: str,
           queue: str | None = None) -> Ticket:
    """Give the ticket to a person (and optionally a queue); the first staff touch is the first response."""
    t = get_ticket(session, ticket_id, lock=True)
    if t.status not in ACTIVE:
        raise TicketError(f"ticket {t.id} is {t.status}; reopen it before assigning")
    if queue is not None and queue not in policy_for(session).queues:
        from confkit import closest

        close = closest(queue, list(policy_for(session).queues))
        raise TicketError(f"unknown queue {queue!r}" + (f"; did you mean {close!r}?" if close else ""))
    detail: dict[str, Any] = {"from": t.assignee, "to": assignee}
    if queue is not None and queue != t.queue:
        detail.update(from_queue=t.queue, queue=queue)
        t.queue = queue
    t.assignee = assignee
    move(session, t, "assign", now=now, actor=actor)
    add_event(session, t, "assigned", now=now, ref_id=None, detail=detail, actor=actor)
    return t


def resolve(session: Session, ticket_id: str, code: str, *, now: datetime, actor: str, note: str = ""
            ) -> Ticket:
    """Resolve with a resolution code; the code labels every alert on the ticket for ``vigil report``."""
    check_code(code)
    t = get_ticket(session, ticket_id, lock=True)
    move(session, t, "resolve", now=now, actor=actor, detail={"code": code})
    t.resolution_code = code
    add_event(session, t, "resolved", now=now, ref_id=None, detail={"code": code, "note": note[:2000]},
              actor=actor)
    for hook in ON_RESOLVED:  # the holder's satisfaction survey (tickets.surveys)
        hook(session, t, now=now)
    return t


def transition(session: Session, ticket_id: str, event: str, *, now: datetime, actor: str, note: str = ""
               ) -> Ticket:
    """Any other lifecycle move by staff (ack, ask_user, close, reopen), with an optional note."""
    if event == "resolve":
        raise TicketError("resolving needs a resolution code: use resolve")
    t = get_ticket(session, ticket_id, lock=True)
    move(session, t, event, now=now, actor=actor, detail={"note": note[:2000]} if note else None)
    return t


class Desk:
    """The :class:`alerts.ports.TicketDesk` the composition root hands to the alert core."""

    def open_or_attach(self, session: Session, **kw: Any) -> str:
        return open_or_attach(session, **kw).id

    def add_event(self, session: Session, ticket_id: str, kind: str, *, now: datetime, ref_id: str | None,
                  detail: dict[str, Any], actor: str = "system") -> None:
        t = session.get(Ticket, ticket_id)
        if t is not None:
            add_event(session, t, kind, now=now, ref_id=ref_id, detail=detail, actor=actor)


DESK = Desk()


# -- tickets from the user's own words ------------------------------------------------------------
@dataclass(frozen=True)
class TextTicket:
    ticket: Ticket
    classification: Classification
    triaged: bool


def open_from_text(
    session: Session,
    account_id: str,
    text: str,
    locale: str | None,
    now: datetime,
    *,
    channel: str = "sms",
    ref_id: str | None = None,
    actor: str = "user",
    classifier: TextClassifier | None = None,
) -> TextTicket:
    """Open (or add to) a ticket from a free-text reply or an inbound message.

    The text is categorised (keywords + model); the confidence is recorded on a ticket the text
    opens and on the timeline event, and below the policy's ``triage.min_confidence`` a new
    ticket goes to the triage queue for a person to categorise.
    """
    from tickets.classify import default_classifier

    pol = policy_for(session)
    clf = classifier or default_classifier(session.info.get("ticket_model"))
    c = clf.classify(text, locale)
    triaged = c.confidence < pol.triage.min_confidence
    ref = ref_id or stable_id("m", account_id, channel, text, now.isoformat())
    t = open_or_attach(
        session, account_id=account_id, category=c.category, priority=pol.priority_for_text(c.category),
        now=now, subject=_subject(text), kind="user_message", ref_id=ref, actor=actor, locale=locale,
        source="text",
        queue=pol.triage.queue if triaged else None, confidence=round(c.confidence, 4),
        detail={"text": text[:4000], "locale": locale, "channel": channel, "classification": c.as_dict(),
                "triaged": triaged},
    )
    for hook in ON_TEXT:  # how the holder feels (tickets.sentiment)
        hook(session, t, text, locale, now=now, ref_id=ref, source=channel)
    return TextTicket(t, c, triaged)


def _subject(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= 80 else one[:79] + "…"
