"""Retrying a dead letter by hand (the console's retry button).

A dead letter (``failed`` / ``dead``) is history and stays as it was; a retry is a *new* outbox
row with the same message, ``pending`` now, and the dead row's payload points at it
(``requeued_as``), so the dead letters list shows what was done and a second click does nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from alerts.outbox import DEAD_LETTERS, PENDING
from alerts.store.models import OutboxRow
from detectors.base import stable_id


class RetryRefused(ValueError):
    pass


def retry_dead_letter(session: Session, outbox_id: str, *, now: datetime, actor: str) -> str:
    """Queue the dead message again; the new outbox id."""
    row = session.get(OutboxRow, outbox_id, with_for_update=True)
    if row is None:
        raise RetryRefused(f"no outbox message {outbox_id!r}")
    if row.status not in DEAD_LETTERS:
        raise RetryRefused(f"message {outbox_id} is {row.status}, not a dead letter")
    if (row.payload or {}).get("requeued_as"):
        raise RetryRefused(f"message {outbox_id} was already retried as {row.payload['requeued_as']}")
    new_id = stable_id("o", row.id, "retry", now.isoformat())
    payload = {k: v for k, v in (row.payload or {}).items() if k not in ("coalesced", "throttled")}
    session.add(OutboxRow(id=new_id, alert_id=row.alert_id, account_id=row.account_id, channel=row.channel,
                          purpose=row.purpose, template=row.template, priority=row.priority,
                          payload={**payload, "retry_of": row.id, "retried_by": actor}, status=PENDING,
                          next_attempt_at=now, created_at=now))
    row.payload = {**(row.payload or {}), "requeued_as": new_id, "retried_by": actor}
    return new_id
