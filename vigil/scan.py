"""The scan cycle: ingest -> detectors -> rules -> alerts, tickets, outbox, cursor advance.

Everything one batch changes is written in ONE database transaction, so a crash replays the batch
and deterministic ids make the replay produce the same alerts instead of doubling them.  Events
the detectors were fed before (a rewound cursor, a file imported twice) are dropped before they
reach the detectors (``vigil/ledger.py``).

:func:`scan_once` reads a batch from a source's cursors; :func:`process_batch` is what happens to
it -- the daemon and ``vigil backtest`` both go through it, the daemon with profiles in the
database, a backtest with profiles in memory.  Writes are set-based: one statement per table
(``alerts/store/bulk.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerts.contacts import copy_to_previous_contacts
from alerts.contacts import record_changes as record_contact_changes
from alerts.stage import StageReport, apply_decisions
from alerts.store.bulk import chunk_size, chunks, insert_rows, update_rows
from alerts.store.models import AccountRow, Cursor, FindingRow, QuarantineRow, Run
from detectors.base import Detector, Finding
from detectors.batch import Batch
from rules.engine import evaluate
from rules.loader import RuleSet
from vigil.ingest import Quarantined, validate
from vigil.profiles import ProfileStore, SqlProfiles

if TYPE_CHECKING:
    from vigil.shards import Shard
    from vigil.sources import FileSource, SqlSource

log = logging.getLogger(__name__)
SCAN_LOCK_KEY = 0x5649_4749  # "VIGI": one scanner at a time across replicas (PostgreSQL)


@dataclass
class ScanReport:
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    findings: int = 0
    replayed_events: int = 0  # events fed to the detectors before (a rewound cursor, a second import)
    skips: dict[str, int] = field(default_factory=dict)
    stage: StageReport = field(default_factory=StageReport)
    exhausted: bool = True
    run_id: int | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, detectors by name

    def timed(self, phase: str, since: float) -> float:
        """Add the time since ``since`` to ``phase``; return now (the next phase's start)."""
        t = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + (t - since)
        return t

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class BatchOptions:
    """How :func:`process_batch` treats a batch: the daemon's defaults; a backtest turns the
    delivery, the seen-events record and the findings table off (it keeps only its alerts)."""

    deliver: bool = True
    ledger: bool = True
    store_findings: bool = True
    tickets: bool = True  # False: only actions later rules can see (freeze); see alerts.stage
    contacts: bool = True  # record contact changes (they matter only to what is delivered)
    detectors: str = "all"  # "account": per-account detectors only; "cross": cross-account only (vigil/shards.py)
    write_accounts: bool = True  # False: read the account mirror, never write it (the cross-account shard)


def scan_once(
    session: Session,
    source: SqlSource | FileSource,
    rules: RuleSet,
    *,
    now: datetime,
    batch_rows: int = 200_000,
    deliver: bool = True,
    geo: Any = None,
    shard: Shard | None = None,
) -> ScanReport:
    """One batch inside the caller's transaction (the caller commits).

    ``shard`` (``vigil/shards.py``): only that shard's accounts' rows, from the shard's own cursors;
    the cross-account shard runs only the cross-account detectors, over every account's rows.

    ``geo`` is an IP resolver (``detectors.geoip``): logins missing country, city, coordinates or
    ASN are enriched from the IP and city centroids; what stays unknown is counted, never fatal.
    """
    t0 = time.perf_counter()
    report = ScanReport()
    if session.bind is not None and session.get_bind().dialect.name == "postgresql":
        if shard is None:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCAN_LOCK_KEY})
        else:
            from vigil.shards import lock_shard

            lock_shard(session, shard)
    run = Run(job="scan", started_at=now, status="running", detail={})
    session.add(run)
    session.flush()
    report.run_id = run.id

    frames: dict[str, pd.DataFrame] = {}
    absent: dict[str, frozenset[str]] = {}
    cursors: dict[str, tuple[Cursor, dict[str, Any]]] = {}
    conn = session.connection()
    tables = source.tables()
    if shard is not None and shard.cross:  # only what the cross-account detectors read
        wanted = {t for d in rules.detectors.values() if getattr(d, "cross_account", False)
                  for t in (d.table, *d.extra_tables)}
        tables = [t for t in tables if t in wanted]
    for table in tables:
        name = f"{source.kind}:{table}" + (shard.suffix if shard is not None else "")
        cur = session.get(Cursor, name, with_for_update=True)
        if cur is None:
            state: dict[str, Any] = {}
            if shard is not None:
                from vigil.shards import seed_state

                state = seed_state(session, f"{source.kind}:{table}", shard.count)
            cur = Cursor(source=name, state=state, version=0)
            session.add(cur)
        own = (shard.index, shard.count) if shard is not None and not shard.cross else None
        rr = source.read(table, cur.state or {}, batch_rows, now, conn=conn, shard=own)
        raw = rr.raw
        if own is not None and not rr.sharded and "account_id" in raw.columns:
            from vigil.shards import shard_mask

            raw = raw[shard_mask(raw["account_id"], own[1], own[0])].reset_index(drop=True)
        t = time.perf_counter()
        good, bad = validate(table, raw)
        report.timed("validate", t)
        frames[table] = good
        absent[table] = rr.absent
        report.rows[table] = len(raw)
        if shard is None or not shard.cross:  # the account shards quarantine a bad row, once
            report.quarantined.extend(bad)
        report.exhausted = report.exhausted and rr.exhausted
        cursors[table] = (cur, rr.state)

    process_batch(session, frames, absent, rules, now=now, report=report, geo=geo, run_id=run.id,
                  accounts=lambda ids: source.accounts(ids, conn=conn), profiles=SqlProfiles(session),
                  options=_shard_options(shard, deliver))
    store_quarantine(session, report.quarantined, run.id, now)
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
        "throttled": report.stage.throttled, "replayed": report.stage.replayed,
        "replayed_events": report.replayed_events, "skips": report.skips,
        "rule_set": rules.content_hash[:16], "seconds": round(report.seconds, 3),
    }
    if shard is not None:
        run.detail["shard"] = shard.label()
    return report


def _shard_options(shard: Shard | None, deliver: bool) -> BatchOptions:
    if shard is None:
        return BatchOptions(deliver=deliver)
    if shard.cross:  # the account shards record the events seen, the contacts and the mirror
        return BatchOptions(deliver=deliver, detectors="cross", ledger=False, contacts=False, write_accounts=False)
    return BatchOptions(deliver=deliver, detectors="account")


def process_batch(
    session: Session,
    frames: dict[str, pd.DataFrame],
    absent: Mapping[str, frozenset[str]],
    rules: RuleSet,
    *,
    now: datetime,
    report: ScanReport,
    accounts: Callable[[list[str]], pd.DataFrame],
    profiles: ProfileStore,
    geo: Any = None,
    run_id: int | None = None,
    options: BatchOptions = BatchOptions(),
) -> None:
    """Validated frames -> enrichment, account mirror, detectors, findings, rules, alert stage.

    ``accounts(ids)`` returns the source's rows of those accounts (raw, validated here).
    """
    t = time.perf_counter()
    if options.ledger and run_id is not None:
        from vigil.ledger import drop_seen

        frames, dropped = drop_seen(session, frames, run_id)
        report.replayed_events += sum(dropped.values())
        t = report.timed("ledger", t)
    absent = dict(absent)
    from detectors.geo import enrich_batch

    enriched = enrich_batch(frames, absent, geo)  # columns filled from the IP leave the absent set
    if enriched is not None:
        for reason, n in enriched.counts.items():
            if n and str(reason).startswith("unknown"):
                report.skips[f"geo: {reason}"] = report.skips.get(f"geo: {reason}", 0) + int(n)
        t = report.timed("enrich", t)
    batch = Batch(frames, absent)
    ids = sorted(batch.accounts())
    mirror: dict[str, dict[str, Any]] = {}
    contact_changes: list[tuple[str, str, Any, Any]] = []
    if ids:  # the batch's accounts, read and validated once: for the mirror and for the detectors
        acct_frame, acct_bad = validate("accounts", accounts(ids))
        report.quarantined.extend(acct_bad)
        batch.frames["accounts"] = acct_frame
        mirror = sync_accounts(session, acct_frame, ids, now, contact_changes, write=options.write_accounts)
    if options.contacts:
        record_contact_changes(session, contact_changes, batch.get("security_events"), now)
    t = report.timed("accounts", t)
    findings = run_detectors(profiles, rules, batch, mirror, now=now, report=report, which=options.detectors)
    t = time.perf_counter()
    if options.store_findings:
        store_findings(session, findings, now, run_id)
        t = report.timed("findings", t)
    decisions = evaluate(rules, findings, mirror, now=now)
    t = report.timed("rules", t)
    report.stage = apply_decisions(session, decisions, now=now, deliver=options.deliver, rules=rules,
                                   tickets=options.tickets)
    if options.deliver:  # contacts changed lately get a copy of each new alert (alerts/contacts.py)
        copy_to_previous_contacts(session, report.stage.created, now)
    report.timed("stage", t)
    report.findings += len(findings)


def run_detectors(
    profiles: ProfileStore,
    rules: RuleSet,
    batch: Batch,
    accounts: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    report: ScanReport,
    which: str = "all",
) -> list[Finding]:
    """Run every detector with the profiles of the batch's keys only; store profile updates.

    Accounts in a segment with its own parameters (``detectors: X: overrides:``) are judged by that
    segment's instance on their own rows; cross-account detectors always see the whole batch.
    """
    findings: list[Finding] = []
    if len(batch) == 0:
        return findings
    ids = sorted(accounts)
    work: list[tuple[str, list[tuple[Detector, Batch]]]] = []
    for name, base in rules.detectors.items():
        if not rules.for_detector(name):  # no enabled rule (live or shadow) reads it: skip the work
            continue
        if which != "all" and getattr(base, "cross_account", False) != (which == "cross"):
            continue  # a sharded scanner: this shard runs the other kind (vigil/shards.py)
        tables = (base.table, *base.extra_tables)
        if all(batch.get(t) is None for t in tables):
            continue
        conf = rules.configs.get(name) if hasattr(rules, "configs") else None
        parts: list[tuple[Detector, Batch]] = [(base, batch)]
        if conf is not None and getattr(conf, "overrides", True) and not getattr(base, "cross_account", False):
            groups = conf.partition(ids, accounts, now)
            if len(groups) > 1:
                parts = [(det, batch.filter_accounts(accts)) for det, accts in groups if accts]
        work.append((name, parts))
    t = time.perf_counter()
    prefetch = getattr(profiles, "prefetch", None)
    if prefetch is not None:  # the account-keyed detectors' profiles in one query per chunk
        keyed = [name for name, parts in work if all(type(d).profile_keys is Detector.profile_keys for d, _ in parts)]
        prefetch(keyed, batch.accounts())
    report.timed("profiles", t)
    for name, parts in work:
        for det, part in parts:
            findings.extend(_run_one(profiles, name, det, part, now=now, report=report))
    t = time.perf_counter()
    profiles.flush()
    report.timed("profiles", t)
    return findings


def _run_one(profiles: ProfileStore, name: str, det: Detector, batch: Batch, *, now: datetime, report: ScanReport
             ) -> list[Finding]:
    t = time.perf_counter()
    loaded = profiles.load(name, det.profile_keys(batch))
    t = report.timed("profiles", t)
    result = det.scan(batch, loaded, now=now)
    t = report.timed(f"detector:{name}", t)
    for s in result.skips:
        key = f"{s.detector}: {s.reason}"
        report.skips[key] = report.skips.get(key, 0) + s.rows
    profiles.save(name, result.profiles, now)
    report.timed("profiles", t)
    return result.findings


FINDINGS = FindingRow.__table__


def store_findings(session: Session, findings: list[Finding], now: datetime, run_id: int | None) -> int:
    """Insert the findings not stored before (deterministic ids: a replay stores nothing twice)."""
    if not findings:
        return 0
    ids = sorted({f.finding_id for f in findings})
    existing: set[str] = set()
    for part in chunks(ids, chunk_size(session)):
        existing.update(session.scalars(select(FindingRow.id).where(FindingRow.id.in_(part))))
    rows: dict[str, dict[str, Any]] = {}
    for f in findings:
        fid = f.finding_id
        if fid in existing or fid in rows:
            continue
        rows[fid] = {"id": fid, "detector": f.detector, "account_id": f.account_id, "ts": f.ts, "kind": f.kind,
                     "score": f.score, "event_ids": list(f.event_ids), "evidence": dict(f.evidence),
                     "run_id": run_id, "created_at": now}
    return insert_rows(session, FINDINGS, list(rows.values()))  # type: ignore[arg-type]


def store_quarantine(session: Session, quarantined: list[Quarantined], run_id: int | None, now: datetime) -> int:
    return insert_rows(session, QuarantineRow.__table__, [  # type: ignore[arg-type]
        {"source": q.table, "row_ref": q.ref, "reason": q.reason, "raw": q.raw, "run_id": run_id, "created_at": now}
        for q in quarantined])


CONTACT_FIELDS = ("locale", "timezone", "phone", "email", "push_token", "tier", "anti_phishing_code")
MIRROR_COLUMNS = ("account_id", *CONTACT_FIELDS, "created_at", "source_status", "status", "updated_at")


def sync_accounts(session: Session, src: pd.DataFrame, ids: list[str], now: datetime,
                  changes: list[tuple[str, str, Any, Any]] | None = None, *, write: bool = True
                  ) -> dict[str, dict[str, Any]]:
    """Refresh the account mirror for the batch's accounts (set-based: what changed is written);
    return plain dicts for the rules.  ``changes`` receives every (account, column, old, new) the
    refresh changed (contact history, :mod:`alerts.contacts`)."""
    names = [c for c in ("account_id", *CONTACT_FIELDS, "created_at", "status") if c in src.columns]
    columns = [_nulls_as_none(src[c]) for c in names]
    by_id = {str(vals[0]): dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)}
    table = AccountRow.__table__
    cols = [table.c[c] for c in MIRROR_COLUMNS]
    mirror: dict[str, dict[str, Any]] = {}
    for part in chunks(ids, chunk_size(session)):
        for r in session.execute(select(*cols).where(table.c.account_id.in_(part))).mappings():
            mirror[r["account_id"]] = dict(r)
    fresh: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    out: dict[str, dict[str, Any]] = {}
    for acct_id in ids:
        row = mirror.get(acct_id)
        new = row is None
        if row is None:
            row = {c: None for c in MIRROR_COLUMNS} | {"account_id": acct_id, "status": "active", "updated_at": now}
        before = dict(row)
        s = by_id.get(acct_id)
        if s is not None:
            for f in CONTACT_FIELDS:
                v = s.get(f)
                if v is not None and not (isinstance(v, float) and pd.isna(v)):
                    if changes is not None and row.get(f) != v:
                        changes.append((acct_id, f, row.get(f), v))
                    row[f] = v
            created = s.get("created_at")
            if created is not None:  # nulls are None already (_nulls_as_none)
                row["created_at"] = created if type(created) is datetime else pd.Timestamp(created).to_pydatetime()
            if s.get("status"):
                row["source_status"] = s["status"]
        if new:
            fresh.append(row)
        elif row != before:
            row["updated_at"] = now
            changed.append(row)
        out[acct_id] = {
            "account_id": acct_id, "tier": row["tier"], "locale": row["locale"], "timezone": row["timezone"],
            "status": row["status"], "created_at": _aware(row["created_at"]),
        }
    if not write:
        return out
    insert_rows(session, table, fresh)  # type: ignore[arg-type]
    # the mirror's own columns (status, freeze) are never overwritten from the source
    update_rows(session, table, "account_id", [  # type: ignore[arg-type]
        {k: r[k] for k in ("account_id", *CONTACT_FIELDS, "created_at", "source_status", "updated_at")}
        for r in changed])
    return out


def _nulls_as_none(col: pd.Series) -> list[Any]:
    """The column's values, None where null: one vectorised null test, not ``pd.isna`` per value;
    timestamps as ``datetime`` (converted in one call, not a ``Timestamp`` per value)."""
    null = col.isna().to_numpy(dtype=bool).tolist()
    values = col.array.to_pydatetime().tolist() if isinstance(col.dtype, pd.DatetimeTZDtype) else col.tolist()
    return [None if n else v for v, n in zip(values, null, strict=True)]


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
