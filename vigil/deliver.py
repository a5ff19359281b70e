"""The delivery job: drain the outbox.

Rows are claimed by lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a compare-and-set update
everywhere), so several workers never send the same message.  Sending happens outside any
database transaction; every attempt is recorded in ``vigil_deliveries``.  Transient failures are
retried with exponential backoff and jitter; permanent ones fall back to the next channel or go
to the dead letters with their reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.lifecycle import can
from alerts.lifecycle import apply as lifecycle_apply
from alerts.store.models import AccountRow, AlertEvent, AlertRow, ConfirmToken, Delivery, OutboxRow
from alerts.tokens import hash_token, new_token
from detectors.base import stable_id
from notifiers.base import Channel, DeliveryResult, Message, Recipient
from vigil.settings import Settings

log = logging.getLogger(__name__)
READY = ("pending", "retry")
Renderer = Callable[[str, str, str, Mapping[str, Any]], Any]


@dataclass
class DeliverReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    fallbacks: int = 0
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (outbox_id, channel, status)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (alert_id, channel, link) issued


def claim(sessions: sessionmaker[Session], *, worker: str, now: datetime, limit: int, lease: timedelta
          ) -> list[str]:
    """Lease up to ``limit`` ready rows for this worker; returns their ids."""
    with sessions.begin() as s:
        ready = or_(OutboxRow.status.in_(READY),
                    (OutboxRow.status == "sending") & (OutboxRow.lease_until < now))
        q = (select(OutboxRow.id).where(ready, OutboxRow.next_attempt_at <= now)
             .order_by(OutboxRow.priority, OutboxRow.created_at, OutboxRow.id).limit(limit))
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(s.scalars(q))
        got: list[str] = []
        for oid in ids:
            res = s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == oid, ready)
                .values(status="sending", lease_owner=worker, lease_until=now + lease)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                got.append(oid)
        return got


class Deliverer:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings, channels: Mapping[str, Channel],
                 render: Renderer, *, worker: str = "worker-1", rng: random.Random | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.channels = channels
        self.render = render
        self.worker = worker
        self.rng = rng or random.Random()

    def run_once(self, now: datetime, limit: int = 100) -> DeliverReport:
        report = DeliverReport()
        lease = timedelta(seconds=self.settings.delivery.lease_seconds)
        ids = claim(self.sessions, worker=self.worker, now=now, limit=limit, lease=lease)
        report.claimed = len(ids)
        for oid in ids:
            try:
                self._deliver(oid, now, report)
            except Exception:  # one broken message must not stop the others; it is retried
                log.exception("delivering %s", oid)
                self._finish(oid, now, DeliveryResult("transient", error="internal error; see logs"), "?", report)
        return report

    # -- one message ----------------------------------------------------------------------
    def _deliver(self, oid: str, now: datetime, report: DeliverReport) -> None:
        with self.sessions.begin() as s:
            row = s.get(OutboxRow, oid)
            if row is None or row.lease_owner != self.worker:
                return
            alert = s.get(AlertRow, row.alert_id) if row.alert_id else None
            acct = s.get(AccountRow, row.account_id)
            recipient = _recipient(acct, row.account_id, self.settings)
            channel_name = row.channel
            transport = self._transport(channel_name)
            link = None
            if transport is not None and transport.can_reach(recipient) and alert is not None \
                    and alert.confirm and row.purpose in ("alert", "reminder") and alert.status in (
                        "new", "notified", "expired", "escalated"):
                link = self._issue_token(s, alert, channel_name, now)
                report.links.append((alert.id, channel_name, link))
            context = _context(alert, recipient, link, row, self.settings)
            payload = dict(row.payload or {})
        if transport is None:
            self._finish(oid, now, DeliveryResult("skipped", error=f"channel '{channel_name}' is not configured"),
                         "none", report)
            return
        if not transport.can_reach(recipient):
            self._finish(oid, now, DeliveryResult("skipped", error=f"account has no {transport.needs} for "
                                                  f"'{channel_name}'"), transport.name, report)
            return
        if channel_name in ("freeze_hook", "escalate", "webhook"):
            msg = Message(outbox_id=oid, channel=channel_name, recipient=recipient, subject=row.template,
                          text="", data={k: str(v) for k, v in {**payload, **context.get("data", {})}.items()},
                          alert_id=row.alert_id)
        else:
            rendered = self.render(row.template, channel_name, recipient.locale, context)
            data = {"alert_id": row.alert_id or "", "kind": row.template}
            if link:
                data["actions"] = "confirm,deny"
            msg = Message(outbox_id=oid, channel=channel_name, recipient=recipient, subject=rendered.subject,
                          text=rendered.text, html=rendered.html, data=data, alert_id=row.alert_id)
        try:
            result = transport.send(msg)
        except Exception as e:  # the contract says send() never raises; if it does, treat as transient
            log.exception("channel %s raised", transport.name)
            result = DeliveryResult("transient", error=f"{type(e).__name__}: {e}")
        self._finish(oid, now, result, transport.name, report)

    def _transport(self, channel: str) -> Channel | None:
        ch = self.channels.get(channel)
        if ch is not None:
            return ch
        stand_in = self.settings.channels.console
        if stand_in.enabled and channel in stand_in.stand_in_for:
            return self.channels.get("console")
        return None

    def _issue_token(self, s: Session, alert: AlertRow, channel: str, now: datetime) -> str:
        token = new_token()
        expires = max(_aware(alert.expires_at) or now,
                      now + timedelta(minutes=self.settings.web.token_ttl_minutes))
        s.add(ConfirmToken(token_hash=hash_token(token), alert_id=alert.id, account_id=alert.account_id,
                           channel=channel, created_at=now, expires_at=expires))
        return f"{self.settings.web.base_url.rstrip('/')}/c/{token}"

    def _finish(self, oid: str, now: datetime, result: DeliveryResult, transport: str, report: DeliverReport
                ) -> None:
        cfg = self.settings.delivery
        with self.sessions.begin() as s:
            row = s.get(OutboxRow, oid)
            if row is None:
                return
            row.attempts += 1
            s.add(Delivery(outbox_id=oid, attempt=row.attempts, channel=row.channel, transport=transport,
                           status=result.status, provider_id=result.provider_id, error_code=result.error_code,
                           error=result.error, at=now))
            row.lease_owner = None
            row.lease_until = None
            row.last_error = result.error
            report.outcomes.append((oid, row.channel, result.status))
            if result.ok:
                row.status = "delivered" if result.status == "delivered" else "sent"
                row.provider_id = result.provider_id
                row.sent_at = now
                if result.status == "delivered":
                    row.delivered_at = now
                report.sent += 1
                alert = s.get(AlertRow, row.alert_id) if row.alert_id else None
                if alert is not None and row.purpose == "alert" and can(alert.status, "notify"):
                    alert.status = lifecycle_apply(alert.status, "notify")
                    alert.updated_at = now
                    s.add(AlertEvent(alert_id=alert.id, at=now, event="notified",
                                     detail={"channel": row.channel, "provider_id": result.provider_id}))
                return
            self._apply_action(s, row, result, now)
            if result.status == "transient" and row.attempts < cfg.max_attempts:
                delay = min(cfg.backoff_max_seconds, cfg.backoff_seconds * 2 ** (row.attempts - 1))
                delay = max(delay, result.retry_after or 0) * (0.5 + self.rng.random())  # jitter
                row.status = "retry"
                row.next_attempt_at = now + timedelta(seconds=delay)
                report.retried += 1
                return
            row.status = "dead" if result.status == "transient" else "failed"
            report.dead += row.status == "dead"
            report.failed += row.status == "failed"
            if self._fallback(s, row, now):
                report.fallbacks += 1

    def _apply_action(self, s: Session, row: OutboxRow, result: DeliveryResult, now: datetime) -> None:
        acct = s.get(AccountRow, row.account_id)
        if acct is None or result.action is None:
            if result.action == "ops_alert" or result.status == "permanent":
                log.error("delivery %s via %s failed: %s %s", row.id, row.channel, result.error_code, result.error)
            return
        if result.action == "opt_out":
            acct.sms_opt_out = True
        elif result.action == "bad_address" and row.channel == "sms":
            acct.phone_bad = True
        elif result.action == "prune_token":
            acct.push_token = None
        elif result.action == "ops_alert":
            log.error("channel %s needs an operator: %s %s", row.channel, result.error_code, result.error)
        acct.updated_at = now

    def _fallback(self, s: Session, row: OutboxRow, now: datetime) -> bool:
        rest = list((row.payload or {}).get("fallback", []))
        if not rest or row.alert_id is None:
            return False
        nxt, remaining = rest[0], rest[1:]
        oid = stable_id("o", row.alert_id, nxt, row.purpose)
        if s.get(OutboxRow, oid) is not None:
            return False
        s.add(OutboxRow(id=oid, alert_id=row.alert_id, account_id=row.account_id, channel=nxt, purpose=row.purpose,
                        template=row.template, priority=row.priority, payload={"fallback": remaining,
                                                                               "fallback_from": row.channel},
                        status="pending", next_attempt_at=now, created_at=now))
        return True


def _recipient(acct: AccountRow | None, account_id: str, settings: Settings) -> Recipient:
    if acct is None:
        return Recipient(account_id=account_id, locale=settings.default_locale, timezone=settings.default_timezone)
    return Recipient(
        account_id=account_id,
        locale=acct.locale or settings.default_locale,
        timezone=acct.timezone or settings.default_timezone,
        phone=None if (acct.sms_opt_out or acct.phone_bad) else acct.phone,
        email=acct.email,
        push_token=acct.push_token,
        anti_phishing_code=acct.anti_phishing_code,
    )


def _context(alert: AlertRow | None, r: Recipient, link: str | None, row: OutboxRow, settings: Settings
             ) -> dict[str, Any]:
    a = None
    if alert is not None:
        a = {"id": alert.id, "rule_id": alert.rule_id, "detector": alert.detector,
             "kind": alert.evidence.get("kind", ""), "severity": alert.severity, "ts": _aware(alert.ts),
             "evidence": dict(alert.evidence)}
    return {
        "alert": a,
        "account": {"account_id": r.account_id, "locale": r.locale, "timezone": r.timezone,
                    "anti_phishing_code": r.anti_phishing_code},
        "link": link,
        "sms_code": alert.sms_code if alert is not None else None,
        "expires_at": _aware(alert.expires_at) if alert is not None else None,
        "brand": "Vigil",
        "purpose": row.purpose,
        "data": {"alert_id": alert.id if alert else "", "account_id": r.account_id},
    }


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
