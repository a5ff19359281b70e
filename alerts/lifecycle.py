"""The alert lifecycle as a transition table (after h11's ``_state.py``).

    new ──notify──► notified ──confirm──► confirmed ──close──► closed
     │                 │  └────deny────► denied ──close──► closed
     │                 └──expire──► expired ──escalate──► escalated
     └── (shadow rules create alerts in ``shadow``; suppressed ones in ``suppressed``: neither moves)

"Not me" wins over everything before it: a user who first tapped "it was me" and then "not me"
ends denied.  "It was me" never undoes a denial, and an expired or escalated alert can no longer
be confirmed (only denied).  Who may answer, by which channel and until when, is decided by
:mod:`alerts.answer_policy` before an event reaches this table.
"""

from __future__ import annotations

from alerts.transitions import TransitionTable

NEW, NOTIFIED, CONFIRMED, DENIED, EXPIRED, ESCALATED, CLOSED, SHADOW, SUPPRESSED = (
    "new", "notified", "confirmed", "denied", "expired", "escalated", "closed", "shadow", "suppressed",
)

TRANSITIONS: dict[str, dict[str, str]] = {
    NEW: {"notify": NOTIFIED, "confirm": CONFIRMED, "deny": DENIED, "expire": EXPIRED, "close": CLOSED},
    NOTIFIED: {"notify": NOTIFIED, "confirm": CONFIRMED, "deny": DENIED, "expire": EXPIRED, "close": CLOSED},
    EXPIRED: {"notify": EXPIRED, "deny": DENIED, "escalate": ESCALATED, "close": CLOSED},
    ESCALATED: {"notify": ESCALATED, "deny": DENIED, "close": CLOSED},
    CONFIRMED: {"notify": CONFIRMED, "deny": DENIED, "close": CLOSED},
    DENIED: {"notify": DENIED, "close": CLOSED},
    CLOSED: {},
    SHADOW: {},
    SUPPRESSED: {},
}
OPEN_STATES = frozenset({NEW, NOTIFIED, EXPIRED, ESCALATED})
ANSWERABLE = frozenset({NEW, NOTIFIED, EXPIRED, ESCALATED, CONFIRMED})


class LifecycleError(Exception):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"an alert in state {state!r} cannot take event {event!r}")
        self.state = state
        self.event = event


_TABLE = TransitionTable(TRANSITIONS, LifecycleError)


def apply(state: str, event: str) -> str:
    """The next state, or :class:`LifecycleError` for an illegal move."""
    return _TABLE.apply(state, event)


def can(state: str, event: str) -> bool:
    return _TABLE.can(state, event)
