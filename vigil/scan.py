"""The scan cycle: ingest -> detectors -> rules -> alerts, tickets, outbox, cursor advance.

Everything one batch changes is written in ONE database transaction, so a crash replays the batch
and deterministic ids make the replay produce the same alerts instead of doubling them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerts.contacts import copy_to_previous_contacts
from alerts.contacts import record_changes as record_contact_changes
from alerts.stage import StageReport, apply_decisions
from alerts.store.models import AccountRow, Cursor, FindingRow, Profile, QuarantineRow, Run
from detectors.base import Detector, Finding
from detectors.batch import Batch
from rules.engine import evaluate
from rules.loader import RuleSet
from vigil.ingest import Quarantined, validate
from vigil.sources import FileSource, SqlSource

log = logging.getLogger(__name__)
SCAN_LOCK_KEY = 0x5649_4749  # "VIGI": one scanner at a time across replicas (PostgreSQL)
CHUNK = 900


@dataclass
class ScanReport:
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    findings: int = 0
    skips: dict[str, int] = field(default_factory=dict)
    stage: StageReport = field(default_factory=StageReport)
    exhausted: bool = True
    run_id: int | None = None
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def scan_once(
    session: Session,
    source: SqlSource | FileSource,
    rules: RuleSet,
    *,
    now: datetime,
    batch_rows: int = 200_000,
    deliver: bool = True,
    geo: Any = None,
) -> ScanReport:
    """One batch inside the caller's transaction (the caller commits).

    ``geo`` is an IP resolver (``detectors.geoip``): logins missing country, city, coordinates or
    ASN are enriched from the IP and city centroids; what stays unknown is counted, never fatal.
    """
    t0 = time.perf_counter()
    report = ScanReport()
    if session.bind is not None and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCAN_LOCK_KEY})
    run = Run(job="scan", started_at=now, status="running", detail={})
    session.add(run)
    session.flush()
    report.run_id = run.id

    frames: dict[str, pd.DataFrame] = {}
    absent: dict[str, frozenset[str]] = {}
    cursors: dict[str, tuple[Cursor, dict[str, Any]]] = {}
    conn = session.connection()
    for table in source.tables():
        name = f"{source.kind}:{table}"
        cur = session.get(Cursor, name, with_for_update=True)
        if cur is None:
            cur = Cursor(source=name, state={}, version=0)
            session.add(cur)
        rr = source.read(table, cur.state or {}, batch_rows, now, conn=conn)
        good, bad = validate(table, rr.raw)
        frames[table] = good
        absent[table] = rr.absent
        report.rows[table] = len(rr.raw)
        report.quarantined.extend(bad)
        report.exhausted = report.exhausted and rr.exhausted
        cursors[table] = (cur, rr.state)

    if geo is not None and "logins" in frames and len(frames["logins"]):
        from detectors.geo import enrich, still_absent

        enriched = enrich(frames["logins"], geo, absent.get("logins", ()))
        frames["logins"], counts = enriched.frame, enriched.counts
        absent["logins"] = still_absent(absent.get("logins", ()), enriched)  # filled from the IP: present
        for reason, n in counts.items():
            if n and str(reason).startswith("unknown"):
                report.skips[f"geo: {reason}"] = report.skips.get(f"geo: {reason}", 0) + int(n)
    batch = Batch(frames, absent)
    ids = sorted(batch.accounts())
    accounts: dict[str, dict[str, Any]] = {}
    contact_changes: list[tuple[str, str, Any, Any]] = []
    if ids:  # the batch's accounts, read and validated once: for the mirror and for the detectors
        acct_frame, acct_bad = validate("accounts", source.accounts(ids, conn=conn))
        report.quarantined.extend(acct_bad)
        batch.frames["accounts"] = acct_frame
        accounts = _sync_accounts(session, acct_frame, ids, now, contact_changes)
    record_contact_changes(session, contact_changes, batch.get("security_events"), now)

    findings = run_detectors(session, rules, batch, accounts, now=now, report=report)
    _store_findings(session, findings, now, run.id)
    decisions = evaluate(rules, findings, accounts, now=now)
    report.stage = apply_decisions(session, decisions, now=now, deliver=deliver, rules=rules)
    if deliver:  # contacts changed lately get a copy of each new alert (alerts/contacts.py)
        copy_to_previous_contacts(session, report.stage.created, now)
    report.findings = len(findings)

    for q in report.quarantined:
        session.add(QuarantineRow(source=q.table, row_ref=q.ref, reason=q.reason, raw=q.raw,
                                  run_id=run.id, created_at=now))
    for cur, state in cursors.values():
        cur.state = state
        cur.version = (cur.version or 0) + 1
        cur.updated_at = now
    report.seconds = time.perf_counter() - t0
    run.status = "ok"
    run.finished_at = now
    run.detail = {
        "rows": report.rows, "quarantined": len(report.quarantined), "findings": report.findings,
        "alerts": len(report.stage.created), "shadow": len(report.stage.shadow),
        "throttled": report.stage.throttled, "replayed": report.stage.replayed, "skips": report.skips,
        "rule_set": rules.content_hash[:16], "seconds": round(report.seconds, 3),
    }
    return report


def run_detectors(
    session: Session,
    rules: RuleSet,
    batch: Batch,
    accounts: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    report: ScanReport,
) -> list[Finding]:
    """Run every detector with the profiles of the batch's keys only; store profile updates.

    Accounts in a segment with its own parameters (``detectors: X: overrides:``) are judged by that
    segment's instance on their own rows; cross-account detectors always see the whole batch.
    """
    findings: list[Finding] = []
    if len(batch) == 0:
        return findings
    ids = sorted(accounts)
    for name, base in rules.detectors.items():
        if not rules.for_detector(name):  # no enabled rule (live or shadow) reads it: skip the work
            continue
        tables = (base.table, *base.extra_tables)
        if all(batch.get(t) is None for t in tables):
            continue
        conf = rules.configs.get(name) if hasattr(rules, "configs") else None
        parts: list[tuple[Detector, Batch]] = [(base, batch)]
        if conf is not None and not getattr(base, "cross_account", False):
            groups = conf.partition(ids, accounts, now)
            if len(groups) > 1:
                parts = [(det, batch.filter_accounts(accts)) for det, accts in groups if accts]
        for det, part in parts:
            findings.extend(_run_one(session, name, det, part, now=now, report=report))
    return findings


def _run_one(session: Session, name: str, det: Detector, batch: Batch, *, now: datetime, report: ScanReport
             ) -> list[Finding]:
    rows: dict[str, Profile] = {}
    for chunk in _chunks(sorted(det.profile_keys(batch))):
        for p in session.scalars(select(Profile).where(Profile.detector == name, Profile.account_id.in_(chunk))):
            rows[p.account_id] = p
    result = det.scan(batch, {a: p.state for a, p in rows.items()}, now=now)
    for s in result.skips:
        key = f"{s.detector}: {s.reason}"
        report.skips[key] = report.skips.get(key, 0) + s.rows
    unloaded = sorted(set(result.profiles) - set(rows))
    for chunk in _chunks(unloaded):  # a detector returned keys it did not declare: never insert twice
        for p in session.scalars(select(Profile).where(Profile.detector == name, Profile.account_id.in_(chunk))):
            rows[p.account_id] = p
    for acct, state in result.profiles.items():
        prow = rows.get(acct)
        if prow is None:
            session.add(Profile(account_id=acct, detector=name, state=state, version=1, updated_at=now))
        else:
            prow.state = state
            prow.version += 1
            prow.updated_at = now
    return result.findings


def _store_findings(session: Session, findings: list[Finding], now: datetime, run_id: int | None) -> None:
    if not findings:
        return
    ids = [f.finding_id for f in findings]
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(session.scalars(select(FindingRow.id).where(FindingRow.id.in_(chunk))))
    seen: set[str] = set()
    for f in findings:
        fid = f.finding_id
        if fid in existing or fid in seen:
            continue
        seen.add(fid)
        session.add(FindingRow(id=fid, detector=f.detector, account_id=f.account_id, ts=f.ts, kind=f.kind,
                               score=f.score, event_ids=list(f.event_ids), evidence=dict(f.evidence),
                               run_id=run_id, created_at=now))


CONTACT_FIELDS = ("locale", "timezone", "phone", "email", "push_token", "tier", "anti_phishing_code")


def _sync_accounts(session: Session, src: pd.DataFrame, ids: list[str], now: datetime,
                   changes: list[tuple[str, str, Any, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Refresh the account mirror for the batch's accounts; return plain dicts for the rules.
    ``changes`` receives every (account, column, old, new) the refresh changed."""
    by_id = {str(r["account_id"]): r for r in src.to_dict("records")}
    mirror: dict[str, AccountRow] = {}
    for chunk in _chunks(ids):
        for a in session.scalars(select(AccountRow).where(AccountRow.account_id.in_(chunk))):
            mirror[a.account_id] = a
    out: dict[str, dict[str, Any]] = {}
    for acct_id in ids:
        row = mirror.get(acct_id)
        if row is None:
            row = AccountRow(account_id=acct_id, status="active", updated_at=now)
            session.add(row)
        s = by_id.get(acct_id)
        if s is not None:
            for f in CONTACT_FIELDS:
                v = s.get(f)
                if v is not None and not (isinstance(v, float) and pd.isna(v)) and getattr(row, f) != v:
                    if changes is not None:
                        changes.append((acct_id, f, getattr(row, f), v))
                    setattr(row, f, v)
            created = s.get("created_at")
            if created is not None and not pd.isna(created):
                row.created_at = pd.Timestamp(created).to_pydatetime()
            if s.get("status"):
                row.source_status = s["status"]
            row.updated_at = now
        out[acct_id] = {
            "account_id": acct_id, "tier": row.tier, "locale": row.locale, "timezone": row.timezone,
            "status": row.status, "created_at": _aware(row.created_at),
        }
    return out


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
