"""The answer policy, as a pure function: who may confirm, deny always wins until its deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.answer_policy import AlertState, Answer, confirm_channels_for, decide
from alerts.lifecycle import apply, can

T = datetime(2026, 3, 1, 12, tzinfo=UTC)
STATUSES = ["new", "notified", "confirmed", "denied", "expired", "escalated", "closed", "shadow", "suppressed"]


def state(status: str = "notified", chans: tuple[str, ...] = ("push", "sms"), confirm_until: datetime | None = None,
          deny_until: datetime | None = None) -> AlertState:
    return AlertState(status, chans, confirm_until or T + timedelta(minutes=30), deny_until or T + timedelta(hours=6))


@pytest.mark.parametrize(("severity", "channels", "configured", "expected"), [
    ("high", ["push", "sms", "email"], None, ("push", "sms")),
    ("critical", ["email", "sms"], None, ("sms",)),
    ("medium", ["push", "email"], None, ("push", "email")),
    ("low", ["email"], None, ("email",)),
    ("high", ["push", "sms", "email"], ["email"], ("email",)),
    ("high", ["push"], ["push", "sms"], ("push",)),  # never a channel the rule does not send on
])
def test_default_confirming_channels(severity: str, channels: list[str], configured: list[str] | None,
                                     expected: tuple[str, ...]) -> None:
    assert confirm_channels_for(severity, channels, configured) == expected


def test_email_cannot_confirm_a_high_alert_but_is_recorded() -> None:
    v = decide(state(), Answer("confirm", "email", True, T))
    assert v.outcome == "unverified" and v.event is None and "email cannot confirm" in v.reason


def test_a_changed_contact_or_a_previous_contact_cannot_confirm() -> None:
    assert decide(state(), Answer("confirm", "sms", False, T)).outcome == "unverified"
    assert decide(state(chans=("email",)), Answer("confirm", "email:previous", True, T)).outcome == "unverified"
    assert decide(state(), Answer("confirm", "push", True, T)).outcome == "confirm"


def test_deny_wins_after_a_confirm_and_after_expiry_until_its_deadline() -> None:
    assert decide(state("confirmed"), Answer("deny", "email", False, T)).outcome == "deny"
    for st_ in ("expired", "escalated"):
        assert decide(state(st_), Answer("deny", "email:previous", True, T + timedelta(hours=2))).outcome == "deny"
    assert decide(state(), Answer("deny", "sms", True, T + timedelta(hours=7))).outcome == "late"
    assert decide(state("denied"), Answer("deny", "push", True, T)).outcome == "repeat"


def test_confirm_never_outlives_the_alert() -> None:
    assert decide(state(), Answer("confirm", "push", True, T + timedelta(minutes=31))).outcome == "late"
    assert decide(state("expired"), Answer("confirm", "push", True, T)).outcome == "late"
    assert decide(state("escalated"), Answer("confirm", "push", True, T)).outcome == "late"
    assert decide(state("denied"), Answer("confirm", "push", True, T)).outcome == "ignored"


@given(st.lists(st.tuples(st.sampled_from(["confirm", "deny"]), st.sampled_from(["push", "sms", "email",
                                                                              "email:previous"]),
                          st.booleans(), st.integers(0, 8 * 60)), max_size=12))
def test_any_sequence_ends_denied_if_a_timely_deny_came_and_freezes_once(
        answers: list[tuple[str, str, bool, int]]) -> None:
    """Whatever arrives in whatever order, one timely deny leaves the alert denied, and exactly one
    answer applies the deny (the one that freezes and opens the P1 ticket)."""
    status = "notified"
    denies_applied = 0
    for action, via, settled, minutes in sorted(answers, key=lambda a: a[3]):
        at = T + timedelta(minutes=minutes)
        if status == "notified" and at > T + timedelta(minutes=30):
            status = apply(status, "expire")  # the escalate job, in time order
        v = decide(state(status), Answer(action, via, settled, at))  # type: ignore[arg-type]
        if v.event is not None:
            assert can(status, v.event)
            status = apply(status, v.event)
            denies_applied += v.event == "deny"
    timely_deny = any(a == "deny" and m <= 6 * 60 for a, _v, _s, m in answers)
    assert (status == "denied") == timely_deny
    assert denies_applied == (1 if timely_deny else 0)


@pytest.mark.parametrize("status", STATUSES)
def test_every_verdict_is_a_legal_move(status: str) -> None:
    for action in ("confirm", "deny"):
        v = decide(state(status), Answer(action, "push", True, T))  # type: ignore[arg-type]
        if v.event is not None:
            assert can(status, v.event)
