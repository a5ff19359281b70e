"""Contact history: changes of an account's phone, email and push device, and what they mean.

A takeover often starts by changing the contact details -- after that, every "was this you?"
goes to the attacker.  So Vigil remembers each change (``vigil_contact_changes``), from the
``phone_change`` / ``email_change`` rows of ``security_events`` and from the account mirror
(which also sees push-device changes), and for ``answers.previous_contact_days`` (default 7):

* every alert is also sent to the **previous** phone number or email address (a copy whose
  answer can say "not me" but never "it was me"), and
* the **new** contact cannot confirm an alert: an "it was me" from it is recorded, not applied.

The scan cycle records changes (:func:`record_changes`) in its own transaction, before it
creates the batch's alerts, and then queues the copies (:func:`copy_to_previous_contacts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.store.models import AccountRow, AlertRow, ContactChange, OutboxRow
from detectors.base import stable_id

KINDS = {"phone_change": "phone", "email_change": "email"}  # security_events kind -> contact kind
FIELDS = {"phone": "phone", "email": "email", "push_token": "push"}  # mirror column -> contact kind
CHANNEL_KIND = {"sms": "phone", "email": "email", "push": "push"}
COPY_CHANNELS = {"phone": "sms", "email": "email"}  # previous contacts that get a copy
DEFAULTS = {"previous_contact_days": 7, "deny_grace_seconds": 6 * 3600}

MirrorChange = tuple[str, str, Any, Any]  # (account_id, mirror column, old value, new value)


def answer_settings(session: Session) -> dict[str, Any]:
    """The ``answers`` settings the bootstrap put in the session factory's info (else the defaults)."""
    return {**DEFAULTS, **(session.info.get("answers") or {})}


def window(session: Session) -> timedelta:
    return timedelta(days=float(answer_settings(session)["previous_contact_days"]))


def record_changes(session: Session, mirror: Iterable[MirrorChange], security_events: pd.DataFrame | None,
                   now: datetime) -> int:
    """Record the batch's contact changes (idempotent: a replayed batch records nothing new)."""
    pending: dict[tuple[str, str], tuple[Any, Any]] = {}
    for acct, col, old, new in mirror:
        kind = FIELDS.get(col)
        if kind is not None and old not in (None, "") and old != new:
            pending[(acct, kind)] = (old, new)
    rows: list[ContactChange] = []
    if security_events is not None and len(security_events):
        sec = security_events[security_events["kind"].isin(list(KINDS))]
        for ev in sec.itertuples(index=False):
            acct, kind = str(ev.account_id), KINDS[str(ev.kind)]
            old, new = pending.pop((acct, kind), (None, None))
            if old is None:  # the mirror saw it earlier (or not yet): take what it knew
                seen = _latest(session, acct, kind, source="mirror")
                if seen is not None:
                    old, new = seen.previous, seen.current
            at = pd.Timestamp(str(ev.ts)).to_pydatetime() if not isinstance(ev.ts, datetime) else ev.ts
            rows.append(ContactChange(id=stable_id("cc", acct, kind, ev.event_id), account_id=acct, kind=kind,
                                      changed_at=at, previous=_text(old), current=_text(new),
                                      source="security_event", event_id=str(ev.event_id), created_at=now))
    for (acct, kind), (old, new) in pending.items():
        rows.append(ContactChange(id=stable_id("cc", acct, kind, old, new, now.date().isoformat()), account_id=acct,
                                  kind=kind, changed_at=now, previous=_text(old), current=_text(new),
                                  source="mirror", created_at=now))
    made = 0
    for row in rows:
        if session.get(ContactChange, row.id) is None:
            session.add(row)
            made += 1
    if made:
        session.flush()
    return made


def _text(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)[:512]


def _latest(session: Session, account_id: str, kind: str, *, source: str | None = None) -> ContactChange | None:
    q = select(ContactChange).where(ContactChange.account_id == account_id, ContactChange.kind == kind)
    if source is not None:
        q = q.where(ContactChange.source == source)
    return session.scalars(q.order_by(ContactChange.changed_at.desc()).limit(1)).first()


def changes_since(session: Session, account_id: str, since: datetime) -> list[ContactChange]:
    return list(session.scalars(select(ContactChange).where(
        ContactChange.account_id == account_id, ContactChange.changed_at > since).order_by(ContactChange.changed_at)))


def settled(session: Session, account_id: str, channel: str, alert_ts: datetime) -> bool:
    """Was ``channel``'s contact unchanged from ``previous_contact_days`` before the alert until now?"""
    kind = CHANNEL_KIND.get(channel.split(":", 1)[0])
    if kind is None:
        return True
    return not any(c.kind == kind for c in changes_since(session, account_id, alert_ts - window(session)))


def previous_contacts(session: Session, account_id: str, alert_ts: datetime,
                      changes: Iterable[ContactChange] | None = None) -> dict[str, str]:
    """channel -> the contact it had before a change within the window (not the current one)."""
    acct = session.get(AccountRow, account_id)
    current = {"phone": acct.phone if acct else None, "email": acct.email if acct else None}
    since = alert_ts - window(session)
    found = changes if changes is not None else changes_since(session, account_id, since)
    out: dict[str, str] = {}
    for c in sorted(found, key=lambda c: c.changed_at):
        ch = COPY_CHANNELS.get(c.kind)
        if ch is not None and c.changed_at > since and c.previous and c.previous != current.get(c.kind):
            out[ch] = c.previous  # the latest change wins
    return out


def copy_to_previous_contacts(session: Session, alert_ids: Iterable[str], now: datetime) -> int:
    """Queue a copy of each new alert for the contacts changed within the window (same template).

    One query finds the few accounts with recent changes; alerts of other accounts cost nothing.
    """
    alerts = [a for a in (session.get(AlertRow, aid) for aid in alert_ids)
              if a is not None and (a.plan or {}).get("notify")]
    if not alerts:
        return 0
    since = min(a.ts for a in alerts) - window(session)
    accounts = sorted({a.account_id for a in alerts})
    recent: dict[str, list[ContactChange]] = {}
    for i in range(0, len(accounts), 900):
        for c in session.scalars(select(ContactChange).where(ContactChange.account_id.in_(accounts[i : i + 900]),
                                                             ContactChange.changed_at > since)):
            recent.setdefault(c.account_id, []).append(c)
    made = 0
    for alert in alerts:
        if alert.account_id not in recent:
            continue
        plan: Mapping[str, Any] = alert.plan["notify"]
        chans = set(plan.get("channels") or [])
        for ch, to in previous_contacts(session, alert.account_id, alert.ts, recent[alert.account_id]).items():
            if ch not in chans:
                continue
            oid = stable_id("o", alert.id, ch, "alert", "previous")
            if session.get(OutboxRow, oid) is not None:
                continue
            session.add(OutboxRow(
                id=oid, alert_id=alert.id, account_id=alert.account_id, channel=ch, purpose="alert",
                template=plan.get("template") or alert.template, priority=0 if alert.severity == "critical" else 1,
                payload={"fallback": [], "to": to, "previous": True}, status="pending", next_attempt_at=now,
                created_at=now,
            ))
            made += 1
    return made
