"""The worker side of the Dask backtest (:mod:`vigil.backtest_dask`): what runs inside one task.

Every function here is a plain function of frames and small values, so Dask can ship it to a
worker process on this machine or another.  The stages, in the order the graph runs them:

``read_part``          one Parquet row-group range as raw rows, with the keys the shuffles need
                       (:mod:`vigil.backtest_keys`, with the event-id twins)
``validate_partition`` one account partition: its raw rows cut at the *global* chunk bounds and
                       validated chunk by chunk, exactly as the local engine validates a chunk
``cross_rows``         the validated rows the cross-account detectors need, keyed for the second
                       shuffle (credential stuffing: by IP)
``run_cross``          one key partition: the cross-account detectors chunk by chunk, profiles
                       carried in time order; findings keyed by account for the way back
``process_partition``  one account partition: ``vigil.scan.process_batch`` chunk by chunk (the same
                       detectors, rules and alert stage as the local engine), the cross-account
                       findings handed in by a stand-in detector, alerts in a scratch SQLite file

Cutting each partition at the same bounds as the local engine keeps every account's batches
identical to the local run, so the output does not depend on the detectors' batch-split guarantee:
a freeze that a later rule reads through ``account.status`` takes effect at the same chunk.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Finding
from detectors.batch import Batch
from detectors.contract import EVENT_TABLES, TABLES
from rules.loader import RuleSet
from vigil.backtest_keys import ACCT, CHUNK, GHOST, HELPERS, KEY, SEQ, TSN, chunk_of, key_hash, with_ghosts
from vigil.backtest_rules import RuleSpec, rules_from
from vigil.ingest import Quarantined

# how a cross-account detector's rows are keyed for the second shuffle (its profiles' key)
CROSS_KEYS: dict[str, str] = {"credential_stuffing": "ip"}


@dataclass
class Validated:
    """One account partition, validated chunk by chunk."""

    frames: list[dict[str, pd.DataFrame]]  # per chunk: table -> validated rows
    quarantined: list[tuple[tuple[int, int, int], Quarantined]] = field(default_factory=list)  # (chunk, table, row)
    rows: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def _raw(piece: pd.DataFrame, attrs: Mapping[str, Any]) -> pd.DataFrame:
    out = piece.drop(columns=[c for c in HELPERS if c in piece.columns]).reset_index(drop=True)
    out.attrs = dict(attrs)  # type: ignore[assignment]
    return out


def validate_partition(pieces: Mapping[str, pd.DataFrame], bounds: np.ndarray,
                       attrs: Mapping[str, Mapping[str, Any]],
                       firsts: Mapping[str, Mapping[tuple[int, str], int]] | None = None) -> Validated:
    """Cut each table's rows at the global chunk bounds, in file order, and validate chunk by chunk.

    ``firsts`` (table -> (chunk, event id) -> first row) names the event ids several rows share in a
    chunk, across partitions; ingest's "duplicate event_id within the batch" then falls on the same
    rows as in the local engine."""
    from vigil.ingest import validate

    t0 = time.perf_counter()
    n = len(bounds) + 1
    out = Validated([{} for _ in range(n)])
    order = {t: i for i, t in enumerate(EVENT_TABLES)}
    for table, piece in pieces.items():
        piece = piece.sort_values(SEQ, kind="stable")
        c = chunk_of(piece[TSN].to_numpy(dtype=np.int64), bounds)
        starts = np.searchsorted(c, np.arange(n + 1)) if bool((np.diff(c) >= 0).all()) else None
        for i in range(n):
            rows = piece.iloc[starts[i]:starts[i + 1]] if starts is not None else piece[c == i]
            raw = _raw(rows, attrs.get(table, {}))
            dup = (firsts or {}).get(table)
            if dup:
                good, bad = validate(table, with_ghosts(raw, rows[SEQ].to_numpy(), i, dup))
                if "_ref" in good.columns:
                    good = good[~good["_ref"].astype(str).str.startswith(GHOST)].reset_index(drop=True)
                bad = [q for q in bad if not q.ref.startswith(GHOST)]
            else:
                good, bad = validate(table, raw)
            out.frames[i][table] = good
            out.rows[table] += len(raw)
            if bad:
                kept = set(good["_ref"].astype(str)) if "_ref" in good.columns else set()
                seqs = [s for s, r in zip(rows[SEQ].tolist(), raw["_ref"].astype(str).tolist(), strict=True)
                        if r not in kept] if "_ref" in raw.columns else list(range(len(bad)))
                out.quarantined.extend(((i, order[table], s), q) for s, q in zip(seqs, bad, strict=False))
    out.seconds = time.perf_counter() - t0
    return out


def cross_rows(v: Validated, table: str, key: str | None) -> pd.DataFrame:
    """The partition's validated rows of ``table`` with their chunk and the key hash (second shuffle)."""
    parts = []
    for i, frames in enumerate(v.frames):
        df = frames.get(table)
        if df is None or df.empty:
            continue
        df = df.copy()
        df[CHUNK] = np.int64(i)
        parts.append(df)
    if not parts:
        return pd.DataFrame({CHUNK: pd.Series([], dtype=np.int64), KEY: pd.Series([], dtype=np.uint64)})
    df = pd.concat(parts, ignore_index=True)
    if key is not None and key in df.columns:
        df[KEY] = key_hash(df[key].astype(object).where(df[key].notna(), "").map(lambda x: str(x).strip()))
    else:
        df[KEY] = np.zeros(len(df), dtype=np.uint64)
    return df


@dataclass
class CrossResult:
    findings: pd.DataFrame  # columns _ah, _c, finding (Finding objects)
    skips: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def run_cross(piece: pd.DataFrame, n_chunks: int, spec: RuleSpec, names: tuple[str, ...],
              absent: Mapping[str, frozenset[str]], geo: Any, now: Any, n_warm: int = 0) -> CrossResult:
    """The cross-account detectors over one key partition, chunk by chunk, profiles in memory; the
    first ``n_warm`` chunks (warm-up) only teach the profiles."""
    from vigil.profiles import MemoryProfiles

    t0 = time.perf_counter()
    rules = rules_from(spec)
    geo = resolver(geo)
    profiles = MemoryProfiles()
    rows: list[tuple[np.uint64, int, Finding]] = []
    skips: Counter[str] = Counter()
    if len(piece):
        piece = piece.sort_values([CHUNK, "ts", "event_id"], kind="stable")
    c = piece[CHUNK].to_numpy(dtype=np.int64) if len(piece) else np.zeros(0, dtype=np.int64)
    starts = np.searchsorted(c, np.arange(n_chunks + 1))
    for i in range(n_chunks):
        frame = piece.iloc[starts[i]:starts[i + 1]]
        if frame.empty:
            continue
        frame = frame.drop(columns=[h for h in HELPERS if h in frame.columns]).reset_index(drop=True)
        table_absent = dict(absent)
        enriched_logins: dict[str, pd.DataFrame] = {}  # the chunk's logins enriched once, for every detector
        for name in names:
            det = rules.detectors[name]
            frames = {det.table: frame}
            if det.table == "logins":
                if not enriched_logins:
                    from detectors.geo import enrich_batch

                    enriched_logins = {"logins": frame}
                    enrich_batch(enriched_logins, table_absent, geo)
                frames = enriched_logins
            batch = Batch(frames, table_absent)
            result = det.scan(batch, profiles.load(name, det.profile_keys(batch)), now=now)
            profiles.save(name, result.profiles, now)
            for s in result.skips:
                skips[f"{s.detector}: {s.reason}"] += s.rows
            if i >= n_warm:
                rows.extend((key_hash(pd.Series([f.account_id]))[0], i, f) for f in result.findings)
    findings = pd.DataFrame({ACCT: pd.Series([r[0] for r in rows], dtype=np.uint64),
                             CHUNK: pd.Series([r[1] for r in rows], dtype=np.int64),
                             "finding": pd.Series([r[2] for r in rows], dtype=object)})
    return CrossResult(findings, skips, time.perf_counter() - t0)


def cross_findings(r: CrossResult) -> pd.DataFrame:
    return r.findings


class Handed(Detector):
    """Stands in for a cross-account detector in an account partition: returns the findings the key
    partitions computed for this chunk's accounts (the real detector saw every account's rows)."""

    name = "handed"
    family = ""
    table = "logins"
    cross_account: ClassVar[bool] = True

    def __init__(self, real: Detector, findings: list[Finding]) -> None:
        self.p = dict(real.p)
        self.real, self.found = real, findings
        self.name = real.name  # type: ignore[misc]
        self.family = real.family  # type: ignore[misc]
        self.table = real.table  # type: ignore[misc]
        self.extra_tables = real.extra_tables  # type: ignore[misc]

    def profile_keys(self, batch: Batch) -> set[str]:
        return set()

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: Any) -> DetectorResult:
        return DetectorResult(findings=list(self.found))


@dataclass
class PartResult:
    alerts: list[dict[str, Any]]
    sort_keys: list[tuple[Any, str]]
    quarantined: list[tuple[tuple[int, int, int], Quarantined]]
    rows: Counter[str]
    findings: int
    throttled: int
    skips: Counter[str]
    timings: dict[str, float]


def process_partition(v: Validated, cross: pd.DataFrame | None, accounts: pd.DataFrame | None,
                      accounts_attrs: Mapping[str, Any], has_accounts: bool, spec: RuleSpec,
                      cross_names: tuple[str, ...], absent: Mapping[str, frozenset[str]], geo: Any, now: Any,
                      n_warm: int = 0) -> PartResult:
    """``process_batch`` over the partition's chunks in time order, as ``vigil.backtest._run`` does;
    the first ``n_warm`` chunks (warm-up) only teach the profiles, alerting nobody."""
    from sqlalchemy import select

    from alerts.store.db import scratch_engine, session_factory
    from alerts.store.models import AlertRow
    from tickets.core import session_info
    from vigil.backtest import alert_record
    from vigil.profiles import MemoryProfiles
    from vigil.scan import BatchOptions, ScanReport, process_batch

    rules = rules_from(spec)
    geo = resolver(geo)
    by_chunk: dict[int, list[Finding]] = {}
    if cross is not None and len(cross):
        for c, f in zip(cross[CHUNK].tolist(), cross["finding"].tolist(), strict=True):
            by_chunk.setdefault(int(c), []).append(f)
    acct_frame = _accounts_frame(accounts, accounts_attrs)
    acct_quarantine: list[tuple[tuple[int, int, int], Quarantined]] = []
    refs_seq: dict[str, int] = {}
    if acct_frame is not None and "_ref" in acct_frame.columns and accounts is not None:
        refs_seq = dict(zip(acct_frame["_ref"].astype(str), accounts.sort_values(SEQ)[SEQ].tolist(), strict=True))

    def lookup(ids: Any) -> pd.DataFrame:
        if not has_accounts or acct_frame is None or acct_frame.empty or "account_id" not in acct_frame.columns:
            if has_accounts and acct_frame is not None and "account_id" in acct_frame.columns:
                return acct_frame.iloc[0:0]
            return pd.DataFrame(columns=list(TABLES["accounts"].names))
        wanted = set(ids)
        out = acct_frame[acct_frame["account_id"].astype(str).isin(wanted)].drop_duplicates("account_id", keep="last")
        out.attrs = dict(acct_frame.attrs)
        return out

    options = BatchOptions(deliver=False, ledger=False, store_findings=False, tickets=False, contacts=False)
    profiles = MemoryProfiles()
    res = PartResult([], [], list(v.quarantined), Counter(v.rows), 0, 0, Counter(), {"validate": v.seconds})
    with tempfile.TemporaryDirectory(prefix="vigil-dask-") as tmp:
        engine = scratch_engine(f"sqlite:///{Path(tmp) / 'part.db'}")
        try:
            sessions = session_factory(engine)
            sessions.configure(info=session_info())
            for i, frames in enumerate(v.frames):
                if i < n_warm:
                    from vigil.warmup import LearnReport, learn_frames

                    learned = LearnReport()
                    t_learn = time.perf_counter()
                    learn_frames(dict(frames), {t: absent.get(t, frozenset()) for t in frames},
                                 _with_handed(rules, cross_names, []), profiles, now=now, accounts=lookup, geo=geo,
                                 report=learned)
                    for q in learned.quarantined:  # the accounts' rows, validated with the chunk
                        acct_quarantine.append(((i, len(EVENT_TABLES), refs_seq.get(q.ref, 0)), q))
                    res.skips.update(learned.skips)
                    res.timings["warmup"] = res.timings.get("warmup", 0.0) + time.perf_counter() - t_learn
                    continue
                report = ScanReport()
                chunk_rules = _with_handed(rules, cross_names, by_chunk.get(i, []))
                before = len(report.quarantined)
                with sessions.begin() as s:
                    process_batch(s, dict(frames), {t: absent.get(t, frozenset()) for t in frames}, chunk_rules,
                                  now=now, report=report, geo=geo, accounts=lookup, profiles=profiles,
                                  options=options)
                for q in report.quarantined[before:]:  # the accounts' rows, validated with the chunk
                    acct_quarantine.append(((i, len(EVENT_TABLES), refs_seq.get(q.ref, 0)), q))
                res.findings += report.findings
                res.throttled += report.stage.throttled
                res.skips.update(report.skips)
                for phase, secs in report.timings.items():
                    res.timings[phase] = res.timings.get(phase, 0.0) + secs
            with sessions() as s:
                for a in s.scalars(select(AlertRow).where(AlertRow.status != "suppressed")):
                    res.alerts.append(alert_record(a))
                    res.sort_keys.append((a.ts.replace(tzinfo=None), a.id))
        finally:
            engine.dispose()
    res.quarantined.extend(acct_quarantine)
    return res


def _accounts_frame(accounts: pd.DataFrame | None, attrs: Mapping[str, Any]) -> pd.DataFrame | None:
    if accounts is None:
        return None
    out = _raw(accounts.sort_values(SEQ, kind="stable"), attrs)
    return out


def _with_handed(rules: RuleSet, names: tuple[str, ...], found: list[Finding]) -> RuleSet:
    """The rule set with each cross-account detector replaced by its precomputed findings."""
    if not names:
        return rules
    dets = dict(rules.detectors)
    for name in names:
        dets[name] = Handed(rules.detectors[name], [f for f in found if f.detector == name])
    return dataclasses.replace(rules, detectors=dets)


_GEO: dict[str, Any] = {}


def resolver(geo: Any) -> Any:
    """``"default"``: the daemon's IP resolver, opened once per worker process on first use."""
    if geo != "default":
        return geo
    if "default" not in _GEO:
        from vigil.backtest import LazyResolver
        from vigil.bootstrap import geo_resolver

        _GEO["default"] = LazyResolver(geo_resolver)
    return _GEO["default"]
