"""The delivery job: drain the outbox.

Rows are claimed by lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a compare-and-set update
everywhere), so several workers never send the same message.  Sending happens outside any
database transaction; every attempt is recorded in ``vigil_deliveries``.

Before a message goes out, the delivery policy (``delivery.policy``) may hold it: over the
account's budget (5 SMS an hour) an ordinary message waits for the window to free, a critical
one goes out at most once per coalescing window carrying everything held for that account and
channel; over the provider's rate, or while the provider is backing us off after a 429, it waits
for the bucket.  Transient failures are retried with exponential backoff and jitter (never
sooner than the provider's ``Retry-After``); permanent ones -- and transient ones out of
retries -- fall back to the next channel or go to the dead letters with their reason.  Receipts
that never come fall back too (``delivery.receipts.sweep_unconfirmed``, run at the start of
every pass).

Outbox statuses: ``pending``, ``retry``, ``held`` (ready again at ``next_attempt_at``),
``sending`` (leased), ``sent``, ``unconfirmed``, ``delivered``, ``undelivered``, ``coalesced``,
``failed`` / ``dead`` (the dead letters).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerts.lifecycle import OPEN_STATES, can
from alerts.lifecycle import apply as lifecycle_apply
from alerts.outbox import READY, OutboxStatus, apply
from alerts.store.models import AccountRow, AlertEvent, AlertRow, ConfirmToken, Delivery, OutboxRow
from alerts.tokens import hash_token, new_token
from delivery.holder import HOLDER_PURPOSES, brand_context, holder_context
from delivery.outbox import (
    Batch,
    Held,
    Job,
    Sends,
    aware,
    claim,
    context_of,
    preload,
    put_back,
    recipient_of,
    send,
)
from delivery.policy import PolicySettings, RateLimiter, budget_verdict
from delivery.receipts import ANSWERED_SKIP_PURPOSES, account_action, enqueue_fallback, sweep_unconfirmed
from delivery.settings import DeliveryConfig
from notifiers.base import Channel, DeliveryResult, Message, Recipient

__all__ = ["READY", "DeliverReport", "Deliverer", "claim", "policy_of"]

log = logging.getLogger(__name__)
SYSTEM_CHANNELS = ("freeze_hook", "escalate", "webhook")  # not messages to the account holder
RECORD_EVERY = 20  # results recorded per transaction, at most ...
RECORD_SECONDS = 0.25  # ... and at least this often while sending
INTERNAL_ERROR = DeliveryResult("transient", error="internal error; see the log")
Renderer = Callable[[str, str, str, Mapping[str, Any]], Any]


@dataclass
class DeliverReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    fallbacks: int = 0
    held: int = 0  # over the account's budget
    throttled: int = 0  # over the provider's rate, or backed off after a 429
    coalesced: int = 0  # held messages merged into one that went out
    unconfirmed: int = 0  # fallbacks because no delivery receipt came in time
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (outbox_id, channel, status)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (alert_id, channel, link) issued


def policy_of(settings: DeliveryConfig) -> PolicySettings:
    """The ``policy`` settings section, or its defaults while settings do not carry one."""
    p = getattr(settings, "policy", None)
    return p if isinstance(p, PolicySettings) else PolicySettings()


class Deliverer:
    """One delivery worker.  Keep one instance for the life of the process: its rate limiter
    remembers the providers' 429s between passes (pass a shared ``limiter`` to several)."""

    def __init__(self, sessions: sessionmaker[Session], settings: DeliveryConfig, channels: Mapping[str, Channel],
                 render: Renderer, *, worker: str = "worker-1", rng: random.Random | None = None,
                 policy: PolicySettings | None = None, limiter: RateLimiter | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.channels = channels
        self.render = render
        self.worker = worker
        self.rng = rng or random.Random()
        self.policy = policy or policy_of(settings)
        self.limiter = limiter or RateLimiter.from_settings(self.policy)

    def run_once(self, now: datetime, limit: int = 100) -> DeliverReport:
        """One pass: sweep overdue receipts, claim up to ``limit`` rows, prepare them in one
        transaction, send each outside any transaction, and record the results in small groups.

        A group is recorded every ``RECORD_EVERY`` messages or ``RECORD_SECONDS`` seconds: few
        commits (on PostgreSQL a round trip, not the work, is what a message costs), yet the
        provider's id is in the database well before its delivery receipt can arrive.
        At-least-once: a worker that dies between sending and recording leaves its rows leased,
        and they are sent again when the lease expires.
        """
        report = DeliverReport()
        with self.sessions.begin() as s:
            wait = timedelta(seconds=self.policy.receipt_timeout_seconds)
            made = sweep_unconfirmed(s, now=now, timeout=wait, channels=self.policy.receipt_channels)
        report.unconfirmed = report.fallbacks = len(made)
        lease = timedelta(seconds=self.settings.delivery.lease_seconds)
        ids = claim(self.sessions, worker=self.worker, now=now, limit=limit, lease=lease)
        report.claimed = len(ids)
        if not ids:
            return report
        backing_off: dict[str, float] = {}  # providers that said 429 during this pass
        pending: list[Job] = []
        since = time.monotonic()
        for job in self._prepare(ids, now, report):
            if not pending:
                since = time.monotonic()
            pending.append(job)
            if job.result is None and job.transport is not None and job.message is not None:
                if job.provider in backing_off:
                    job.wait = backing_off[job.provider]  # not sent: put back until the provider is ready
                else:
                    job.result = send(job.transport, job.message)
                    if job.result.action == "backoff":
                        backing_off[job.provider] = self.limiter.backoff(job.provider, now, job.result.retry_after)
            if len(pending) >= RECORD_EVERY or time.monotonic() - since >= RECORD_SECONDS:
                self._record_safely(pending, now, report)
                pending = []
        if pending:
            self._record_safely(pending, now, report)
        return report

    def _record_safely(self, jobs: list[Job], now: datetime, report: DeliverReport) -> None:
        for attempt in range(3):  # a lost result means a duplicate message later: try hard to record it
            part = DeliverReport()
            try:
                self._record(jobs, now, part)
                break
            except OperationalError:
                if attempt == 2:
                    raise
                log.warning("recording delivery results failed; retrying", exc_info=True)
        for f in fields(DeliverReport):
            setattr(report, f.name, getattr(report, f.name) + getattr(part, f.name))

    def _record(self, jobs: list[Job], now: datetime, report: DeliverReport) -> None:
        """Record a pass's results in one transaction.  Alerts (then accounts) are locked in id
        order first: two workers finishing messages of the same alerts never deadlock."""
        with self.sessions.begin() as s:
            q = select(OutboxRow).where(OutboxRow.id.in_([j.oid for j in jobs]))
            rows = {r.id: r for r in s.scalars(q)}
            lock = s.get_bind().dialect.name == "postgresql"
            alert_ids = {r.alert_id for r in rows.values() if r.alert_id}
            acted = {rows[j.oid].account_id for j in jobs if j.oid in rows and j.result and j.result.action}
            pinned = preload(s, AlertRow, AlertRow.id, alert_ids, lock=lock)
            pinned += preload(s, AccountRow, AccountRow.account_id, acted, lock=lock)
            for job in jobs:
                row = rows.get(job.oid)
                if row is None or (row.lease_owner != self.worker and job.result is None):
                    continue
                if job.result is not None:
                    self._finish(s, row, job.result, job.provider, now, report)
                elif job.wait is not None:
                    put_back(row, "retry", now + timedelta(seconds=job.wait), f"provider '{job.provider}' "
                                                                               "asked us to back off")
                    report.throttled += 1

    # -- prepare: decide, coalesce, issue tokens, render ------------------------------------
    def _prepare(self, ids: list[str], now: datetime, report: DeliverReport) -> list[Job]:
        jobs: list[Job] = []
        with self.sessions.begin() as s:
            order = {oid: i for i, oid in enumerate(ids)}
            rows = sorted((r for r in s.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids)))
                           if r.lease_owner == self.worker), key=lambda r: order[r.id])
            pinned = preload(s, AlertRow, AlertRow.id, {r.alert_id for r in rows if r.alert_id})
            pinned += preload(s, AccountRow, AccountRow.account_id, {r.account_id for r in rows})
            batch = Batch(rows, *self._recent(s, rows, now))
            for row in rows:
                if row.id in batch.absorbed:
                    continue
                try:
                    job = self._prepare_one(s, row, batch, now, report)
                except Exception:  # one broken message (a template error) must not stop the others
                    log.exception("preparing %s", row.id)
                    job = Job(row.id, None, None, INTERNAL_ERROR)
                if job is not None:
                    jobs.append(job)
        return jobs

    def _recent(self, s: Session, rows: list[OutboxRow], now: datetime) -> tuple[Sends, Held]:
        """What the budget and coalescing need, in two queries for the whole pass: recent sends
        per (account, channel) and the messages held for them."""
        budgeted = [c for c in {r.channel for r in rows} if c in self.policy.budgets]
        accounts = list({r.account_id for r in rows})
        sent: Sends = defaultdict(list)
        held: Held = defaultdict(list)
        if budgeted:
            since = now - timedelta(seconds=max(self.policy.budgets[c].per_seconds for c in budgeted))
            q = select(OutboxRow.id, OutboxRow.account_id, OutboxRow.channel, OutboxRow.sent_at).where(
                OutboxRow.account_id.in_(accounts), OutboxRow.channel.in_(budgeted),
                OutboxRow.sent_at > since)
            for oid, acct, ch, at in s.execute(q):
                sent[(acct, ch)].append((oid, aware(at) or now))
        for oid, acct, ch in s.execute(select(OutboxRow.id, OutboxRow.account_id, OutboxRow.channel).where(
                OutboxRow.account_id.in_(accounts), OutboxRow.status == OutboxStatus.HELD.value,
                OutboxRow.purpose.in_(ANSWERED_SKIP_PURPOSES))):
            held[(acct, ch)].append(oid)
        return sent, held

    def _prepare_one(self, s: Session, row: OutboxRow, batch: Batch, now: datetime, report: DeliverReport
                     ) -> Job | None:
        alert = s.get(AlertRow, row.alert_id) if row.alert_id else None  # preloaded: no query
        recipient = recipient_of(s.get(AccountRow, row.account_id), row.account_id, self.settings)
        transport = self._transport(row.channel, (row.payload or {}).get("target"))
        if transport is None:
            return Job(row.id, None, None, DeliveryResult("skipped", error=f"channel '{row.channel}' is not "
                                                                             "configured"), "none")
        if not transport.can_reach(recipient):
            skip = f"account has no {transport.needs} for '{row.channel}'"
            return Job(row.id, transport, None, DeliveryResult("skipped", error=skip), transport.name)
        if alert is not None and row.purpose in ANSWERED_SKIP_PURPOSES and alert.status not in OPEN_STATES:
            skip = f"alert already {alert.status}"  # answered by another channel meanwhile
            return Job(row.id, transport, None, DeliveryResult("skipped", error=skip), transport.name)
        over_budget = self._admit(row, transport.name, batch, now, report)
        if over_budget is None:
            return None
        batch.sent[(row.account_id, row.channel)].append((row.id, now))  # counts for the rest of the pass
        msg = self._compose(s, row, alert, recipient, batch, now, report, over_budget=over_budget)
        return Job(row.id, transport, msg, None, transport.name)

    def _compose(self, s: Session, row: OutboxRow, alert: AlertRow | None, recipient: Recipient,
                 batch: Batch, now: datetime, report: DeliverReport, *, over_budget: bool) -> Message:
        """Coalesce what is held, issue the confirmation token, render."""
        asks = row.purpose in ANSWERED_SKIP_PURPOSES
        coalesced = self._coalesce(s, row, batch, over_budget) if asks else []
        report.coalesced += len(coalesced)
        token = link = None
        if alert is not None and alert.confirm and row.purpose in ANSWERED_SKIP_PURPOSES:
            token, link = self._issue_token(s, alert, row.channel, now)
            report.links.append((alert.id, row.channel, link))
        context = context_of(alert, recipient, link, row, len(coalesced))
        context.update(brand_context(self.settings))
        if row.purpose in HOLDER_PURPOSES:  # a survey or an acknowledgement: its reference and link
            context.update(holder_context(s, row, self.settings.web.base_url, now))
        if row.channel in SYSTEM_CHANNELS:
            data = {k: str(v) for k, v in {**(row.payload or {}), **context["data"]}.items()}
            return Message(outbox_id=row.id, channel=row.channel, recipient=recipient, subject=row.template,
                           text="", data=data, alert_id=row.alert_id)
        rendered = self.render(row.template, row.channel, recipient.locale, context)
        data = {str(k): str(v) for k, v in (getattr(rendered, "data", None) or {}).items()}
        data.setdefault("alert_id", row.alert_id or "")
        data.setdefault("kind", row.template)
        if link:
            data["actions"] = "confirm,deny"
            if row.channel == "push" and token:
                data["token"] = token  # the app posts it back to /push/action
        return Message(outbox_id=row.id, channel=row.channel, recipient=recipient, subject=rendered.subject,
                       text=rendered.text, html=rendered.html, data=data, alert_id=row.alert_id)

    def _admit(self, row: OutboxRow, provider: str, batch: Batch, now: datetime, report: DeliverReport
               ) -> bool | None:
        """The account's budget, then the provider's rate.  None: the message must wait and was put
        back; else whether it goes out beyond the budget (critical)."""
        budget = None if row.channel in SYSTEM_CHANNELS else self.policy.budgets.get(row.channel)
        over = False
        if budget is not None:
            sent = [at for oid, at in batch.sent[(row.account_id, row.channel)] if oid != row.id]
            verdict = budget_verdict(budget, sent, now=now,
                                     critical=self.policy.is_critical(row.priority, row.purpose),
                                     coalesce=timedelta(seconds=self.policy.coalesce_seconds))
            if not verdict.send:
                put_back(row, "hold", verdict.until or now, verdict.reason)
                report.held += 1
                report.outcomes.append((row.id, row.channel, "held"))
                return None
            over = verdict.over_budget
        wait = self.limiter.acquire(provider, now)
        if wait > 0:
            put_back(row, "retry", now + timedelta(seconds=wait), f"provider '{provider}' rate limit")
            report.throttled += 1
            report.outcomes.append((row.id, row.channel, "throttled"))
            return None
        return over

    def _coalesce(self, s: Session, row: OutboxRow, batch: Batch, over_budget: bool) -> list[str]:
        """Merge the account's held messages on this channel into the one about to go out; beyond
        the budget, also the ones claimed in this same pass (they would only be held next)."""
        key = (row.account_id, row.channel)
        got = []
        for hid in batch.held.pop(key, []):
            res = s.execute(update(OutboxRow).where(OutboxRow.id == hid, OutboxRow.status == OutboxStatus.HELD.value)
                            .values(status=apply(OutboxStatus.HELD, "coalesce"), last_error=f"coalesced into {row.id}"))
            if res.rowcount == 1:  # type: ignore[attr-defined]  # another worker may have claimed it
                got.append(hid)
        if over_budget:
            for other in batch.rows:
                same = (other.account_id, other.channel) == key and other.purpose in ANSWERED_SKIP_PURPOSES
                claimed = other.status == OutboxStatus.SENDING
                if same and other is not row and other.id not in batch.absorbed and claimed:
                    put_back(other, "coalesce", other.next_attempt_at, f"coalesced into {row.id}")
                    batch.absorbed.add(other.id)
                    got.append(other.id)
        if got:
            before = (row.payload or {}).get("coalesced", [])
            row.payload = {**(row.payload or {}), "coalesced": [*before, *got]}
        return got

    def _transport(self, channel: str, target: Any = None) -> Channel | None:
        if channel == "webhook" and target and f"webhook:{target}" in self.channels:
            return self.channels[f"webhook:{target}"]  # a rule's named webhook (settings: hooks.named)
        ch = self.channels.get(channel)
        if ch is not None:
            return ch
        stand_in = self.settings.channels.console
        if stand_in.enabled and channel in stand_in.stand_in_for:
            return self.channels.get("console")
        return None

    def _issue_token(self, s: Session, alert: AlertRow, channel: str, now: datetime) -> tuple[str, str]:
        token = new_token()
        expires = max(aware(alert.expires_at) or now,
                      now + timedelta(minutes=self.settings.web.token_ttl_minutes))
        s.add(ConfirmToken(token_hash=hash_token(token), alert_id=alert.id, account_id=alert.account_id,
                           channel=channel, created_at=now, expires_at=expires))
        return token, f"{self.settings.web.base_url.rstrip('/')}/c/{token}"

    def _finish(self, s: Session, row: OutboxRow, result: DeliveryResult, transport: str, now: datetime,
                report: DeliverReport) -> None:
        """Record one attempt and move its row: sent, retry (backoff, jitter), or failed/dead and the
        next channel."""
        cfg = self.settings.delivery
        row.attempts += 1
        s.add(Delivery(outbox_id=row.id, attempt=row.attempts, channel=row.channel, transport=transport,
                       status=result.status, provider_id=result.provider_id, error_code=result.error_code,
                       error=result.error, at=now))
        report.outcomes.append((row.id, row.channel, result.status))
        if row.lease_owner != self.worker:  # our lease ran out and another worker took the row over
            log.warning("outbox %s: lease lost before its result was recorded", row.id)
            return
        row.lease_owner = None
        row.lease_until = None
        row.last_error = result.error
        if result.ok:
            self._sent(s, row, result, now)
            report.sent += 1
            return
        floor = 0.0
        throttled = int((row.payload or {}).get("throttled", 0))
        if result.action == "backoff":  # 429 / 20429 / QUOTA_EXCEEDED: the provider, not the message
            floor = self.limiter.backoff(transport, now, result.retry_after)
            throttled += 1
            row.payload = {**(row.payload or {}), "throttled": throttled}
        elif result.action:
            account_action(s, row, result.action, now, code=result.error_code, error=result.error)
        elif result.status == "permanent":
            log.error("delivery %s via %s failed: %s %s", row.id, row.channel, result.error_code,
                      result.error)
        if result.status == "transient":
            counted = row.attempts - min(throttled, self.policy.max_throttled)
            cap = cfg.max_attempts
            if result.max_retries is not None:  # e.g. 30003: one delayed retry, then the next channel
                cap = min(cap, result.max_retries + 1)
            if counted < cap:
                delay = min(cfg.backoff_max_seconds, cfg.backoff_seconds * 2 ** (counted - 1))
                delay = max(delay * (0.5 + self.rng.random()), floor, result.retry_after or 0.0)  # jitter
                row.status = apply(row.status, "retry")
                row.next_attempt_at = now + timedelta(seconds=delay)
                report.retried += 1
                return
        # out of retries (dead) or never retryable (failed): the next channel, if any
        row.status = apply(row.status, "die" if result.status == "transient" and result.max_retries is None else "fail")
        report.dead += row.status == OutboxStatus.DEAD
        report.failed += row.status == OutboxStatus.FAILED
        if enqueue_fallback(s, row, now):
            report.fallbacks += 1

    def _sent(self, s: Session, row: OutboxRow, result: DeliveryResult, now: datetime) -> None:
        row.status = apply(row.status, "deliver" if result.status == "delivered" else "sent")
        row.provider_id = result.provider_id
        row.sent_at = now
        if result.status == "delivered":
            row.delivered_at = now
        alert = s.get(AlertRow, row.alert_id) if row.alert_id else None
        if alert is not None and row.purpose == "alert" and can(alert.status, "notify"):
            alert.status = lifecycle_apply(alert.status, "notify")
            alert.updated_at = now
            s.add(AlertEvent(alert_id=alert.id, at=now, event="notified",
                             detail={"channel": row.channel, "provider_id": result.provider_id}))
