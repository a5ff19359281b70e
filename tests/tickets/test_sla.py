"""SLA clocks (pure): business-hours arithmetic, DST, holidays, and the ticket assessment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickets.routing import Calendar, load_policy
from tickets.sla import add_business_time, assess, business_time_between, due_dates

SEOUL = Calendar.model_validate({"timezone": "Asia/Seoul", "hours": {d: "09:00-18:00" for d in
                                                                     ("mon", "tue", "wed", "thu", "fri")},
                                 "holidays": ["2026-03-02"]})
BERLIN = Calendar.model_validate({"timezone": "Europe/Berlin",
                                  "hours": {"mon": ["09:00-12:00", "13:00-17:00"], "sun": "00:00-24:00"}})


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_business_time_skips_nights_weekends_and_holidays() -> None:
    # Friday 2026-02-27 17:00 KST = 08:00 UTC; 4 working hours: 1 on Friday, Monday 03-02 is a holiday,
    # so 3 more on Tuesday 03-03 from 09:00 KST -> 12:00 KST = 03:00 UTC
    start = utc(2026, 2, 27, 8, 0)
    due = add_business_time(start, timedelta(hours=4), SEOUL)
    assert due == utc(2026, 3, 3, 3, 0)
    assert business_time_between(start, due, SEOUL) == timedelta(hours=4)
    assert business_time_between(due, start, SEOUL) == -timedelta(hours=4)
    # starting at night waits for the morning
    assert add_business_time(utc(2026, 3, 3, 14, 0), timedelta(minutes=15), SEOUL) == utc(2026, 3, 4, 0, 15)


def test_wall_clock_hours_across_a_dst_change() -> None:
    # Europe/Berlin moves to summer time on Sunday 2026-03-29: a 24-hour working Sunday holds 23 hours
    sunday = datetime(2026, 3, 29, tzinfo=UTC) - timedelta(hours=1)  # local midnight, CET
    assert business_time_between(sunday, sunday + timedelta(days=1), BERLIN) == timedelta(hours=23)
    # Monday's lunch break is skipped: 09:00 local (07:00 UTC in CEST) + 4h -> 14:00 local
    assert add_business_time(utc(2026, 3, 30, 7, 0), timedelta(hours=4), BERLIN) == utc(2026, 3, 30, 12, 0)


def test_without_a_calendar_time_is_plain() -> None:
    t = utc(2026, 3, 1)
    assert add_business_time(t, timedelta(minutes=15), None) == t + timedelta(minutes=15)
    assert business_time_between(t, t - timedelta(hours=1), None) == -timedelta(hours=1)


def test_a_calendar_without_working_time_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one working span"):
        Calendar.model_validate({"hours": {"mon": []}})
    cal = Calendar.model_validate({"hours": {"mon": "09:00-10:00"},
                                   "holidays": [date(2026, 3, 2) + timedelta(weeks=w) for w in range(200)]})
    with pytest.raises(ValueError, match="no working time within"):
        add_business_time(utc(2026, 3, 1), timedelta(hours=1), cal)


@settings(max_examples=60, deadline=None)
@given(start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                          timezones=st.just(UTC)),
       minutes=st.integers(min_value=1, max_value=60 * 24 * 10))
def test_adding_then_measuring_business_time_round_trips(start: datetime, minutes: int) -> None:
    for cal in (SEOUL, BERLIN):
        due = add_business_time(start, timedelta(minutes=minutes), cal)
        assert due >= start
        assert business_time_between(start, due, cal) == timedelta(minutes=minutes)


def test_assessment_warns_then_breaches_and_a_breach_is_sticky() -> None:
    pol = load_policy()
    t0 = utc(2026, 3, 10, 1, 0)
    first, resolve = due_dates("P1", t0, pol)
    assert (first - t0, resolve - t0) == (timedelta(minutes=15), timedelta(hours=4))

    def at(minutes: float, **kw: object) -> str:
        args = {"priority": "P1", "status": "new", "due_first": first, "due_resolve": resolve,
                "first_response_at": None, "resolved_at": None, "now": t0 + timedelta(minutes=minutes),
                "policy": pol, **kw}
        return assess(**args).state  # type: ignore[arg-type]

    assert at(11) == "ok"
    assert at(12.5) == "warning"  # within the last 20% of 15 minutes
    assert at(15) == "breached"
    assert at(30, first_response_at=t0 + timedelta(minutes=10), status="open") == "ok"
    assert at(30, first_response_at=t0 + timedelta(minutes=10), status="open",
              previous="breached") == "breached"
    # waiting for the user pauses the resolution clock's warnings; resolving in time is "met"
    assert at(200, first_response_at=t0, status="pending_user") == "paused"
    assert at(300, first_response_at=t0, status="pending_user") == "paused"  # past the due time, waiting
    assert at(200, first_response_at=t0, status="resolved", resolved_at=t0 + timedelta(hours=1)) == "met"
    assert at(300, first_response_at=t0, status="resolved", resolved_at=t0 + timedelta(hours=5)) == "breached"
