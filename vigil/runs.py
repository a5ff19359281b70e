"""Every job run on record, failures included -- even those that happened while the database was away.

A failed scan, delivery or escalation run is most often *caused* by the database (stopped,
restarting, frozen): writing its ``vigil_runs`` row right then fails too.  :class:`RunLog` keeps
such rows in memory (bounded; what had to be dropped is counted and reported with the next row)
and writes them, oldest first, as soon as a write succeeds again -- at the latest with the next
job run.  A failure row carries ``status = "error"`` and ``detail = {"error_class", "error"}``;
``vigil status`` and ``/metrics`` (``vigil_job_failures_total``) read them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerts.store.models import Run

log = logging.getLogger("vigil.daemon")
ERROR = "error"


@dataclass(frozen=True)
class RunRecord:
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    detail: dict[str, Any] = field(default_factory=dict)


def database_error(e: BaseException) -> DBAPIError | None:
    """The database error behind ``e`` (itself, or its cause: a source read wraps it), if any."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 10:
        if isinstance(cur, DBAPIError):
            return cur
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return None


def error_detail(e: BaseException, **extra: Any) -> dict[str, Any]:
    """What a failure row says: the class and the first line of the message (no traceback); for a
    database error wrapped in another, the database error's class too (``cause_class``)."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    detail: dict[str, Any] = {"error_class": type(e).__name__, "error": first[:1000]}
    db = database_error(e)
    if db is not None:
        if db is not e:
            detail["cause_class"] = type(db).__name__
        if db.orig is not None:  # the driver's own error (psycopg's AdminShutdown, ...)
            detail["driver_error"] = type(db.orig).__name__
    return {**detail, **extra}


class RunLog:
    def __init__(self, sessions: sessionmaker[Session], *, limit: int = 10_000) -> None:
        self.sessions = sessions
        self._pending: deque[RunRecord] = deque()
        self._limit = limit
        self._dropped = 0
        self._lock = threading.Lock()
        self._down_since: datetime | None = None

    def add(self, record: RunRecord) -> bool:
        """Queue one row and write everything queued; False while the database does not answer."""
        with self._lock:
            if len(self._pending) >= self._limit:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append(record)
        return self.flush()

    def failure(self, job: str, started: datetime, finished: datetime, e: BaseException, **extra: Any) -> bool:
        return self.add(RunRecord(job, started, finished, ERROR, error_detail(e, **extra)))

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> bool:
        with self._lock:
            batch = list(self._pending)
            dropped = self._dropped
            if not batch:
                return True
            try:
                with self.sessions.begin() as s:
                    for i, r in enumerate(batch):
                        detail = dict(r.detail)
                        if i == 0 and dropped:
                            detail["runs_not_recorded"] = dropped  # the buffer overflowed while the database was away
                        s.add(Run(job=r.job, started_at=r.started_at, finished_at=r.finished_at, status=r.status,
                                  detail=detail))
            except SQLAlchemyError as e:
                if self._down_since is None:
                    self._down_since = batch[-1].started_at
                    log.warning("cannot write %d run record(s) to vigil_runs (%s); keeping them until the "
                                "database answers", len(batch), type(e).__name__)
                return False
            for _ in batch:
                self._pending.popleft()
            self._dropped = 0
            if self._down_since is not None:
                log.info("wrote %d run record(s) kept while the database was away", len(batch))
                self._down_since = None
            return True
