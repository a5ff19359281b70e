"""SLA clocks for tickets: first response and resolution, business hours, warnings, escalation.

Two clocks per ticket, targets per priority from the ticket policy (e.g. P1: first response 15
minutes, resolution 4 hours).  A target may run on a business-hours calendar: the clock only
moves inside working spans of the calendar's time zone, skipping holidays.  While a ticket waits
for the user (``pending_user``) the resolution clock is paused and its deadline is pushed back by
the time spent waiting when the user answers (Zendesk's "requester wait time" is not the agent's).

``sla_tick`` is what the daemon's escalate job calls: it warns before a breach (once per clock) and
at a breach walks the queue's escalation chain (Grafana OnCall-style steps: notify the staff
channel through an outbox row on channel ``escalate``, reassign, raise priority), each step exactly
once -- the ticket timeline is the record of what was done, so a replayed tick does nothing twice.

The calendar arithmetic and :func:`assess` are pure; only :func:`sla_tick` touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from tickets.lifecycle import ACTIVE, PENDING_USER

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from alerts.store.models import Ticket
    from tickets.routing import Calendar, TicketPolicy

_MAX_DAYS = 3 * 366  # a calendar with no working time in three years is a configuration error
OK, WARNING, BREACHED, PAUSED, MET = "ok", "warning", "breached", "paused", "met"
SLA_STATES = (OK, WARNING, BREACHED, PAUSED, MET)
_RANK = {MET: 0, OK: 1, PAUSED: 2, WARNING: 3, BREACHED: 4}


# -- calendar arithmetic (pure) -------------------------------------------------------------------
def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _spans_on(day: date, cal: Calendar, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The working spans of a local day as UTC intervals (wall-clock hours, so DST is honoured)."""
    if day in cal.holidays:
        return []
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return [(_utc(midnight + timedelta(minutes=a)), _utc(midnight + timedelta(minutes=b)))
            for a, b in cal.spans(day.weekday())]


def add_business_time(start: datetime, amount: timedelta, cal: Calendar | None) -> datetime:
    """``start`` plus ``amount`` of working time (plain addition without a calendar)."""
    start = _utc(start)
    if cal is None:
        return start + amount
    tz = ZoneInfo(cal.timezone)
    left = amount
    day = start.astimezone(tz).date()
    for _ in range(_MAX_DAYS):
        for a, b in _spans_on(day, cal, tz):
            cursor = max(start, a)
            if cursor >= b:
                continue
            if left <= b - cursor:
                return cursor + left
            left -= b - cursor
        day += timedelta(days=1)
    raise ValueError(f"calendar in {cal.timezone} has no working time within {_MAX_DAYS} days")


def business_time_between(a: datetime, b: datetime, cal: Calendar | None) -> timedelta:
    """Working time from ``a`` to ``b`` (negative when ``b`` is earlier)."""
    a, b = _utc(a), _utc(b)
    if cal is None:
        return b - a
    if b < a:
        return -business_time_between(b, a, cal)
    tz = ZoneInfo(cal.timezone)
    total = timedelta(0)
    day, last = a.astimezone(tz).date(), b.astimezone(tz).date()
    while day <= last:
        for s, e in _spans_on(day, cal, tz):
            lo, hi = max(a, s), min(b, e)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


# -- assessment (pure) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Clock:
    name: str  # "first_response" | "resolution"
    state: str  # ok / warning / breached / paused / met, or "none" when the ticket has no deadline
    due: datetime | None
    remaining: timedelta | None  # working time left (negative once breached)


@dataclass(frozen=True)
class Assessment:
    state: str
    clocks: tuple[Clock, Clock]

    def clock(self, name: str) -> Clock:
        return next(c for c in self.clocks if c.name == name)


def due_dates(priority: str, start: datetime, policy: TicketPolicy) -> tuple[datetime, datetime]:
    t = policy.target(priority)
    cal = policy.calendar(priority)
    return add_business_time(start, t.first_response, cal), add_business_time(start, t.resolution, cal)


def warn_before(priority: str, which: str, policy: TicketPolicy) -> timedelta:
    t = policy.target(priority)
    if t.warn_before is not None:
        return t.warn_before
    length = t.first_response if which == "first_response" else t.resolution
    return length * (1 - policy.sla.warn_at)


def assess(
    *, priority: str, status: str, due_first: datetime | None, due_resolve: datetime | None,
    first_response_at: datetime | None, resolved_at: datetime | None, now: datetime, policy: TicketPolicy,
    previous: str = OK,
) -> Assessment:
    """Where a ticket stands against its targets.  A breach is sticky: once breached, always breached."""
    cal = policy.calendar(priority)

    def running(name: str, due: datetime | None, done_at: datetime | None, paused: bool) -> Clock:
        if due is None:
            return Clock(name, "none", None, None)
        if done_at is not None:
            return Clock(name, MET if _utc(done_at) <= _utc(due) else BREACHED, due, None)
        left = business_time_between(now, due, cal)
        if paused:  # waiting for the user: the deadline moves when they answer, so nothing is late yet
            return Clock(name, PAUSED, due, left)
        if left <= timedelta(0):
            return Clock(name, BREACHED, due, left)
        return Clock(name, WARNING if left <= warn_before(priority, name, policy) else OK, due, left)

    pause = status == PENDING_USER and policy.sla.pause_while_pending_user
    first = running("first_response", due_first, first_response_at, False)
    done = resolved_at if status not in ACTIVE else None
    resolution = running("resolution", due_resolve, done or (None if status in ACTIVE else now), pause)
    states = [c.state for c in (first, resolution) if c.state != "none"]
    if status not in ACTIVE:
        overall = BREACHED if BREACHED in states or previous == BREACHED else MET
    else:
        overall = max(states, key=_RANK.__getitem__) if states else OK
        if overall == MET:
            overall = OK
        if previous == BREACHED:
            overall = BREACHED
    return Assessment(overall, (first, resolution))


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
    from sqlalchemy import select

    from alerts.store.models import Ticket
    from tickets.core import policy_for

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


def _done(session: Session, t: Ticket, kind: str, ref: str) -> bool:
    from sqlalchemy import select

    from alerts.store.models import TicketEvent

    found = session.scalars(select(TicketEvent.id).where(
        TicketEvent.ticket_id == t.id, TicketEvent.kind == kind, TicketEvent.ref_id == ref)).first()
    return found is not None


def _warn(session: Session, t: Ticket, c: Clock, now: datetime, pol: TicketPolicy, report: SlaReport) -> None:
    from tickets.core import add_event

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
    from tickets.core import add_event

    if not _done(session, t, "sla_breached", c.name):
        add_event(session, t, "sla_breached", now=now, ref_id=c.name,
                  detail={"clock": c.name, "due": _iso(c.due), "queue": t.queue, "priority": t.priority})
        report.breached += 1
    chain_queue = _breach_queue(session, t, c.name) or t.queue
    assert c.due is not None
    since = now - _utc(c.due)
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
    from sqlalchemy import select

    from alerts.store.models import TicketEvent

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
    from alerts.store.models import OutboxRow
    from detectors.base import stable_id

    oid = stable_id("o", t.id, "escalate", target, purpose)
    if session.get(OutboxRow, oid) is not None:
        return 0
    payload = {"target": target, "ticket_id": t.id, "queue": t.queue, "priority": t.priority,
               "category": t.category, "subject": t.subject, "reason": purpose, **detail}
    session.add(OutboxRow(
        id=oid, alert_id=None, account_id=t.account_id, channel="escalate", purpose=purpose.split(":")[0],
        template="ticket_sla", priority=1 if purpose.startswith("sla_breach") else 3, payload=payload,
        status="pending", next_attempt_at=now, created_at=now,
    ))
    return 1


def _iso(dt: datetime | None) -> str | None:
    return _utc(dt).isoformat() if dt is not None else None
