"""Backtests: run the rules over a data directory from a clean state, delivering nothing.

The backtest drives the very scan cycle the daemon runs (same ingest, detectors, rules, throttles,
alert stage) against a throw-away SQLite database, so "the backtest fired but production did not"
cannot come from two code paths disagreeing.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from alerts.store.db import make_engine, session_factory, upgrade
from alerts.store.models import AlertRow
from rules.loader import RuleSet
from tickets.core import session_info
from vigil.bootstrap import load_rule_set
from vigil.ingest import Quarantined
from vigil.isolate import scan_guarded
from vigil.sources import FileSource

FIELDS = ("alert_id", "rule_id", "detector", "account_id", "severity", "ts", "event_ids", "mode", "kind", "status")


@dataclass
class BacktestResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rows: Counter[str] = field(default_factory=Counter)
    quarantined: list[Quarantined] = field(default_factory=list)
    findings: int = 0
    skips: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    rule_set: str = ""
    problems: dict[str, str] = field(default_factory=dict)  # table -> why its file was refused
    notes: list[str] = field(default_factory=list)

    @property
    def all_quarantined(self) -> list[str]:
        """Tables that had rows, every one of them quarantined (the export does not fit the contract)."""
        bad = Counter(q.table for q in self.quarantined)
        return sorted(t for t, n in self.rows.items() if n and bad[t] >= n)

    def summary(self) -> str:
        tables = ", ".join(f"{k} {v}" for k, v in sorted(self.rows.items()))
        lines = [f"rows read: {sum(self.rows.values())} ({tables})",
                 f"findings: {self.findings}   alerts: {len(self.alerts)}   throttled into others: {self.throttled}"]
        per_rule = Counter(a["rule_id"] for a in self.alerts)
        for rule, n in sorted(per_rule.items()):
            accounts = len({a["account_id"] for a in self.alerts if a["rule_id"] == rule})
            lines.append(f"  {rule}: {n} alert(s), {accounts} account(s)")
        lines.append(f"quarantined rows: {len(self.quarantined)}")
        for reason, n in Counter(q.reason for q in self.quarantined).most_common():
            refs = [q.ref for q in self.quarantined if q.reason == reason][:3]
            lines.append(f"  {n} x {reason}  [{', '.join(refs)}{', ...' if n > 3 else ''}]")
        for reason, n in sorted(self.skips.items()):
            lines.append(f"  skipped by {reason}: {n} row(s)")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"refused: {p}" for p in self.problems.values())
        lines.extend(f"every row of {t} was quarantined" for t in self.all_quarantined)
        return "\n".join(lines)


def run_backtest(
    data: str | Path | Mapping[str, pd.DataFrame],
    rules_path: str | None = None,
    *,
    rules: RuleSet | None = None,
    batch_rows: int = 500_000,
    now: datetime | None = None,
    geo: Any = "default",
    tables: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """Scan ``data`` (a directory, or canonical frames) with the rule set; return the would-be alerts."""
    rules = rules or load_rule_set(rules_path)
    now = now or datetime.now(UTC)
    if geo == "default":  # the same enrichment the daemon applies with default settings
        from vigil.bootstrap import geo_resolver

        geo = geo_resolver()
    result = BacktestResult(rule_set=rules.content_hash[:16])
    with tempfile.TemporaryDirectory(prefix="vigil-backtest-") as tmp:
        if isinstance(data, Mapping):
            for name, df in data.items():
                df.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
            data_dir = Path(tmp)
        else:
            data_dir = Path(data)
        url = f"sqlite:///{Path(tmp) / 'backtest.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        sessions.configure(info=session_info())  # the shipped ticket policy, and the desk rule actions use
        source = FileSource(data_dir, tables)  # ``tables``: the source.tables mapping
        try:
            while True:
                rep = scan_guarded(sessions, source, rules, now=now, batch_rows=batch_rows, deliver=False, geo=geo)
                result.rows.update(rep.rows)
                result.quarantined.extend(rep.quarantined)
                result.findings += rep.findings
                result.throttled += rep.stage.throttled
                result.skips.update(rep.skips)
                if rep.exhausted:
                    break
            result.problems, result.notes = dict(source.problems), list(source.notes)
            with sessions() as s:
                rows = s.scalars(select(AlertRow).where(AlertRow.status != "suppressed")
                                 .order_by(AlertRow.ts, AlertRow.id)).all()
                result.alerts = [alert_record(a) for a in rows]
        finally:
            engine.dispose()
    return result


def alert_record(a: AlertRow) -> dict[str, Any]:
    ts = a.ts if a.ts.tzinfo else a.ts.replace(tzinfo=UTC)
    return {
        "alert_id": a.id, "rule_id": a.rule_id, "detector": a.detector, "account_id": a.account_id,
        "severity": a.severity, "ts": ts.isoformat(), "event_ids": list(a.event_ids), "mode": a.mode,
        "kind": (a.evidence or {}).get("kind", ""), "status": a.status,
    }


def write_alerts(alerts: list[dict[str, Any]], out: str | Path) -> None:
    """CSV (``event_ids`` joined by ``|``) or JSON Lines (a JSON array), by the file's extension."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix in (".jsonl", ".ndjson", ".json"):
        with p.open("w", encoding="utf-8") as f:
            for a in alerts:
                f.write(json.dumps({k: a[k] for k in FIELDS}, ensure_ascii=False) + "\n")
    elif p.suffix == ".csv":
        with p.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(FIELDS))
            w.writeheader()
            for a in alerts:
                w.writerow({**{k: a[k] for k in FIELDS}, "event_ids": "|".join(a["event_ids"])})
    else:
        from vigil.errors import VigilError

        raise VigilError(f"{p}: unknown output format; use .csv or .jsonl")
