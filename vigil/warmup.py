"""Warm start: learn the detectors' profiles from past records without alerting.

A deployment starts with history, not from zero.  Without it the first withdrawal to an address the
account has used for a year, or the first login from the country it always logs in from, looks new.
``vigil profiles build --data DIR`` and ``vigil backtest --warmup DAYS`` feed past records to the
same detectors the scan runs (same ingest validation, same IP enrichment, same parameters from the
rule set), keep the profiles they return and throw the findings away: nothing is evaluated by the
rules, nothing is alerted, nothing is written but the profiles.

The detectors see the history in time-ordered chunks (:class:`vigil.chunks.TimeChunks`), so a year
of records never sits in memory at once, and the profiles are exactly those one scan over the whole
history would leave (the batch-split guarantee of ``detectors/base.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.batch import Batch
from rules.loader import RuleSet
from vigil.ingest import Quarantined, validate
from vigil.profiles import ProfileStore
from vigil.scan import ScanReport, run_detectors


@dataclass
class LearnReport:
    """What a warm start read and learned."""

    rows: Counter[str] = field(default_factory=Counter)
    quarantined: list[Quarantined] = field(default_factory=list)
    skips: Counter[str] = field(default_factory=Counter)
    accounts: set[str] = field(default_factory=set)
    profiles: Counter[str] = field(default_factory=Counter)  # detector -> profiles written
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    findings_dropped: int = 0  # findings the history produced, never alerted
    problems: dict[str, str] = field(default_factory=dict)  # table -> why its file was refused

    @property
    def events(self) -> int:
        return sum(self.rows.values())

    @property
    def days(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds() / 86400

    def summary(self) -> str:
        tables = ", ".join(f"{k} {v}" for k, v in sorted(self.rows.items()))
        span = (
            f"{self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC ({self.days:.1f} days)"
            if self.first is not None and self.last is not None
            else "no events"
        )
        lines = [
            f"history read: {self.events} rows ({tables or 'none'}), {span}",
            f"accounts learned: {len(self.accounts)}; findings on the history (not alerted): {self.findings_dropped}",
        ]
        for det, n in sorted(self.profiles.items()):
            lines.append(f"  {det}: {n} profile(s) written")
        lines.append(f"quarantined rows: {len(self.quarantined)}")
        by_reason = Counter(q.reason for q in self.quarantined)
        for reason, n in by_reason.most_common():
            lines.append(f"  {n} x {reason}")
        for reason, n in sorted(self.skips.items()):
            lines.append(f"  skipped by {reason}: {n} row(s)")
        lines.extend(f"refused: {p}" for p in self.problems.values())
        return "\n".join(lines)


class _Counting:
    """A profile store wrapper that counts the profiles each detector writes."""

    def __init__(self, inner: ProfileStore, counts: Counter[str]) -> None:
        self.inner, self.counts = inner, counts
        prefetch = getattr(inner, "prefetch", None)
        if prefetch is not None:
            self.prefetch = prefetch

    def load(self, detector: str, keys: Any) -> dict[str, Any]:
        return self.inner.load(detector, keys)

    def save(self, detector: str, states: Mapping[str, Mapping[str, Any]], now: datetime) -> int:
        n = self.inner.save(detector, states, now)
        self.counts[detector] += n
        return n

    def flush(self) -> int:
        return self.inner.flush()


def learn_batch(
    raw: Mapping[str, pd.DataFrame],
    absent: Mapping[str, frozenset[str]],
    rules: RuleSet,
    profiles: ProfileStore,
    *,
    now: datetime,
    accounts: Callable[[list[str]], pd.DataFrame],
    geo: Any = None,
    report: LearnReport,
) -> None:
    """Validate one chunk of raw rows and run the rule set's detectors over it for their profiles only."""
    frames: dict[str, pd.DataFrame] = {}
    for table, df in raw.items():
        good, bad = validate(table, df)
        frames[table] = good
        report.rows[table] += len(df)
        report.quarantined.extend(bad)
    learn_frames(frames, absent, rules, profiles, now=now, accounts=accounts, geo=geo, report=report)


def learn_frames(
    frames: dict[str, pd.DataFrame],
    absent: Mapping[str, frozenset[str]],
    rules: RuleSet,
    profiles: ProfileStore,
    *,
    now: datetime,
    accounts: Callable[[list[str]], pd.DataFrame],
    geo: Any = None,
    report: LearnReport,
) -> None:
    """Run the rule set's detectors over one chunk of validated rows for their profiles only (the
    Dask engine's partitions call this directly: their rows are validated already)."""
    absent = dict(absent)
    for good in frames.values():
        if len(good) and "ts" in good.columns:
            lo, hi = good["ts"].min(), good["ts"].max()
            report.first = lo if report.first is None or lo < report.first else report.first
            report.last = hi if report.last is None or hi > report.last else report.last
    from detectors.geo import enrich_batch

    enrich_batch(frames, absent, geo)
    batch = Batch(frames, absent)
    ids = sorted(batch.accounts())
    directory: dict[str, dict[str, Any]] = {a: {"account_id": a} for a in ids}
    if ids:  # account attributes (created_at, tier) matter to detectors and to per-segment parameters
        acct, bad = validate("accounts", accounts(ids))
        report.quarantined.extend(bad)
        batch.frames["accounts"] = acct
        for row in acct.to_dict("records"):
            directory[str(row["account_id"])] = {str(k): (None if _missing(v) else v) for k, v in row.items()}
    report.accounts.update(ids)
    scan = ScanReport()
    findings = run_detectors(_Counting(profiles, report.profiles), rules, batch, directory, now=now, report=scan)
    report.findings_dropped += len(findings)
    report.skips.update(scan.skips)


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def learn_directory(
    data: str | Path,
    rules: RuleSet,
    profiles: ProfileStore,
    *,
    now: datetime,
    geo: Any = None,
    tables: Mapping[str, Any] | None = None,
    chunk_events: int = 250_000,
    commit: Callable[[], None] | None = None,
) -> LearnReport:
    """Learn profiles from every record of a data directory (the ``vigil backtest`` / ``vigil import``
    layout); ``commit`` runs after each chunk (the database store writes chunk by chunk)."""
    from vigil.chunks import TimeChunks

    chunks = TimeChunks(data, chunk_events, tables)
    report = LearnReport()
    for chunk in chunks:
        absent = {t: chunks.absent(t, df) for t, df in chunk.raw.items()}
        learn_batch(chunk.raw, absent, rules, profiles, now=now, accounts=chunks.accounts, geo=geo, report=report)
        if commit is not None:
            commit()
    report.problems = dict(chunks.source.problems)
    return report


def split_at_warmup(chunks: Any, days: float) -> int | None:
    """Cut :class:`vigil.chunks.TimeChunks` at ``days`` after the data's first event (ns, on a whole
    minute) so that every chunk lies wholly inside or wholly after the warm-up; None when no warm-up."""
    if days <= 0:
        return None
    from vigil.chunks import BUCKET_NS

    firsts = [int(b[0].min()) for t in chunks.tables.values() for b in t.buckets if b.shape[1]]
    if not firsts:
        return None
    cutoff = int(min(firsts) * BUCKET_NS + round(days * 86400 / 60) * BUCKET_NS)
    chunks.bounds = sorted({*chunks.bounds, cutoff})
    return cutoff
