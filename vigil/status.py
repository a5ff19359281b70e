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

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import DEAD_LETTERS, READY, OutboxStatus
from alerts.store.models import Cursor, Delivery, OutboxRow, Replica, Run, ShardLease

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


def _age(now: datetime, dt: datetime | None) -> float | None:
    dt = aware(dt)
    return round((now - dt).total_seconds(), 1) if dt is not None else None


def shards_section(s: Session, now: datetime) -> dict[str, Any]:
    """Sharded scanners (``scan.shards``): each replica with its shards and last heartbeat, each shard
    with its owner, lease and lag.  Empty -- and left out of the report -- when sharding is off.

    A shard's lag is per table: ``ids_behind`` is the newest ``ingest_seq`` of the engine's own
    table minus the shard's cursor (an upper bound: other shards' rows count too; shown when the
    source is the engine's database), ``scanned_ago_seconds`` the age of the cursor's last write.
    """
    leases = list(s.scalars(select(ShardLease).order_by(ShardLease.shard)))
    if not leases:
        return {}
    count = sum(1 for x in leases if x.shard >= 0)
    db_now = aware(s.scalar(select(func.now()))) or now  # leases live by the database's clock (vigil/shards.py)
    cursors: dict[str, dict[str, tuple[Any, datetime | None]]] = {}
    for c in s.scalars(select(Cursor).where(Cursor.source.like("%#%"))):
        base, _, suffix = c.source.partition("#")
        label = "cross" if suffix == "cross" else suffix.removeprefix("shard").split("of")[0]
        if suffix == "cross" or suffix.endswith(f"of{count}"):
            cursors.setdefault(label, {})[base.split(":", 1)[-1]] = ((c.state or {}).get("pos"), c.updated_at)
    newest = _newest(s, {t for by in cursors.values() for t in by})
    shards: list[dict[str, Any]] = []
    for x in leases:
        label = "cross" if x.shard < 0 else str(x.shard)
        lag = {}
        for table, (pos, at) in sorted(cursors.get(label, {}).items()):
            top = newest.get(table)
            behind = top - int(pos or 0) if top is not None and _is_int(pos) else None
            lag[table] = {"ids_behind": behind, "scanned_ago_seconds": _age(now, at)}
        live = x.owner is not None and x.expires_at is not None and aware(x.expires_at) > db_now  # type: ignore[operator]
        shards.append({"shard": label, "owner": x.owner if live else None, "last_owner": x.owner,
                       "heartbeat_age_seconds": _age(db_now, x.heartbeat_at), "lease_expired": not live,
                       "ids_behind": max((v["ids_behind"] or 0 for v in lag.values()), default=0), "lag": lag})
    replicas = []
    for r in s.scalars(select(Replica).order_by(Replica.replica_id)):
        held = sorted((sh["shard"] for sh in shards if sh["owner"] == r.replica_id), key=_shard_order)
        replicas.append({"replica": r.replica_id, "heartbeat_age_seconds": _age(db_now, r.heartbeat_at),
                         "started_at": _iso(r.started_at), "shards": held, "alive": bool(held)})
    return {"count": count, "replicas": replicas, "unowned": [sh["shard"] for sh in shards if sh["owner"] is None],
            "shards": shards}


def _shard_order(label: str) -> int:
    return -1 if label == "cross" else int(label)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, str) and v.isdigit())


def _newest(s: Session, tables: set[str]) -> dict[str, int | None]:
    """The newest ``ingest_seq`` of each canonical table in the engine's database (absent: None)."""
    present = set(inspect(s.get_bind()).get_table_names())
    out: dict[str, int | None] = {}
    for t in sorted(tables & present):
        if t.isidentifier():
            out[t] = s.scalar(text(f"SELECT max(ingest_seq) FROM {t}"))  # a canonical table name
    return out


SECTIONS: dict[str, Section] = {"runs": runs_section, "failures": failures_section, "outbox": outbox_section,
                                "shards": shards_section}


def status_report(sessions: sessionmaker[Session], now: datetime) -> dict[str, dict[str, Any]]:
    """Every section; one with nothing to say (sharding off) is left out."""
    with sessions() as s:
        out = {name: section(s, now) for name, section in SECTIONS.items()}
    return {name: body for name, body in out.items() if body}


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


def _shards(body: dict[str, Any]) -> list[str]:
    out = [f"  {body['count']} shard(s) + cross-account; unowned: {', '.join(body['unowned']) or 'none'}"]
    for r in body["replicas"]:
        out.append(f"  replica {r['replica']:<28} heartbeat {r['heartbeat_age_seconds']} s ago  "
                   f"shards {', '.join(r['shards']) or 'none'}")
    for sh in body["shards"]:
        out.append(f"  shard {sh['shard']:>5}  owner {sh['owner'] or '-':<28} "
                   f"heartbeat {sh['heartbeat_age_seconds']} s ago  ids behind {sh['ids_behind']}")
    return out


def _generic(body: dict[str, Any]) -> list[str]:
    return [f"  {k}: {v}" for k, v in body.items()]


_RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {"runs": _runs, "failures": _failures,
                                                              "outbox": _outbox, "shards": _shards}
