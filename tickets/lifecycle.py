"""The ticket status lifecycle as a transition table (like ``alerts/lifecycle.py``, after h11).

    new ──ack/assign──► open ──ask_user──► pending_user ──user_reply──► open
     │                   │                     │
     └───────resolve─────┴────────resolve──────┴──► resolved ──close──► closed
                                                      │
                                                      └──reopen──► open

``attach`` (a later alert or message joins the ticket) never moves a ticket backwards: a new
ticket stays new, and a user writing while the ticket waits for them moves it back to ``open``.
Resolving requires a resolution code (false_positive / valuable / risk_confirmed); the code is
what ``vigil report`` turns into per-rule precision.
"""

from __future__ import annotations

from alerts.transitions import TransitionTable

NEW, OPEN, PENDING_USER, RESOLVED, CLOSED = "new", "open", "pending_user", "resolved", "closed"
STATES = (NEW, OPEN, PENDING_USER, RESOLVED, CLOSED)

TRANSITIONS: dict[str, dict[str, str]] = {
    NEW: {"ack": OPEN, "assign": OPEN, "ask_user": PENDING_USER, "resolve": RESOLVED, "attach": NEW,
          "escalate": NEW},
    OPEN: {"ack": OPEN, "assign": OPEN, "ask_user": PENDING_USER, "resolve": RESOLVED, "attach": OPEN,
           "escalate": OPEN},
    PENDING_USER: {"user_reply": OPEN, "attach": OPEN, "assign": PENDING_USER, "resolve": RESOLVED,
                   "escalate": PENDING_USER},
    RESOLVED: {"close": CLOSED, "reopen": OPEN},
    CLOSED: {},
}
EVENTS = frozenset(e for moves in TRANSITIONS.values() for e in moves)
ACTIVE = frozenset({NEW, OPEN, PENDING_USER})  # the SLA clock runs and the ticket holds its open_key

RESOLUTION_CODES = ("false_positive", "valuable", "risk_confirmed")
# how a resolution code labels the alerts on the ticket: Marble's closing labels.  "valuable" is an
# alert worth raising even if no loss was proven, so it counts as a true positive for precision.
CODE_IS_TRUE_POSITIVE = {"false_positive": False, "valuable": True, "risk_confirmed": True}


class TicketStateError(Exception):
    """An illegal move; the message names the state and the event, for a staff member to act on."""

    def __init__(self, state: str, event: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(state, {}))) or "nothing"
        super().__init__(f"a ticket in status {state!r} cannot take {event!r} (allowed: {allowed})")
        self.state = state
        self.event = event


_TABLE = TransitionTable(TRANSITIONS, TicketStateError)


def apply(state: str, event: str) -> str:
    """The next state, or :class:`TicketStateError` for an illegal move."""
    return _TABLE.apply(state, event)


def can(state: str, event: str) -> bool:
    return _TABLE.can(state, event)


def check_code(code: str) -> str:
    if code not in RESOLUTION_CODES:
        raise ValueError(f"unknown resolution code {code!r}; use one of: {', '.join(RESOLUTION_CODES)}")
    return code
