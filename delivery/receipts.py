"""The delivery state machine, fed by provider callbacks (Twilio status callbacks).

Callbacks arrive late, twice, or out of order ("delivered" before "sent"), so a receipt moves a
message only *forward*: each status has a rank and a receipt whose rank is not above the
message's current one changes nothing (it is still written to the audit trail).  Receipts are
matched on the provider's message id (``OutboxRow.provider_id``), which makes a replayed callback
harmless.

    pending ─► sending ─► sent ──────► delivered (read)
                            │  └─(no receipt in time)─► unconfirmed ─► delivered | undelivered
                            └────► undelivered / failed ─► retry once (30001, 30003, 30008)
                                                       └─► next channel (fallback)

An undelivered message falls back to the next channel of its alert (``payload["fallback"]``);
so does a message with no receipt within ``receipt_timeout_seconds`` (:func:`sweep_unconfirmed`).
What the error code says about the number (opted out, unreachable landline) is recorded on the
account, so later messages skip SMS.  Codes: ``research/notify-anchors.md`` §1.6.

:func:`step` is the pure transition; the rest applies it to the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.lifecycle import OPEN_STATES
from alerts.outbox import PENDING, OutboxStatus, apply
from alerts.store.models import AccountRow, AlertRow, Delivery, OutboxRow
from detectors.base import stable_id

log = logging.getLogger(__name__)

# Provider statuses (Twilio MessageInstance.Status) and the outbox's own, by rank.
RANK: dict[str, int] = {
    "accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3, "unconfirmed": 3,
    "partially_delivered": 4, "undelivered": 5, "failed": 5, "canceled": 5, "delivered": 5, "read": 6,
}
# what an outbox row that was handed to the provider can become
AFTER_SEND = ("sent", "unconfirmed", "delivered", "undelivered", "canceled")
FAILED = ("undelivered", "failed")
# the outbox event (alerts.outbox) that takes a row to the status a receipt calls for
RECEIPT_EVENTS = {"delivered": "deliver", "undelivered": "undeliver", "canceled": "cancel", "sent": "sent"}
# answered alerts need no fallback or reminder
ANSWERED_SKIP_PURPOSES = ("alert", "reminder")

# what an error code in a receipt means comes from the SMS channel's table (notify-anchors §1.6):
# transient codes (30001 queue overflow, 30003 unreachable handset, 30008 unknown) earn one
# delayed retry on the same channel, then the next channel; the rest go to the next channel.
RECORDED_ACTIONS = ("opt_out", "bad_address", "ops_alert", "prune_token")


def _plan(code: str | None) -> tuple[bool, str | None]:
    """(retry once?, account action) for a provider error code in a receipt."""
    from notifiers.sms import ERRORS

    try:
        rule = ERRORS.get(int(code)) if code else None
    except ValueError:
        rule = None
    if rule is None:
        return False, None
    return rule.status == "transient", rule.action if rule.action in RECORDED_ACTIONS else None


@dataclass(frozen=True)
class Receipt:
    provider_id: str
    status: str
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Step:
    """What one receipt does to a message: its new outbox status (None: nothing), whether to retry
    it once or fall back to the next channel, and what to record on the account."""

    status: str | None
    retry: bool = False
    fallback: bool = False
    action: str | None = None
    reason: str = ""


def step(current: str, receipt: Receipt, *, retries_done: int = 0) -> Step:
    """The pure transition for one receipt on a message in outbox status ``current``."""
    new = receipt.status.lower()
    if new not in RANK:
        return Step(None, reason=f"status {receipt.status!r} is not a delivery status")
    if current not in AFTER_SEND:
        # the row was re-queued (a retry): receipts of the earlier attempt no longer apply
        return Step(None, reason=f"message is {current}")
    if RANK[new] <= RANK[current]:
        return Step(None, reason=f"stale or repeated: {new} after {current}")
    if new in ("delivered", "read"):
        return Step("delivered", reason=new)
    if new == "canceled":
        return Step("canceled", reason="canceled")
    if new in FAILED:
        retry, action = _plan(receipt.error_code)
        why = f"{new} {receipt.error_code or ''}".strip()
        if retry and retries_done < 1:
            return Step("retry", retry=True, action=action, reason=why)
        return Step("undelivered", fallback=True, action=action, reason=why)
    return Step(current if RANK[current] >= RANK["sent"] else "sent", reason=new)


# -- the store side ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiptOutcome:
    outbox_id: str | None
    status: str | None  # the outbox status after the receipt; None when the receipt changed nothing
    fallback_id: str | None = None
    reason: str = ""


def apply_receipt(session: Session, receipt: Receipt, *, now: datetime, retry_delay: timedelta,
                  transport: str = "receipt") -> ReceiptOutcome:
    """Apply one provider callback inside the caller's transaction."""
    q = select(OutboxRow).where(OutboxRow.provider_id == receipt.provider_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()  # two callbacks for one message serialise here
    row = session.scalars(q).first()
    if row is None:
        log.info("receipt for unknown message %s (%s): ignored", receipt.provider_id, receipt.status)
        return ReceiptOutcome(None, None, reason="unknown message")
    payload = dict(row.payload or {})
    st = step(row.status, receipt, retries_done=int(payload.get("receipt_retries", 0)))
    note = receipt.error or (None if st.status else st.reason)
    session.add(Delivery(outbox_id=row.id, attempt=row.attempts, channel=row.channel, transport=transport,
                         status=f"receipt:{receipt.status.lower()}"[:32], provider_id=receipt.provider_id,
                         error_code=receipt.error_code, error=note, at=now))
    if st.status is None:
        return ReceiptOutcome(row.id, None, reason=st.reason)
    if st.action:
        account_action(session, row, st.action, now, code=receipt.error_code, error=receipt.error)
    fallback_id = None
    if st.retry:
        payload["receipt_retries"] = int(payload.get("receipt_retries", 0)) + 1
        row.payload = payload
        row.status = apply(row.status, "retry")
        row.next_attempt_at = now + retry_delay
        row.last_error = f"{st.reason}: one more try"
    else:
        if st.status != row.status:
            row.status = apply(row.status, RECEIPT_EVENTS[st.status])
        if st.status == "delivered":
            row.delivered_at = row.delivered_at or now
        if st.fallback:
            row.last_error = st.reason
            fallback_id = enqueue_fallback(session, row, now)
    return ReceiptOutcome(row.id, row.status, fallback_id, st.reason)


def account_action(session: Session, row: OutboxRow, action: str, now: datetime, *, code: str | None = None,
                   error: str | None = None) -> None:
    """Record what a provider said about the recipient: STOP, a dead number, a stale push token."""
    acct = session.get(AccountRow, row.account_id)
    if action == "ops_alert" or acct is None:
        log.error("channel %s needs an operator: %s %s", row.channel, code, error)
        return
    if action == "opt_out" and row.channel == "sms":
        acct.sms_opt_out = True
    elif action == "bad_address" and row.channel == "sms":
        acct.phone_bad = True
    elif action == "prune_token" and row.channel == "push":
        acct.push_token = None
    else:
        return
    acct.updated_at = now


def enqueue_fallback(session: Session, row: OutboxRow, now: datetime) -> str | None:
    """Queue the message on the next channel of its fallback list; None if there is none (or the
    alert was already answered, so nobody needs to be asked again).  Idempotent: the next row's id
    is derived from (alert, channel, purpose)."""
    rest = list((row.payload or {}).get("fallback", []))
    if not rest or row.alert_id is None:
        return None
    if row.purpose in ANSWERED_SKIP_PURPOSES:
        alert = session.get(AlertRow, row.alert_id)
        if alert is not None and alert.status not in OPEN_STATES:
            return None
    nxt, remaining = rest[0], rest[1:]
    oid = stable_id("o", row.alert_id, nxt, row.purpose)
    if session.get(OutboxRow, oid) is not None:
        return None
    session.add(OutboxRow(id=oid, alert_id=row.alert_id, account_id=row.account_id, channel=nxt,
                          purpose=row.purpose, template=row.template, priority=row.priority,
                          payload={"fallback": remaining, "fallback_from": row.channel}, status=PENDING,
                          next_attempt_at=now, created_at=now))
    return oid


def sweep_unconfirmed(session: Session, *, now: datetime, timeout: timedelta, channels: list[str],
                      limit: int = 500) -> list[str]:
    """Messages handed to a receipt-sending provider with no receipt after ``timeout``: mark them
    ``unconfirmed`` (a late receipt still applies) and fall back.  Returns the fallback row ids.

    The compare-and-set on ``status == "sent"`` lets two workers sweep at once: each row is taken
    by exactly one of them.
    """
    if not channels:
        return []
    ids = list(session.scalars(
        select(OutboxRow.id).where(OutboxRow.status == OutboxStatus.SENT.value, OutboxRow.channel.in_(channels),
                                   OutboxRow.sent_at <= now - timeout)
        .order_by(OutboxRow.sent_at).limit(limit)
    ))
    made: list[str] = []
    for oid in ids:
        res = session.execute(update(OutboxRow).where(OutboxRow.id == oid, OutboxRow.status == OutboxStatus.SENT.value)
                              .values(status=apply(OutboxStatus.SENT, "unconfirm"),
                                      last_error="no delivery receipt in time"))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            continue
        row = session.get(OutboxRow, oid)
        if row is None:
            continue
        session.add(Delivery(outbox_id=oid, attempt=row.attempts, channel=row.channel, transport="receipt",
                             status="receipt:timeout", provider_id=row.provider_id, error_code=None,
                             error=f"no receipt within {int(timeout.total_seconds())} s", at=now))
        fid = enqueue_fallback(session, row, now)
        if fid:
            made.append(fid)
    return made
