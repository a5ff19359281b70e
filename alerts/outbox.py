"""Outbox statuses as a transition table, like the alert lifecycle and the ticket statuses.

    pending ─┐                 ┌─ sent ──┬─ deliver ─► delivered
    retry  ──┼─ claim ─► sending ─┤         ├─ undeliver ─► undelivered (next channel)
    held   ──┘   (lease)        │         ├─ cancel ─► canceled
       ▲   │                    │         ├─ retry (a receipt's one delayed retry) ─► retry
       │   └ coalesce ─► coalesced         └─ unconfirm (no receipt in time) ─► unconfirmed
       └── hold / retry ────────┤  deliver ─► delivered     fail ─► failed     die ─► dead
                                 └ coalesce ─► coalesced (merged into a message that went out)

Rows are created ``pending`` by the alert stage, rule actions, the SLA tick and the daemon; the
delivery package moves them (``delivery/``), every move through :func:`apply`.  A late receipt
may still say ``delivered`` (or ``read``) after ``undelivered`` or ``canceled``.
"""

from __future__ import annotations

from enum import StrEnum

from alerts.transitions import TransitionTable


class OutboxStatus(StrEnum):
    PENDING = "pending"
    RETRY = "retry"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    UNCONFIRMED = "unconfirmed"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    CANCELED = "canceled"
    COALESCED = "coalesced"
    FAILED = "failed"
    DEAD = "dead"


S = OutboxStatus
_AFTER_SEND = {"deliver": S.DELIVERED, "undeliver": S.UNDELIVERED, "cancel": S.CANCELED, "retry": S.RETRY}
TRANSITIONS: dict[str, dict[str, str]] = {
    S.PENDING: {"claim": S.SENDING},
    S.RETRY: {"claim": S.SENDING},
    S.HELD: {"claim": S.SENDING, "coalesce": S.COALESCED},
    S.SENDING: {"claim": S.SENDING,  # a lease that ran out is taken over
                "sent": S.SENT, "deliver": S.DELIVERED, "retry": S.RETRY, "hold": S.HELD,
                "coalesce": S.COALESCED, "fail": S.FAILED, "die": S.DEAD},
    S.SENT: {**_AFTER_SEND, "unconfirm": S.UNCONFIRMED},
    S.UNCONFIRMED: dict(_AFTER_SEND),
    S.DELIVERED: {},
    S.UNDELIVERED: {"deliver": S.DELIVERED},
    S.CANCELED: {"deliver": S.DELIVERED},
    S.COALESCED: {},
    S.FAILED: {},
    S.DEAD: {},
}
READY = tuple(s.value for s in (S.PENDING, S.RETRY, S.HELD))  # claimable once ``next_attempt_at`` is due
DEAD_LETTERS = (S.FAILED.value, S.DEAD.value)
PENDING = S.PENDING.value  # what every new row starts as


class OutboxStateError(ValueError):
    """An illegal outbox move (a bug in the delivery code, never a delivery failure)."""


def _error(state: str, event: str) -> OutboxStateError:
    return OutboxStateError(f"an outbox message in status {state!r} cannot take event {event!r}")


# plain strings in and out, as stored in ``vigil_outbox.status``
_TABLE = TransitionTable({str(k): {e: str(v) for e, v in m.items()} for k, m in TRANSITIONS.items()}, _error)
apply = _TABLE.apply  # the next status, or OutboxStateError for an illegal move
can = _TABLE.can
