"""One transmission, made safe against lost leases and dead workers.

A lease is a promise only while it is checked.  At the moment a message is handed to its provider
-- the channel's ``handover`` hook: for SMTP when the relay has said ``354`` to ``DATA``, for the
HTTP providers right before the request is written (``notifiers.handover``) -- the worker
re-checks its lease with a compare-and-set on the claim's token, renews it, counts the attempt
and writes the attempt's row (``vigil_deliveries``, status ``in_flight``, with the worker's
identity), all in one transaction; only then does the first byte that could deliver the message
go out.  While the call runs, a heartbeat keeps renewing the lease, so a slow provider never lets
another worker take the message over, and a worker whose lease was taken over never sends.

Whoever takes over a message whose lease expired therefore knows what the dead worker did
(:func:`takeover`):

* no ``in_flight`` attempt: nothing was handed over (the worker died before, or while talking
  SMTP before ``DATA``); send it;
* an ``in_flight`` attempt: the provider may have it (a kill between its answer and the commit of
  the result).  The outcome is ``unknown`` and the message is *not* sent blindly again: a channel
  whose receiver drops duplicates (``Channel.idempotent``, the webhooks' delivery id) resends
  with the same key; every other one is recorded as presumed sent (for SMS the delivery receipt,
  or its absence after ``receipt_timeout_seconds``, settles it: the alert then falls back to its
  next channel; an alert nobody answers is reminded on the next channel by the escalate job).

:class:`Lanes` run the sends: one thread pool per channel, so a hung SMTP relay occupies only the
email senders while push and SMS go on.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import OutboxStatus
from alerts.store.models import Delivery, OutboxRow

log = logging.getLogger("vigil.deliver")

IN_FLIGHT = "in_flight"  # handed over, no answer recorded yet: the provider may hold the message
UNKNOWN = "unknown"  # handed over, no answer ever recorded: the provider may or may not have it


class LeaseLost(Exception):
    """Another worker holds the message now: this one must not hand it over."""


def worker_identity(prefix: str | None = None) -> str:
    """``host:pid:random`` -- unique per worker, so a lease is never mistaken for another's."""
    base = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return f"{prefix}@{base}" if prefix else base


def presend(sessions: sessionmaker[Session], *, oid: str, token: str, worker: str, channel: str,
            transport: str, at: datetime, lease_until: datetime) -> int | None:
    """Re-check and renew the lease, count the attempt and write its ``in_flight`` row, in one
    transaction, right before the handover.  Returns the attempt row's id; None when the lease is
    gone (another worker holds the message: do not hand it over)."""
    with sessions.begin() as s:
        res = s.execute(update(OutboxRow)
                        .where(OutboxRow.id == oid, OutboxRow.lease_owner == token,
                               OutboxRow.status == OutboxStatus.SENDING.value)
                        .values(lease_until=lease_until, attempts=OutboxRow.attempts + 1)
                        .returning(OutboxRow.attempts).execution_options(synchronize_session=False))
        n = res.scalar_one_or_none()
        if n is None:
            return None
        row = Delivery(outbox_id=oid, attempt=n, channel=channel, transport=transport, status=IN_FLIGHT,
                       worker=worker, at=at)
        s.add(row)
        s.flush()
        return row.id


def renew(sessions: sessionmaker[Session], leases: Mapping[str, str], until: datetime) -> int:
    """Extend the leases ``{outbox id: token}`` still held; returns how many were."""
    n = 0
    by_token: dict[str, list[str]] = {}
    for oid, token in leases.items():
        by_token.setdefault(token, []).append(oid)
    with sessions.begin() as s:
        for token, ids in by_token.items():
            res = s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids), OutboxRow.lease_owner == token)
                            .values(lease_until=until).execution_options(synchronize_session=False))
            n += res.rowcount  # type: ignore[attr-defined]
    return n


@dataclass(frozen=True)
class Takeover:
    """A message a dead worker had handed over (its ``in_flight`` attempt is now ``unknown``)."""

    oid: str
    attempt_id: int
    worker: str | None
    since: datetime


def takeover(s: Session, ids: Iterable[str], *, now: datetime, worker: str) -> dict[str, Takeover]:
    """Settle the ``in_flight`` attempts of messages taken over from an expired lease: each becomes
    ``unknown``.  Messages without one were never handed over and are simply sent."""
    ids = list(ids)
    if not ids:
        return {}
    out: dict[str, Takeover] = {}
    for d in s.scalars(select(Delivery).where(Delivery.outbox_id.in_(ids), Delivery.status == IN_FLIGHT)
                       .order_by(Delivery.id)):
        d.status = UNKNOWN
        d.error = f"worker {d.worker} stopped after handing the message over; outcome unknown (found by {worker})"
        d.finished_at = now
        out[d.outbox_id] = Takeover(d.outbox_id, d.id, d.worker, d.at)
    return out


class Heartbeat:
    """Renews the leases of messages whose provider call is running, every ``every`` seconds.

    A thread runs only while calls are in flight.  A renewal that fails (the database is away) is
    logged and tried again at the next beat: the lease has ``lease_seconds`` of slack."""

    def __init__(self, renew: Callable[[Mapping[str, str]], Any], every: float) -> None:
        self._renew = renew
        self.every = every
        self._lock = threading.Lock()
        self._leases: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, oid: str, token: str) -> None:
        with self._lock:
            self._leases[oid] = token
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="deliver-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, oid: str) -> None:
        with self._lock:
            self._leases.pop(oid, None)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                leases = dict(self._leases)
                if not leases:
                    self._thread = None
                    return
            try:
                self._renew(leases)
            except Exception:
                log.warning("renewing %d lease(s) failed; trying again in %.1f s", len(leases), self.every,
                            exc_info=True)
        with self._lock:
            self._thread = None

    def close(self) -> None:
        self._stop.set()


class Lanes:
    """One thread pool per channel (``concurrency(channel)`` threads), each with a bounded backlog:
    a channel whose backlog is full is left out of the next claim, so its rows stay claimable by
    other workers and a stuck provider never holds the others' messages."""

    def __init__(self, concurrency: Callable[[str], int], backlog_per_thread: int) -> None:
        self._size = concurrency
        self._backlog = backlog_per_thread
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._load: dict[str, int] = {}
        self._cond = threading.Condition()

    def submit(self, channel: str, fn: Callable[[], Any]) -> Future[Any]:
        with self._cond:
            pool = self._pools.get(channel)
            if pool is None:
                pool = self._pools[channel] = ThreadPoolExecutor(self._size(channel),
                                                                 thread_name_prefix=f"deliver-{channel}")
            self._load[channel] = self._load.get(channel, 0) + 1
        fut = pool.submit(fn)
        fut.add_done_callback(lambda _: self._done(channel))
        return fut

    def _done(self, channel: str) -> None:
        with self._cond:
            self._load[channel] -= 1
            self._cond.notify_all()

    def capacity(self, channel: str) -> int:
        return self._size(channel) * self._backlog

    def full(self) -> list[str]:
        with self._cond:
            return [c for c, n in self._load.items() if n >= self.capacity(c)]

    def busy(self) -> int:
        with self._cond:
            return sum(self._load.values())

    def wait(self, timeout: float) -> None:
        """Until some send finishes (or ``timeout``)."""
        with self._cond:
            self._cond.wait(timeout)

    def close(self, wait: bool = True) -> None:
        """Cancel what has not started; ``wait`` for the sends under way."""
        with self._cond:
            pools = list(self._pools.values())
            self._pools.clear()
        for p in pools:
            p.shutdown(wait=wait, cancel_futures=True)


def release(sessions: sessionmaker[Session], leases: Mapping[str, str]) -> int:
    """Give back claimed messages that were never handed to a sender (shutdown): ready again now,
    instead of after their lease runs out."""
    n = 0
    with sessions.begin() as s:
        for oid, token in leases.items():
            res = s.execute(update(OutboxRow).where(OutboxRow.id == oid, OutboxRow.lease_owner == token,
                                                    OutboxRow.status == OutboxStatus.SENDING.value)
                            .values(status=OutboxStatus.RETRY.value, lease_owner=None, lease_until=None,
                                    last_error="released at shutdown before it was sent")
                            .execution_options(synchronize_session=False))
            n += res.rowcount  # type: ignore[attr-defined]
    return n
