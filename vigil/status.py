"""What the daemon did and what is waiting: ``vigil status``, and the failure counts of ``/metrics``.

Everything is read from the database, so ``vigil status`` tells the truth about a daemon running
in another process (or on another machine).  The report is a list of sections, each a small
function ``(session, now) -> dict`` registered in :data:`SECTIONS` in display order; later work
(replicas, shards) adds its own section without touching the others.  Failures are the
``vigil_runs`` rows with status ``error`` that the daemon writes -- once the database answers
again -- for every failed scan, delivery and escalation run, with the error's class and message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import DEAD_LETTERS, READY, OutboxStatus
from alerts.store.models import Delivery, OutboxRow, Run

Section = Callable[[Session, datetime], dict[str, Any]]
ERROR = "error"  # Run.status of a failed job run
FAILURE_WINDOW = timedelta(hours=24)
SCAN_JOBS = ("scan", "scan_cycle")


def aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def _iso(dt: datetime | None) -> str | None:
    dt = aware(dt)
    return dt.isoformat(timespec="seconds") if dt is not None else None


def runs_section(s: Session, now: datetime) -> dict[str, Any]:
    """The last run of every job, and the runs of the last 24 hours by status."""
    last_ids = select(func.max(Run.id)).group_by(Run.job)
    last = {r.job: r for r in s.scalars(select(Run).where(Run.id.in_(last_ids)))}
    since = now - FAILURE_WINDOW
    counts: dict[str, dict[str, int]] = {}
    for job, st, n in s.execute(select(Run.job, Run.status, func.count()).where(Run.started_at >= since)
                                .group_by(Run.job, Run.status)):
        counts.setdefault(str(job), {})[str(st)] = int(n)
    jobs = {}
    for job in sorted(set(last) | set(counts)):
        r = last.get(job)
        jobs[job] = {"last_status": r.status if r else None, "last_started_at": _iso(r.started_at) if r else None,
                     "last_finished_at": _iso(r.finished_at) if r else None,
                     "last_24h": counts.get(job, {})}
    return {"jobs": jobs}


def failures_section(s: Session, now: datetime) -> dict[str, Any]:
    """Failed runs of the last 24 hours by job and error class, with the latest message."""
    since = now - FAILURE_WINDOW
    rows = s.scalars(select(Run).where(Run.status == ERROR, Run.started_at >= since).order_by(Run.id))
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        detail = r.detail or {}
        key = (r.job, str(detail.get("cause_class") or detail.get("error_class") or "?"))
        g = groups.setdefault(key, {"job": key[0], "error_class": key[1], "count": 0})
        g["count"] += 1
        g["last_at"] = _iso(r.started_at)
        g["last_error"] = str(detail.get("error") or "")[:300]
    return {"window_hours": int(FAILURE_WINDOW.total_seconds() // 3600),
            "total": sum(g["count"] for g in groups.values()), "by_error": list(groups.values())}


def outbox_section(s: Session, now: datetime) -> dict[str, Any]:
    """What waits to be sent, how long the oldest has waited, and what needs a look."""
    depth, oldest = s.execute(select(func.count(), func.min(OutboxRow.created_at))
                              .where(OutboxRow.status.in_(READY))).one()
    by_status = {str(st): int(n) for st, n in s.execute(select(OutboxRow.status, func.count())
                                                       .group_by(OutboxRow.status))}
    oldest_at = aware(oldest)
    unknown = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "unknown")) or 0
    return {
        "depth": int(depth or 0),
        "oldest_pending_age_seconds": round(max((now - oldest_at).total_seconds(), 0.0), 1) if oldest_at else 0.0,
        "sending": by_status.get(OutboxStatus.SENDING.value, 0),
        "dead_letters": sum(by_status.get(st, 0) for st in DEAD_LETTERS),
        "unknown_outcomes": int(unknown),
        "by_status": by_status,
    }


SECTIONS: dict[str, Section] = {"runs": runs_section, "failures": failures_section, "outbox": outbox_section}


def status_report(sessions: sessionmaker[Session], now: datetime) -> dict[str, dict[str, Any]]:
    with sessions() as s:
        return {name: section(s, now) for name, section in SECTIONS.items()}


def failure_counts(s: Session) -> list[tuple[str, str, int]]:
    """(job, error class, count) of every failed run on record: ``vigil_job_failures_total``."""
    out: dict[tuple[str, str], int] = {}
    for job, detail in s.execute(select(Run.job, Run.detail).where(Run.status == ERROR)):
        d = detail or {}
        key = (str(job), str(d.get("cause_class") or d.get("error_class") or "?"))
        out[key] = out.get(key, 0) + 1
    return [(j, c, n) for (j, c), n in sorted(out.items())]


def render_text(report: dict[str, dict[str, Any]]) -> str:
    """The report for a terminal: one block per section, known sections laid out, others as key: value."""
    lines: list[str] = []
    for name, body in report.items():
        lines.append(f"{name}:")
        lines += _RENDER.get(name, _generic)(body)
    return "\n".join(lines)


def _runs(body: dict[str, Any]) -> list[str]:
    out = []
    for job, r in body["jobs"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["last_24h"].items())) or "none"
        out.append(f"  {job:<12} last {r['last_status'] or '-':<9} at {r['last_finished_at'] or r['last_started_at']}"
                   f"  (24 h: {counts})")
    return out or ["  no runs on record"]


def _failures(body: dict[str, Any]) -> list[str]:
    out = [f"  {body['total']} failed run(s) in the last {body['window_hours']} h"]
    for g in body["by_error"]:
        out.append(f"  {g['job']:<12} {g['error_class']:<24} x{g['count']}  last {g['last_at']}: {g['last_error']}")
    return out


def _outbox(body: dict[str, Any]) -> list[str]:
    return [f"  depth {body['depth']} (pending, retry, held); oldest waiting {body['oldest_pending_age_seconds']} s",
            f"  sending now {body['sending']}; dead letters {body['dead_letters']}; "
            f"unknown outcomes {body['unknown_outcomes']}",
            "  by status: " + (", ".join(f"{k} {v}" for k, v in sorted(body["by_status"].items())) or "empty")]


def _generic(body: dict[str, Any]) -> list[str]:
    return [f"  {k}: {v}" for k, v in body.items()]


_RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {"runs": _runs, "failures": _failures,
                                                              "outbox": _outbox}
