"""Text formatting of backtest reports for the terminal (the numbers come from ``rules.report``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.errors import ConfigError


def read_labels(path: str | Path) -> set[str]:
    """Attack event ids: one per line, or a CSV with an ``event_id`` column."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: labels file not found")
    text = p.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text.strip() else ""
    if "event_id" in first.split(","):
        with p.open(encoding="utf-8", newline="") as f:
            return {r["event_id"].strip() for r in csv.DictReader(f) if r.get("event_id")}
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def days_spanned(alerts: Iterable[Mapping[str, Any]]) -> float:
    """The span between the first and the last alert (at least a day).  Not a rate's denominator:
    a quiet rule set that alerts twice in an hour is not alerting twice a day; see :func:`data_days`."""
    ts = [datetime.fromisoformat(str(a["ts"])) for a in alerts]
    if len(ts) < 2:
        return 1.0
    return max(1.0, (max(ts) - min(ts)).total_seconds() / 86400)


def data_days(data: str | Path) -> float:
    """The time the data covers, in days (at least one): from its first event to its last, over
    every event table of the data directory -- the denominator of "alerts per account per day".

    Only the ``ts`` column is read (the file the backtest reads: Parquet before CSV); values that do
    not parse (quarantined rows) are left out.
    """
    from detectors.contract import EVENT_TABLES

    lo: pd.Timestamp | None = None
    hi: pd.Timestamp | None = None
    for table in EVENT_TABLES:
        ts = _read_ts(Path(data), table)
        if ts is None or ts.dropna().empty:
            continue
        first, last = ts.min(), ts.max()
        lo = first if lo is None or first < lo else lo
        hi = last if hi is None or last > hi else hi
    if lo is None or hi is None:
        return 1.0
    return max(1.0, (hi - lo).total_seconds() / 86400)


def _read_ts(root: Path, table: str) -> pd.Series | None:
    for path in (root / f"{table}.parquet", root / f"{table}.csv"):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".parquet":
                col = pd.read_parquet(path, columns=["ts"])["ts"]
            else:
                col = pd.read_csv(path, usecols=["ts"], dtype=str, keep_default_na=False, na_values=[""])["ts"]
        except (ValueError, KeyError, OSError, pd.errors.ParserError):
            return None  # no ts column, or unreadable: the backtest reports that file itself
        return parse_times(col)
    return None


def parse_times(col: pd.Series) -> pd.Series:
    """Timestamps as the input contract allows them: datetimes, ISO 8601 text or epoch
    milliseconds; anything else becomes NaT.  Aware UTC."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.to_datetime(col, utc=True)
    numeric = pd.to_numeric(col, errors="coerce")
    out = pd.to_datetime(col.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601")
    ms = numeric.dropna()
    ms = ms[ms.abs() < 1e15]  # epoch milliseconds before the year 33658; beyond, not a time
    if len(ms):  # only real numbers reach the unit conversion (NaN there can overflow numpy)
        out.loc[ms.index] = pd.to_datetime(ms.round().astype("int64"), unit="ms", utc=True)
    return out


def _rows(report: Any) -> list[Mapping[str, Any]]:
    if isinstance(report, Mapping):
        return [{"rule_id": k, **(v if isinstance(v, Mapping) else {"value": v})} for k, v in report.items()]
    return [r if isinstance(r, Mapping) else getattr(r, "__dict__", {"value": r}) for r in report]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if v is None:
        return "-"
    if isinstance(v, list | tuple | set):
        return str(len(v))
    return str(v)


def table(rows: list[Mapping[str, Any]]) -> str:
    if not rows:
        return "(nothing)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def format_rule_report(report: Any) -> str:
    return "per-rule report:\n" + table(_rows(report))


def format_compare(diff: Any) -> str:
    return "compared with the old rules (alerts added / dropped per rule):\n" + table(_rows(diff))
