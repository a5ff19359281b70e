"""SLA clocks for tickets: first response and resolution, business hours, warnings, escalation.

Two clocks per ticket, targets per priority from the ticket policy (e.g. P1: first response 15
minutes, resolution 4 hours).  A target may run on a business-hours calendar: the clock only
moves inside working spans of the calendar's time zone, skipping holidays.  While a ticket waits
for the user (``pending_user``) the resolution clock is paused and its deadline is pushed back by
the time spent waiting when the user answers (Zendesk's "requester wait time" is not the agent's).

Everything here is pure: calendar arithmetic and :func:`assess`.  The tick that acts on the
assessments (warnings, breaches, escalation chains) is :mod:`tickets.escalation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from tickets.lifecycle import ACTIVE, PENDING_USER

if TYPE_CHECKING:
    from tickets.routing import Calendar, TicketPolicy

_MAX_DAYS = 3 * 366  # a calendar with no working time in three years is a configuration error
OK, WARNING, BREACHED, PAUSED, MET = "ok", "warning", "breached", "paused", "met"
SLA_STATES = (OK, WARNING, BREACHED, PAUSED, MET)
_RANK = {MET: 0, OK: 1, PAUSED: 2, WARNING: 3, BREACHED: 4}


# -- calendar arithmetic (pure) -------------------------------------------------------------------
def as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _spans_on(day: date, cal: Calendar, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The working spans of a local day as UTC intervals (wall-clock hours, so DST is honoured)."""
    if day in cal.holidays:
        return []
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return [(as_utc(midnight + timedelta(minutes=a)), as_utc(midnight + timedelta(minutes=b)))
            for a, b in cal.spans(day.weekday())]


def add_business_time(start: datetime, amount: timedelta, cal: Calendar | None) -> datetime:
    """``start`` plus ``amount`` of working time (plain addition without a calendar)."""
    start = as_utc(start)
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
    a, b = as_utc(a), as_utc(b)
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
            return Clock(name, MET if as_utc(done_at) <= as_utc(due) else BREACHED, due, None)
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
