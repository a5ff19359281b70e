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

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from alerts.transitions import TransitionTable
from detectors.base import stable_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from alerts.store.models import AlertRow


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


def outbox_rows(alert: Any, *, now: datetime, purpose: str = "alert", template: str | None = None,
                channels: list[str] | None = None) -> list[dict[str, Any]]:
    """The outbox rows an alert's notification takes: one per channel (``strategy: all``) or the
    first channel with the rest as fallback.  ``alert`` is a row or anything with its attributes."""
    plan = (alert.plan or {}).get("notify") or {}
    chans = channels if channels is not None else list(plan.get("channels", []))
    if not chans:
        return []
    tmpl = template or plan.get("template") or alert.template
    prio = {"critical": 0, "high": 1, "medium": 3, "low": 5}.get(alert.severity, 5)
    pairs = [(chans[0], chans[1:])] if plan.get("strategy") == "fallback" and purpose == "alert" else [
        (c, []) for c in chans]
    return [{
        "id": stable_id("o", alert.id, ch, purpose), "alert_id": alert.id, "account_id": alert.account_id,
        "channel": ch, "purpose": purpose, "template": tmpl, "priority": prio, "payload": {"fallback": fallback},
        "status": PENDING, "next_attempt_at": now, "created_at": now,
    } for ch, fallback in pairs]


def enqueue_notifications(session: Session, alert: AlertRow, *, now: datetime, purpose: str = "alert",
                          template: str | None = None, channels: list[str] | None = None) -> int:
    """Queue one alert's notification (reminders, guidance); rows that exist already are kept."""
    from alerts.store.models import OutboxRow

    made = 0
    for r in outbox_rows(alert, now=now, purpose=purpose, template=template, channels=channels):
        if session.get(OutboxRow, r["id"]) is not None:
            continue
        session.add(OutboxRow(**r))
        made += 1
    return made
