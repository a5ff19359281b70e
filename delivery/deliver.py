"""The delivery job: drain the outbox.

Rows are claimed by lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a compare-and-set update
everywhere) under a token naming the worker (``host:pid:random``) and the claim.  A claim is
prepared in one transaction (:mod:`delivery.prepare`: budget, rate, coalescing, tokens, render);
then each message is sent by its channel's senders (:class:`delivery.transmit.Lanes`: per-channel
concurrency, so a hung SMTP relay never delays push or SMS) outside any transaction, and its
result is recorded at once in its own.

Every transmission is on record before it happens (:mod:`delivery.transmit`): the lease is
re-checked and renewed, and the attempt's row written, before the provider call; a heartbeat
renews the lease while the call runs.  A worker whose lease was taken over never sends; a worker
killed mid-call leaves an attempt row that tells its successor whether the provider may have the
message -- which is then presumed sent, not sent blindly again.

Before a message goes out, the delivery policy (``delivery.policy``) may hold it: over the
account's budget (5 SMS an hour) an ordinary message waits for the window to free, a critical
one goes out at most once per coalescing window carrying everything held for that account and
channel; over the provider's rate, or while the provider is backing us off after a 429, it waits
for the bucket.  Transient failures are retried with exponential backoff and jitter (never
sooner than the provider's ``Retry-After``); permanent ones -- and transient ones out of
retries -- fall back to the next channel or go to the dead letters with their reason.  An
``unknown`` outcome (the provider timed out after the message was handed over) is never resent
within the attempt; ``delivery.on_unknown`` says whether a later attempt retries it or it is
presumed sent.  Receipts that never come fall back too (``delivery.receipts.sweep_unconfirmed``,
run before every claim).

Outbox statuses: ``pending``, ``retry``, ``held`` (ready again at ``next_attempt_at``),
``sending`` (leased), ``sent``, ``unconfirmed``, ``delivered``, ``undelivered``, ``coalesced``,
``failed`` / ``dead`` (the dead letters).

Three ways to run it: :meth:`Deliverer.run_once` (one claim, sent and recorded before it
returns), :meth:`Deliverer.drain` (everything that is ready: ``vigil deliver --once``) and
:meth:`Deliverer.pump` (the daemon: claims for the channels with free senders and returns at
once; :meth:`Deliverer.collect` reports what finished since).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import READY
from delivery.outbox import Job, claim
from delivery.policy import PolicySettings
from delivery.prepare import SYSTEM_CHANNELS, DeliverReport, Preparer, Renderer
from delivery.ratelimit import Limiter, limiter_for
from delivery.receipts import sweep_unconfirmed
from delivery.record import Recorder
from delivery.settings import DeliveryConfig
from delivery.transmit import Heartbeat, Lanes, LeaseLost, presend, release, renew, worker_identity
from notifiers.base import Channel, DeliveryResult

__all__ = ["READY", "SYSTEM_CHANNELS", "DeliverReport", "Deliverer", "Failure", "claim", "policy_of"]

log = logging.getLogger("vigil.deliver")
MAX_CLAIMS_PER_DRAIN = 10_000  # a guard: a drain ends even if rows somehow keep coming back ready
SWEEP_EVERY = 5.0  # seconds between sweeps for overdue receipts while draining or pumping


@dataclass(frozen=True)
class Failure:
    """An error the delivery job met outside any single message (the database went away while
    recording); the daemon writes these to ``vigil_runs`` once the database answers again."""

    at: datetime
    error_class: str
    error: str


def policy_of(settings: DeliveryConfig) -> PolicySettings:
    """The ``policy`` settings section, or its defaults while settings do not carry one."""
    p = getattr(settings, "policy", None)
    return p if isinstance(p, PolicySettings) else PolicySettings()


class Deliverer:
    """One delivery worker.  Keep one instance for the life of the process: its rate limiter
    remembers the providers' 429s and its senders stay warm (pass a shared ``limiter`` to several).

    ``worker`` prefixes the unique identity; ``clock`` (the daemon's) stamps results when they come
    in -- without it they carry the time the pass was given.  ``concurrency`` overrides
    ``delivery.concurrency`` per channel."""

    def __init__(self, sessions: sessionmaker[Session], settings: DeliveryConfig, channels: Mapping[str, Channel],
                 render: Renderer, *, worker: str | None = None, rng: random.Random | None = None,
                 policy: PolicySettings | None = None, limiter: Limiter | None = None,
                 clock: Callable[[], datetime] | None = None, concurrency: Mapping[str, int] | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.channels = channels
        self.worker = worker_identity(worker)
        self.rng = rng or random.Random()
        self.policy = policy or policy_of(settings)
        self.limiter = limiter or limiter_for(self.policy, sessions)
        self.clock = clock
        cfg = settings.delivery
        self.lease = timedelta(seconds=cfg.lease_seconds)
        self.preparer = Preparer(settings, channels, render, policy=self.policy, limiter=self.limiter,
                                 worker=self.worker)
        sizes = dict(concurrency or {})
        self.lanes = Lanes(lambda ch: sizes.get(ch) or cfg.senders(ch), cfg.backlog_per_sender)
        self.heartbeat = Heartbeat(lambda leases: renew(self.sessions, leases, self._lease_now() + self.lease),
                                   every=max(0.2, cfg.lease_seconds / 3))
        self.recorder = Recorder(sessions, settings, policy=self.policy, limiter=self.limiter, rng=self.rng,
                                 worker=self.worker, stamp=self._stamp, lease_now=self._lease_now)
        self.failures: deque[Failure] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._base = (datetime.min, 0.0)
        self._background = DeliverReport()
        self._queued: dict[Future[None], Job] = {}  # handed to a sender, not finished
        self._swept = float("-inf")
        self._unrecorded: list[Job] = []  # results the database could not take: recorded at the next claim

    # -- the three ways to run ---------------------------------------------------------------
    def run_once(self, now: datetime, limit: int | None = None) -> DeliverReport:
        """One claim of up to ``limit`` rows (default ``delivery.batch_size``), sent and recorded."""
        report = DeliverReport()
        futures = self._dispatch(now, limit or self.settings.delivery.batch_size, report, full_check=False)
        wait(futures)
        return report

    def drain(self, clock: Callable[[], datetime]) -> DeliverReport:
        """Send everything that is ready now, claim after claim, every channel at its own pace.

        A claim that came back full is followed by the next as soon as a channel has room; a
        partial one means the outbox is empty for now: the drain waits for the sends under way
        (they may make retries or fallbacks ready) and claims once more before it ends."""
        report = DeliverReport()
        running: set[Future[None]] = set()
        limit = self.settings.delivery.batch_size
        for _ in range(MAX_CLAIMS_PER_DRAIN):
            before = report.claimed
            running |= set(self._dispatch(clock(), limit, report))
            got = report.claimed - before
            running = {f for f in running if not f.done()}
            if got == 0 and not running:
                break
            if got < limit:
                wait(running)  # nothing more is ready until these finish
            while running and self.lanes.full():
                wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                running = {f for f in running if not f.done()}
        wait(running)
        return report

    def pump(self, now: datetime) -> int:
        """Claim for the channels with free senders and hand the messages to them; returns at once.
        Results accumulate until :meth:`collect`."""
        part = DeliverReport()
        self._dispatch(now, self.settings.delivery.batch_size, None, claimed=part)
        return part.claimed

    def collect(self) -> DeliverReport:
        """What finished since the last call (the daemon's pump mode)."""
        with self._lock:
            out, self._background = self._background, DeliverReport()
        return out

    def idle(self) -> bool:
        return self.lanes.busy() == 0

    def close(self, wait: bool = True) -> None:
        """Stop the senders: sends under way finish (``wait``); messages not started yet are given
        back (ready again at once, for this worker's successor or another one)."""
        self.lanes.close(wait=wait)
        try:
            self._settle_unrecorded(None)
        except Exception:  # still away: the leases expire and a successor settles these
            log.warning("%d delivery result(s) could not be recorded before shutdown", len(self._unrecorded))
        with self._lock:
            cancelled = {j.oid: j.token for f, j in self._queued.items() if f.cancelled()}
            self._queued.clear()
        if cancelled:
            try:
                n = release(self.sessions, cancelled)
                log.info("gave back %d claimed message(s) not sent before shutdown", n)
            except Exception:  # their leases run out instead
                log.warning("could not give back %d claimed message(s); their leases will expire",
                            len(cancelled), exc_info=True)
        self.heartbeat.close()

    # -- dispatch -------------------------------------------------------------------------------
    def _dispatch(self, now: datetime, limit: int, report: DeliverReport | None, *, full_check: bool = True,
                  claimed: DeliverReport | None = None) -> list[Future[None]]:
        """Sweep, claim, prepare, record what needs no call, and hand the rest to the senders.
        ``report`` None: the results go to the pump's running report (:meth:`collect`)."""
        self._base = (now, time.monotonic())
        self._settle_unrecorded(report)
        part = DeliverReport()
        if not full_check or time.monotonic() - self._swept >= SWEEP_EVERY:  # run_once always sweeps
            self._swept = time.monotonic()
            with self.sessions.begin() as s:
                wait_for = timedelta(seconds=self.policy.receipt_timeout_seconds)
                made = sweep_unconfirmed(s, now=now, timeout=wait_for, channels=self.policy.receipt_channels)
            part.unconfirmed = part.fallbacks = len(made)
        skip = self.lanes.full() if full_check else []
        got = claim(self.sessions, worker=self.worker, now=now, limit=limit, lease=self.lease, skip_channels=skip)
        part.claimed = len(got.ids)
        if claimed is not None:
            claimed.claimed = part.claimed
        futures: list[Future[None]] = []
        if got.ids:
            with self.sessions.begin() as s:
                jobs = self.preparer.prepare(s, got, now, part)
            decided = [j for j in jobs if not self._sendable(j)]
            if decided:
                self.recorder.record_safely(decided, part)
            for job in jobs:
                if self._sendable(job):
                    fut = self.lanes.submit(job.channel, self._task(job, report))
                    with self._lock:
                        self._queued[fut] = job
                    fut.add_done_callback(self._forget)
                    futures.append(fut)
        self._merge(report, part)
        return futures

    def _forget(self, fut: Future[None]) -> None:
        if not fut.cancelled():
            with self._lock:
                self._queued.pop(fut, None)

    def _task(self, job: Job, report: DeliverReport | None) -> Callable[[], None]:
        return lambda: self._execute(job, report)

    @staticmethod
    def _sendable(job: Job) -> bool:
        return job.result is None and job.transport is not None and job.message is not None

    def _execute(self, job: Job, report: DeliverReport | None) -> None:
        """One message on its channel's sender thread: send (unless its provider is backing us
        off), then record the result in its own transaction."""
        part = DeliverReport()
        try:
            blocked = self.limiter.blocked_until(job.provider)
            at = job.now or self._lease_now()
            if blocked is not None and blocked > at:
                job.wait = (blocked - at).total_seconds()  # put back until the provider is ready
            else:
                self._transmit(job)
            if job.lease_lost:
                part.lease_lost += 1
            else:
                part = self.recorder.grouped(job)  # one transaction with what the other senders finished
        except Exception as e:  # the database went away: record (or give back) the message once it
            self._failed(e)      # answers again; should this worker die first, its lease expires and a
            if _is_db_error(e):  # successor settles the message from its attempt row
                log.error("delivering %s: %s", job.oid, self.failures[-1].error)
                with self._lock:
                    self._unrecorded.append(job)
            else:
                log.exception("delivering %s", job.oid)
        self._merge(report, part)

    def _settle_unrecorded(self, report: DeliverReport | None) -> None:
        """Record the results the database could not take (or give back what was never sent)."""
        with self._lock:
            jobs, self._unrecorded = self._unrecorded, []
        if not jobs:
            return
        part = DeliverReport()
        sent = [j for j in jobs if j.result is not None or j.wait is not None]
        try:
            if sent:
                self.recorder.record(sent, part)
            idle = {j.oid: j.token for j in jobs if j.result is None and j.wait is None and not j.attempt_id}
            if idle:
                release(self.sessions, idle)
        except Exception:
            with self._lock:
                self._unrecorded = jobs + self._unrecorded
            raise
        log.info("recorded %d delivery result(s) held while the database was away", len(jobs))
        self._merge(report, part)

    def _transmit(self, job: Job) -> None:
        assert job.transport is not None and job.message is not None
        transport, message = job.transport, job.message
        state: dict[str, int | None] = {"attempt": None}

        def handover() -> None:  # the channel is about to write the first byte that could deliver it
            if state["attempt"] is None:
                aid = presend(self.sessions, oid=job.oid, token=job.token, worker=self.worker,
                              channel=job.channel, transport=transport.name, at=self._stamp(job),
                              lease_until=self._lease_now() + self.lease)
                if aid is None:
                    raise LeaseLost(job.oid)
                state["attempt"] = aid

        self.heartbeat.add(job.oid, job.token)
        try:
            result = transport.transmit(message, handover)
        except LeaseLost:
            job.lease_lost = True
            log.info("outbox %s: taken over by another worker before it was handed over; not sending", job.oid)
            return
        except Exception as e:  # the contract says transmit() never raises for a delivery failure
            if state["attempt"] is None and _is_db_error(e):
                raise  # recording the handover failed: nothing went out, the lease expires, a successor sends
            log.exception("channel %s raised", transport.name)
            error = f"{type(e).__name__}: {e}"
            result = DeliveryResult("unknown" if state["attempt"] is not None else "transient", error=error)
        finally:
            self.heartbeat.discard(job.oid)
        job.attempt_id = state["attempt"]
        if result.action == "backoff":
            self.limiter.backoff(job.provider, job.now or self._lease_now(), result.retry_after)
        job.result = result

    # -- time and bookkeeping -------------------------------------------------------------------
    def _lease_now(self) -> datetime:
        """The time leases are measured in: the clock, or the pass's time plus what has elapsed."""
        if self.clock is not None:
            return self.clock()
        base, mono = self._base
        return base + timedelta(seconds=time.monotonic() - mono)

    def _stamp(self, job: Job) -> datetime:
        """When a result is recorded: now by the clock, else the pass's time (deterministic tests)."""
        if self.clock is not None:
            return self.clock()
        return job.now or self._lease_now()

    def _merge(self, report: DeliverReport | None, part: DeliverReport) -> None:
        with self._lock:
            (self._background if report is None else report).add(part)

    def _failed(self, e: BaseException) -> None:
        self.failures.append(Failure(self._lease_now(), type(e).__name__, str(e).strip().splitlines()[0]
                                     if str(e).strip() else type(e).__name__))

    def take_failures(self) -> list[Failure]:
        out = []
        while self.failures:
            out.append(self.failures.popleft())
        return out

    def __repr__(self) -> str:
        return f"Deliverer({self.worker})"



def _is_db_error(e: BaseException) -> bool:
    return isinstance(e, DBAPIError)
