"""Validate raw source rows against the input contract; quarantine what does not parse.

Every source (the engine's own tables, an external SQL database, a data directory) yields raw
frames with canonical column names, a ``_ref`` column naming each row for people
(``logins.csv:row 17``, ``logins#4521``) and a ``_cursor`` column.  :func:`validate` turns them
into typed canonical frames and a list of :class:`Quarantined` rows with their reasons; the rest
of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import numpy as np
import pandas as pd
from pyarrow.lib import ArrowInvalid

from detectors.contract import TABLES, Table

TRUE = {"true", "t", "1", "yes", "y"}
FALSE = {"false", "f", "0", "no", "n"}


@dataclass(frozen=True)
class Quarantined:
    table: str
    ref: str
    reason: str
    raw: dict[str, Any]


def _arrow_text(s: pd.Series) -> pd.Series | None:
    """The column as stripped Arrow strings when it holds only text (vectorised in C++), else None."""
    if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
        return None
    try:
        return s.astype("string[pyarrow]").str.strip()
    except (TypeError, ValueError, ArrowInvalid):  # mixed types (numbers from SQL): the slow path
        return None


def _blank(s: pd.Series) -> pd.Series:
    text = _arrow_text(s)
    if text is not None:
        return (text.isna() | (text == "")).astype(bool)
    if s.dtype == object:
        return s.isna() | (s.astype(str).str.strip() == "")
    return s.isna()


def parse_ts(s: pd.Series) -> pd.Series:
    """ISO 8601 (with an offset; naive means UTC) or epoch milliseconds -> UTC timestamps (NaT if bad)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.to_datetime(s, utc=True)
    text = s.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    is_num = numeric.notna()
    if is_num.any():
        out[is_num] = pd.to_datetime(numeric[is_num].astype("float64"), unit="ms", utc=True, errors="coerce")
    rest = ~is_num & text.notna()
    if rest.any():
        out[rest] = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
        again = rest & out.isna() & text.notna()
        if again.any():  # mixed formats: fall back to the slower per-element parser
            out[again] = pd.to_datetime(text[again], utc=True, errors="coerce", format="mixed")
    return out


def parse_bool(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    text = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[text.isin(TRUE).fillna(False).astype(bool)] = True
    out[text.isin(FALSE).fillna(False).astype(bool)] = False
    return out


def validate(table_name: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[Quarantined]]:
    """Typed canonical frame (sorted by ts, event_id) and the quarantined rows."""
    table = TABLES[table_name]
    df = raw.copy()
    if "_ref" not in df.columns:
        df["_ref"] = [f"{table_name}:row {i + 1}" for i in range(len(df))]
    reasons = pd.Series("", index=df.index, dtype=object)
    flagged = np.zeros(len(df), dtype=bool)  # rows with a reason already (no text comparison per check)

    def flag(mask: pd.Series, why: str | Callable[[pd.Series], pd.Series]) -> None:
        """Record the first reason per row; ``why`` builds messages for the flagged rows only."""
        new = mask.fillna(False).astype(bool).to_numpy() & ~flagged
        if new.any():
            m = pd.Series(new, index=df.index)
            reasons[m] = why if isinstance(why, str) else why(m)
            flagged[new] = True

    def shown(s: pd.Series, prefix: str) -> Callable[[pd.Series], pd.Series]:
        return lambda m: prefix + s[m].astype(str).str.slice(0, 60)

    absent = [c.name for c in table.columns if c.name not in df.columns]
    for c in absent:
        df[c] = None
    for col in table.columns:
        s = df[col.name]
        blank = pd.Series(True, index=df.index) if col.name in absent else _blank(s)
        if col.required:
            flag(blank, f"missing required field '{col.name}'")
        if col.name in absent:
            continue
        if col.kind == "ts":
            parsed = parse_ts(s)
            flag(~blank & parsed.isna(), shown(s, f"unparseable timestamp in '{col.name}': "))
            df[col.name] = parsed
        elif col.kind in ("float", "int"):
            num = pd.to_numeric(s.where(~blank), errors="coerce")
            bad = ~blank & (num.isna() | ~np.isfinite(num.astype("float64").fillna(0)))
            flag(bad, shown(s, f"unparseable number in '{col.name}': "))
            if col.name in ("amount", "amount_usd"):
                flag(num < 0, f"negative '{col.name}': amounts are absolute, 'kind' gives the direction")
            if col.name == "leverage":
                flag(num <= 0, "'leverage' must be positive")
            df[col.name] = num.astype("float64") if col.kind == "float" else num.round().astype("Int64")
        elif col.kind == "bool":
            parsed_b = parse_bool(s)
            flag(~blank & parsed_b.isna(), shown(s, f"not a true/false value in '{col.name}': "))
            df[col.name] = parsed_b
        else:
            vals = _texts(s, blank)
            if col.choices:
                lowered = vals.str.lower()
                bad = ~blank & ~lowered.isin(col.choices)
                if bad.any():
                    flag(bad, _choice_reasons(col.name, lowered, col.choices))
                vals = lowered
            # Arrow strings all the way to the detectors: no Python object per value; blanks are NA
            df[col.name] = vals.mask(blank, pd.NA)
    if table.is_event:
        dup = df["event_id"].duplicated(keep="first") & ~flagged & df["event_id"].notna()
        flag(dup, shown(df["event_id"], "duplicate event_id within the batch: "))
    bad_mask = pd.Series(flagged, index=df.index)
    quarantined = [
        Quarantined(table_name, str(df.at[i, "_ref"]), str(reasons[i]), _raw_dict(raw.loc[i]))
        for i in df.index[flagged]
    ]
    good = df[~bad_mask]
    keep = [c for c in table.names] + [c for c in ("_ref", "_cursor") if c in good.columns]
    good = good[keep]
    if table.is_event and not _in_order(good):
        good = good.sort_values(["ts", "event_id"], kind="mergesort")
    return good.reset_index(drop=True), quarantined


def _in_order(df: pd.DataFrame) -> bool:
    """Already sorted by (ts, event_id) -- the usual export -- so the sort can be skipped."""
    if len(df) < 2:
        return True
    ts = df["ts"].to_numpy(dtype="datetime64[ns]") if df["ts"].dt.tz is None else \
        df["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    step = np.diff(ts.view("int64"))
    if (step < 0).any():
        return False
    ties = np.flatnonzero(step == 0)
    if not len(ties):
        return True
    ids = df["event_id"].to_numpy(dtype=object)
    return bool(all(str(ids[i]) <= str(ids[i + 1]) for i in ties))


def absent_columns(table: Table, raw: pd.DataFrame) -> frozenset[str]:
    return frozenset(c for c in table.optional if c not in raw.columns)


def _texts(s: pd.Series, blank: pd.Series) -> pd.Series:
    """Stripped text, vectorised; non-text values (numbers from Parquet or SQL) become their text."""
    text = _arrow_text(s)
    if text is not None:
        return text.fillna("")
    return s.map(_as_text).where(~blank, "").astype("string[pyarrow]")


def _as_text(v: Any) -> str | None:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def _choice_reasons(name: str, values: pd.Series, choices: tuple[str, ...]) -> Callable[[pd.Series], pd.Series]:
    def build(mask: pd.Series) -> pd.Series:
        return values[mask].map(lambda v: _unknown_choice(name, v, choices))

    return build


def _unknown_choice(col: str, value: Any, choices: tuple[str, ...] | None) -> str:
    options = list(choices or ())
    close = get_close_matches(str(value), options, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {col} {value!r}{hint} (expected one of {', '.join(options)})"


def _raw_dict(row: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if str(k).startswith("_") and k != "_ref":
            continue
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            out[str(k)] = None
        elif isinstance(v, str | int | float | bool):
            out[str(k)] = v.item() if hasattr(v, "item") else v
        else:
            out[str(k)] = str(v)
    return out
