"""Store helpers of the delivery job: the lease claim, batch loading, the message context.

Split from :mod:`delivery.deliver` (which holds the policy and the send/record cycle) to keep both
readable; nothing here sends anything.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import READY, OutboxStatus, apply
from alerts.store.models import AccountRow, AlertRow, OutboxRow
from delivery.settings import DeliveryConfig
from notifiers.base import Channel, DeliveryResult, Message, Recipient

log = logging.getLogger("vigil.deliver")
_CLAIMS = itertools.count(1)


Sends = dict[tuple[str, str], list[tuple[str, datetime]]]  # (account, channel) -> [(outbox id, sent at)]
Held = dict[tuple[str, str], list[str]]  # (account, channel) -> held outbox ids


@dataclass
class Job:
    """One claimed message between prepare and finish: a message to send, or a result already."""

    oid: str
    transport: Channel | None
    message: Message | None
    result: DeliveryResult | None
    provider: str = "?"
    wait: float | None = None  # not sent: its provider is backing us off (a 429)
    token: str = ""  # the claim's lease token
    channel: str = ""
    now: datetime | None = None  # the pass's time, stamped on what is recorded
    attempt_id: int | None = None  # the attempt row written before the provider call
    presumed: bool = False  # a dead worker handed it over: recorded as sent, not sent again
    lease_lost: bool = False  # another worker took it over before we could send it


@dataclass
class Batch:
    """What one pass knows: its rows, recent sends per (account, channel), rows held for them."""

    rows: list[OutboxRow]
    sent: Sends
    held: Held
    absorbed: set[str] = field(default_factory=set)


def preload(s: Session, model: Any, key: Any, ids: set[Any], *, lock: bool = False) -> list[Any]:
    """Load rows into the session's identity map in one query, so ``s.get`` costs nothing after --
    while the caller holds the returned list (the identity map only keeps weak references).
    ``lock``: ``FOR UPDATE``, in key order."""
    if not ids:
        return []
    q = select(model).where(key.in_(sorted(ids)))
    if lock:
        q = q.order_by(key).with_for_update()
    return list(s.scalars(q))


@dataclass(frozen=True)
class Claim:
    """Rows leased by one claim: their ids in send order, the lease token written to
    ``lease_owner`` (the worker's identity and the claim's number: a row this worker claims
    again after its lease ran out gets a new token, so the older job can no longer send it), and
    the ids that were taken over from an expired lease (their last attempt may be in flight)."""

    ids: list[str]
    token: str
    takeovers: frozenset[str] = frozenset()


def claim(sessions: sessionmaker[Session], *, worker: str, now: datetime, limit: int, lease: timedelta,
          skip_channels: Iterable[str] = ()) -> Claim:
    """Lease up to ``limit`` ready rows (none of ``skip_channels``: their senders are busy)."""
    token = f"{worker}/{next(_CLAIMS)}"
    with sessions.begin() as s:
        ready = or_(OutboxRow.status.in_(READY),
                    (OutboxRow.status == OutboxStatus.SENDING.value) & (OutboxRow.lease_until < now))
        q = (select(OutboxRow.id, OutboxRow.status).where(ready, OutboxRow.next_attempt_at <= now)
             .order_by(OutboxRow.priority, OutboxRow.created_at, OutboxRow.id).limit(limit))
        skip = sorted(set(skip_channels))
        if skip:
            q = q.where(OutboxRow.channel.not_in(skip))
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        found = s.execute(q).all()
        if not found:
            return Claim([], token)
        ids = [oid for oid, _ in found]
        # one compare-and-set for the lot: a row another worker leased meanwhile is not ``ready``
        res = s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids), ready)
                        .values(status=apply(READY[0], "claim"), lease_owner=token, lease_until=now + lease)
                        .returning(OutboxRow.id).execution_options(synchronize_session=False))
        got = set(res.scalars())
        taken = frozenset(oid for oid, st in found if st == OutboxStatus.SENDING.value and oid in got)
        return Claim([oid for oid in ids if oid in got], token, taken)




def put_back(row: OutboxRow, event: str, until: datetime, why: str) -> None:
    """Un-lease a claimed row: ``hold`` (over budget), ``retry`` (later), ``coalesce`` (merged)."""
    row.status = apply(row.status, event)
    row.next_attempt_at = until
    row.lease_owner = None
    row.lease_until = None
    row.last_error = why


def recipient_of(acct: AccountRow | None, account_id: str, settings: DeliveryConfig) -> Recipient:
    if acct is None:
        return Recipient(account_id=account_id, locale=settings.default_locale,
                         timezone=settings.default_timezone)
    return Recipient(
        account_id=account_id,
        locale=acct.locale or settings.default_locale,
        timezone=acct.timezone or settings.default_timezone,
        phone=None if (acct.sms_opt_out or acct.phone_bad) else acct.phone,
        email=acct.email,
        push_token=acct.push_token,
        anti_phishing_code=acct.anti_phishing_code,
    )


def previous_contact(r: Recipient, row: OutboxRow) -> Recipient:
    """The recipient of a copy for a contact changed lately (``payload["to"]``), else ``r`` itself."""
    to = (row.payload or {}).get("to")
    if not to:
        return r
    from dataclasses import replace

    if row.channel == "sms":
        return replace(r, phone=str(to), email=None, push_token=None)
    if row.channel == "email":
        return replace(r, email=str(to), phone=None, push_token=None)
    return r


def context_of(alert: AlertRow | None, r: Recipient, link: str | None, row: OutboxRow, coalesced: int
             ) -> dict[str, Any]:
    a = None
    if alert is not None:
        a = {"id": alert.id, "rule_id": alert.rule_id, "detector": alert.detector,
             "kind": alert.evidence.get("kind", ""), "severity": alert.severity, "ts": aware(alert.ts),
             "evidence": dict(alert.evidence)}
    return {
        "alert": a,
        "account": {"account_id": r.account_id, "locale": r.locale, "timezone": r.timezone,
                    "anti_phishing_code": r.anti_phishing_code},
        "link": link,
        "sms_code": alert.sms_code if alert is not None else None,
        "expires_at": aware(alert.expires_at) if alert is not None else None,
        "brand": "Vigil",
        "purpose": row.purpose,
        "coalesced": coalesced,  # how many held messages ride along in this one
        "data": {"alert_id": alert.id if alert else "", "account_id": r.account_id},
    }


def aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
