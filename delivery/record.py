"""Record delivery results: each attempt's row, and the outbox row's next status -- sent, retry
(backoff with jitter), or failed/dead and the next channel -- with what the provider said about
the account.  Split from :mod:`delivery.deliver`, which claims and sends."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerts.lifecycle import apply as lifecycle_apply
from alerts.lifecycle import can
from alerts.outbox import OutboxStatus, apply
from alerts.store.models import AccountRow, AlertEvent, AlertRow, Delivery, OutboxRow
from delivery.outbox import Job, preload, put_back
from delivery.policy import PolicySettings
from delivery.prepare import DeliverReport
from delivery.ratelimit import Limiter
from delivery.receipts import account_action, enqueue_fallback
from delivery.settings import DeliveryConfig
from notifiers.base import Channel, DeliveryResult

log = logging.getLogger("vigil.deliver")


GROUP_MAX = 50  # results written in one transaction at most


@dataclass
class _Entry:
    job: Job
    part: DeliverReport = field(default_factory=DeliverReport)
    done: bool = False
    error: BaseException | None = None


class Recorder:
    def __init__(self, sessions: sessionmaker[Session], settings: DeliveryConfig, *, policy: PolicySettings,
                 limiter: Limiter, rng: random.Random, worker: str, stamp: Callable[[Job], datetime],
                 lease_now: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.settings = settings
        self.policy = policy
        self.limiter = limiter
        self.rng = rng
        self.worker = worker
        self._stamp = stamp
        self._lease_now = lease_now
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._writing = False

    def record_safely(self, jobs: list[Job], report: DeliverReport) -> None:
        for attempt in range(3):  # a lost result leaves an open attempt row: try hard to record it
            part = DeliverReport()
            try:
                self.record(jobs, part)
                break
            except OperationalError as e:
                if attempt == 2:
                    raise
                log.warning("recording delivery results failed (%s); retrying", type(e).__name__)
                time.sleep(0.2 * (attempt + 1))
        report.add(part)

    def grouped(self, job: Job) -> DeliverReport:
        """Record one sender's result together with whatever the other senders finished meanwhile:
        one transaction for the group (group commit).  The first sender to arrive while no group is
        being written writes the queue; the others wait for it.  Returns this job's part."""
        entry = _Entry(job)
        with self._cond:
            self._queue.append(entry)
            while not entry.done:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
                self._cond.release()
                try:
                    self._write_group(batch)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    for e in batch:
                        e.done = True
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.part

    def _write_group(self, batch: list[_Entry]) -> None:
        for attempt in range(3):
            parts = [DeliverReport() for _ in batch]
            try:
                self.record([e.job for e in batch], parts[0], parts=parts)
                break
            except OperationalError as e:
                if attempt == 2:
                    for x in batch:
                        x.error = e
                    return
                log.warning("recording delivery results failed (%s); retrying", type(e).__name__)
                time.sleep(0.2 * (attempt + 1))
            except Exception as e:
                for x in batch:
                    x.error = e
                return
        for x, part in zip(batch, parts, strict=True):
            x.part = part

    def record(self, jobs: list[Job], report: DeliverReport, *, parts: list[DeliverReport] | None = None) -> None:
        """Record results in one transaction (``parts``: a report per job, else all into ``report``).
        Alerts (then accounts) are locked in id order first: two senders finishing messages of the
        same alerts never deadlock."""
        with self.sessions.begin() as s:
            q = select(OutboxRow).where(OutboxRow.id.in_([j.oid for j in jobs]))
            rows = {r.id: r for r in s.scalars(q)}
            lock = s.get_bind().dialect.name == "postgresql"
            alert_ids = {r.alert_id for r in rows.values() if r.alert_id}
            acted = {rows[j.oid].account_id for j in jobs if j.oid in rows and j.result and j.result.action}
            pinned = preload(s, AlertRow, AlertRow.id, alert_ids, lock=lock)
            pinned += preload(s, AccountRow, AccountRow.account_id, acted, lock=lock)
            for i, job in enumerate(jobs):
                row = rows.get(job.oid)
                if row is None:
                    continue
                report = parts[i] if parts is not None else report
                if job.result is not None:
                    self._finish(s, row, job, report)
                elif job.wait is not None and row.lease_owner == job.token:
                    put_back(row, "retry", (job.now or self._lease_now()) + timedelta(seconds=job.wait),
                             f"provider '{job.provider}' asked us to back off")
                    report.throttled += 1
            del pinned

    def _finish(self, s: Session, row: OutboxRow, job: Job, report: DeliverReport) -> None:
        """Record one attempt and move its row: sent, retry (backoff, jitter), or failed/dead and the
        next channel."""
        result = job.result
        assert result is not None
        now = self._stamp(job)
        if job.attempt_id is not None:  # written before the call (or left by a dead worker)
            d = s.get(Delivery, job.attempt_id)
            if d is not None and not job.presumed:
                d.status, d.provider_id, d.error_code = result.status, result.provider_id, result.error_code
                d.error, d.finished_at = result.error, now
            elif d is not None:
                d.error = result.error
        elif row.lease_owner == job.token:  # decided without a call: skipped, not configured, ...
            row.attempts += 1
            s.add(Delivery(outbox_id=row.id, attempt=row.attempts, channel=row.channel, transport=job.provider,
                           status=result.status, provider_id=result.provider_id, error_code=result.error_code,
                           error=result.error, at=now, worker=self.worker, finished_at=now))
        report.outcomes.append((row.id, row.channel, "presumed_sent" if job.presumed else result.status))
        if row.lease_owner != job.token:  # our lease ran out and another worker took the row over
            log.warning("outbox %s: lease lost before its result was recorded", row.id)
            return
        row.lease_owner = None
        row.lease_until = None
        row.last_error = result.error
        if job.presumed:
            self._sent(s, row, result, now)
            report.presumed_sent += 1
            return
        if result.ok or (result.status == "unknown" and self._presume(row.channel, job.transport)):
            self._sent(s, row, result, now)
            report.sent += result.ok
            report.unknown += result.status == "unknown"
            return
        self._failure(s, row, result, job.provider, now, report)

    def _presume(self, channel: str, transport: Channel | None) -> bool:
        if transport is not None and transport.idempotent:
            return False  # a retry carries the same delivery id: the receiver drops the copy
        return self.settings.delivery.on_unknown.get(channel, "retry") == "presume_sent"

    def _failure(self, s: Session, row: OutboxRow, result: DeliveryResult, transport: str, now: datetime,
                 report: DeliverReport) -> None:
        cfg = self.settings.delivery
        floor = 0.0
        throttled = int((row.payload or {}).get("throttled", 0))
        if result.action == "backoff":  # 429 / 20429 / QUOTA_EXCEEDED: the provider, not the message
            floor = self.limiter.backoff(transport, now, result.retry_after)
            throttled += 1
            row.payload = {**(row.payload or {}), "throttled": throttled}
        elif result.action and not (row.payload or {}).get("previous"):  # the old contact is not the account's
            account_action(s, row, result.action, now, code=result.error_code, error=result.error)
        elif result.status == "permanent":
            log.error("delivery %s via %s failed: %s %s", row.id, row.channel, result.error_code,
                      result.error)
        if result.status == "unknown":
            report.unknown += 1
            log.warning("delivery %s via %s: outcome unknown (%s); not resent in this attempt", row.id,
                        row.channel, result.error)
        retryable = result.status in ("transient", "unknown")
        if retryable:
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
        row.status = apply(row.status, "die" if retryable and result.max_retries is None else "fail")
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
