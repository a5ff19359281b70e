"""Validate raw source rows against the input contract; quarantine what does not parse.

Every source (the engine's own tables, an external SQL database, a data directory) yields raw
frames with canonical column names, a ``_ref`` column naming each row for people
(``logins.csv:line 17``, ``logins#4521``) and a ``_cursor`` column.  :func:`validate` turns them
into typed canonical frames and a list of :class:`Quarantined` rows with their reasons; the rest
of the batch goes on.  A reader that could not parse a row at all (a CSV line with an extra
field) passes it on with an ``_error`` column, so it is quarantined here, once, like any other.

Every check is a vectorised mask over a whole column (no per-row Python), and each row keeps the
first reason found.  What a value may be -- the storage limits, the sane ranges, the accepted
timestamps -- is in :mod:`vigil.limits`.  A source that declared how its timestamps are written
(``ts_unit``, ``ts_format`` in its mapping) says so in ``raw.attrs[TS_ATTR]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyarrow.lib import ArrowInvalid

from confkit import closest
from detectors.contract import TABLES, Table
from vigil.limits import EPOCH_SECONDS_BELOW, MAX_RAW_CHARS, MAX_TS, MIN_TS, RANGES, ref_limit, text_limits

TRUE = {"true", "t", "1", "yes", "y"}
FALSE = {"false", "f", "0", "no", "n"}
TS_ATTR = "vigil.ts"  # raw.attrs[TS_ATTR] = {"unit": "s" | "ms" | "us" | "ns" | None, "format": str | None}
TO_MS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_MIN_MS = MIN_TS.value / 1e6
_MAX_MS = MAX_TS.value / 1e6


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


_UNSET: Any = object()


def _blank(s: pd.Series, text: pd.Series | None = _UNSET) -> pd.Series:
    """Null or blank; ``text`` is :func:`_arrow_text` of ``s`` when the caller has it already."""
    if text is _UNSET:
        text = _arrow_text(s)
    if text is not None:
        return (text.isna() | (text == "")).astype(bool)
    if s.dtype == object:
        return s.isna() | (s.astype(str).str.strip() == "")
    return s.isna()


def parse_ts(s: pd.Series, unit: str | None = None, fmt: str | None = None) -> pd.Series:
    """UTC timestamps, NaT where a value is not one; see :func:`parse_ts_checked`."""
    return parse_ts_checked(s, unit, fmt)[0]


def parse_ts_checked(s: pd.Series, unit: str | None = None, fmt: str | None = None
                     ) -> tuple[pd.Series, pd.Series]:
    """(timestamps, out_of_range) for ISO 8601 text or epoch numbers.

    Only unambiguous forms are read: ISO 8601 (an offset, or none meaning UTC) and epoch numbers.
    An epoch number is milliseconds, or seconds when it is below :data:`EPOCH_SECONDS_BELOW` (as
    milliseconds it would be before 1973); a declared ``unit`` applies to every number instead.
    ``03/04/2026`` is NaT unless ``fmt`` (a ``strftime`` format) declares that layout.  Numbers
    that land outside the sane range are flagged in ``out_of_range`` rather than converted.
    """
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    far = pd.Series(False, index=s.index)
    if pd.api.types.is_datetime64_any_dtype(s):
        out = pd.to_datetime(s, utc=True, cache=False)  # no cache probe: it makes Python objects
        return out, far
    text = s.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    is_num = numeric.notna()
    if is_num.any():
        num = numeric[is_num].astype("float64")
        if unit is None:
            factor = np.where(num.abs() < EPOCH_SECONDS_BELOW, TO_MS["s"], TO_MS["ms"])
        else:
            factor = np.full(len(num), TO_MS[unit])
        with np.errstate(over="ignore", invalid="ignore"):
            ms: pd.Series = num * factor
        inside = np.isfinite(ms) & (ms >= _MIN_MS) & (ms < _MAX_MS)
        far[num.index[~inside]] = True
        if inside.any():
            out[num.index[inside]] = pd.to_datetime(ms[inside], unit="ms", utc=True)
    rest = ~is_num & text.notna()
    if fmt is not None and rest.any():
        out[rest] = pd.to_datetime(text[rest], utc=True, errors="coerce", format=fmt)
        rest = rest & out.isna()
    if rest.any():
        out[rest] = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
        failed = rest & out.isna()
        if failed.any():  # a number too large for a float (1e400) is out of range, not unparseable
            far[failed] = text[failed].str.fullmatch(NUMBER).fillna(False).to_numpy(dtype=bool)
    return out, far


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
    df, reasons = check(table_name, raw)
    bad_mask = reasons != ""
    quarantined = quarantine_list(table_name, df["_ref"], reasons, raw)
    good = df[~bad_mask]
    keep = [c for c in table.names] + [c for c in ("_ref", "_cursor") if c in good.columns]
    good = good[keep]
    if table.is_event and not _in_order(good):
        good = good.sort_values(["ts", "event_id"], kind="mergesort")
    return good.reset_index(drop=True), quarantined


def quarantine_list(table_name: str, refs: pd.Series, reasons: pd.Series, raw: pd.DataFrame) -> list[Quarantined]:
    """The rows with a reason, as :class:`Quarantined` (only these rows are touched one by one)."""
    limit = ref_limit()
    return [
        Quarantined(table_name, str(refs[i])[:limit], str(reasons[i]), raw_dict(raw.loc[i]))
        for i in reasons.index[(reasons != "").to_numpy()]
    ]


def check(table_name: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The typed frame and, aligned with ``raw``'s index, each row's first reason ("" = good)."""
    table = TABLES[table_name]
    df = raw.copy()
    if "_ref" not in df.columns:
        df["_ref"] = [f"{table_name}:row {i + 1}" for i in range(len(df))]
    reasons = pd.Series("", index=df.index, dtype=object)
    ts_rules = raw.attrs.get(TS_ATTR) or {}
    limits = text_limits()
    flagged = np.zeros(len(df), dtype=bool)  # rows with a reason already (no text comparison per check)

    def flag(mask: pd.Series, why: str | Callable[[pd.Series], pd.Series]) -> None:
        """Record the first reason per row; ``why`` builds messages for the flagged rows only."""
        new = mask.fillna(False).astype(bool).to_numpy() & ~flagged
        if new.any():
            m = pd.Series(new, index=df.index)
            reasons[m] = why if isinstance(why, str) else why(m)
            flagged[new] = True

    def shown(s: pd.Series, prefix: str, suffix: str = "") -> Callable[[pd.Series], pd.Series]:
        return lambda m: prefix + s[m].astype(str).str.slice(0, 60) + suffix

    if "_error" in df.columns:  # the reader could not split this line into fields
        errors = df["_error"]
        flag(errors.notna() & (errors.astype(str) != ""), lambda m: errors[m].astype(str))
    absent = [c.name for c in table.columns if c.name not in df.columns]
    for c in absent:
        df[c] = None
    for col in table.columns:
        s = df[col.name]
        text = None if col.name in absent else _arrow_text(s)  # stripped once, for every check
        blank = pd.Series(True, index=df.index) if col.name in absent else _blank(s, text)
        if col.required:
            flag(blank, f"missing required field '{col.name}'")
        if col.name in absent:
            continue
        if col.kind == "ts":
            parsed, far = parse_ts_checked(s, ts_rules.get("unit"), ts_rules.get("format"))
            unit = ts_rules.get("unit")
            read_as = (f"read as epoch {unit}" if unit else
                       "epoch numbers are read as milliseconds, or as seconds below 1e11; declare ts_unit otherwise")
            flag(~blank & far, shown(s, f"timestamp out of range in '{col.name}': ",
                                     f" ({read_as}; expected the years {MIN_TS.year}–{MAX_TS.year - 1})"))
            flag(~blank & parsed.isna(), shown(s, f"unparseable timestamp in '{col.name}': ",
                                               " (expected ISO 8601 or epoch milliseconds)"))
            flag(~blank & ((parsed < MIN_TS) | (parsed >= MAX_TS)),
                 shown(s, f"timestamp out of range in '{col.name}': ",
                       f" (expected the years {MIN_TS.year}–{MAX_TS.year - 1})"))
            df[col.name] = parsed
        elif col.kind in ("float", "int"):
            df[col.name] = _numbers(col.name, col.kind, s, blank, flag, shown)
        elif col.kind == "bool":
            parsed_b = parse_bool(s)
            flag(~blank & parsed_b.isna(), shown(s, f"not a true/false value in '{col.name}': "))
            df[col.name] = parsed_b
        else:
            vals = _texts(s, blank, text)
            flag(vals.str.contains("\x00", regex=False), f"NUL byte in '{col.name}': refused, not truncated")
            limit = limits.get((table_name, col.name))
            if limit is not None:
                lens = vals.str.len()
                flag(lens > limit, _too_long(col.name, lens, limit))
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
    return df, reasons


def _numbers(name: str, kind: str, s: pd.Series, blank: pd.Series, flag: Callable[..., None],
             shown: Callable[..., Callable[[pd.Series], pd.Series]]) -> pd.Series:
    """Numbers within their sane range; what is out of range is flagged and never converted."""
    num = pd.to_numeric(s.where(~blank), errors="coerce").astype("float64")
    r = RANGES.get(name)
    expected = f" (expected {r.describe()})" if r is not None else ""
    failed = ~blank & num.isna()
    if failed.any():  # a number too large for a float (1e400) is out of range, not unparseable
        looks = _texts(s[failed], blank[failed]).str.fullmatch(NUMBER).fillna(False).astype(bool)
        flag(looks.reindex(s.index, fill_value=False), shown(s, f"'{name}' out of range: ", expected))
    flag(~blank & num.isna(), shown(s, f"unparseable number in '{name}': "))
    flag(~blank & np.isinf(num), shown(s, f"'{name}' out of range: ", expected))
    if name in ("amount", "amount_usd"):
        flag(num < 0, f"negative '{name}': amounts are absolute, 'kind' gives the direction")
    if name == "leverage":
        flag(num <= 0, "'leverage' must be positive")
    if r is not None:
        outside = (num < r.lo) | (num > r.hi) | ((num <= r.lo) if r.lo_open else False)
        flag(outside, shown(s, f"'{name}' out of range: ", f" (expected {r.describe()})"))
    ok = num.where(np.isfinite(num) & (num.abs() < 2**53))
    return ok if kind == "float" else ok.round().astype("Int64")


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
    col = df["event_id"]
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow" and not col.hasnans:
        import pyarrow as pa
        import pyarrow.compute as pc

        # UTF-8 bytes order as code points do, so Arrow's comparison is Python's ``str`` order
        arr = pa.chunked_array(col.array._pa_array)  # type: ignore[attr-defined]
        here = pc.take(arr, pa.array(ties))
        after = pc.take(arr, pa.array(ties + 1))
        return bool(pc.all(pc.less_equal(here, after)).as_py())
    ids = col.to_numpy(dtype=object)
    return bool(all(str(ids[i]) <= str(ids[i + 1]) for i in ties))


def absent_columns(table: Table, raw: pd.DataFrame) -> frozenset[str]:
    return frozenset(c for c in table.optional if c not in raw.columns)


def _texts(s: pd.Series, blank: pd.Series, text: pd.Series | None = _UNSET) -> pd.Series:
    """Stripped text, vectorised; non-text values (numbers from Parquet or SQL) become their text."""
    if text is _UNSET:
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


def _too_long(name: str, lens: pd.Series, limit: int) -> Callable[[pd.Series], pd.Series]:
    def build(mask: pd.Series) -> pd.Series:
        return f"'{name}' is too long: " + lens[mask].astype(str) + f" characters (Vigil stores at most {limit})"

    return build


def _choice_reasons(name: str, values: pd.Series, choices: tuple[str, ...]) -> Callable[[pd.Series], pd.Series]:
    def build(mask: pd.Series) -> pd.Series:
        return values[mask].map(lambda v: _unknown_choice(name, v, choices))

    return build


def _unknown_choice(col: str, value: Any, choices: tuple[str, ...] | None) -> str:
    options = list(choices or ())
    shown = str(value)[:60]
    close = closest(shown, options)
    hint = f"; did you mean '{close}'?" if close else ""
    return f"unknown {col} {shown!r}{hint} (expected one of {', '.join(options)})"


def raw_dict(row: pd.Series) -> dict[str, Any]:
    """The row as given, for the quarantine; long values cut, NUL bytes made visible."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if str(k).startswith("_") and k not in ("_ref", "_line"):
            continue
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT or v is pd.NA:
            out[str(k)] = None
        elif isinstance(v, str):
            text = v.replace("\x00", "\\x00")
            out[str(k)] = text if len(text) <= MAX_RAW_CHARS else f"{text[:MAX_RAW_CHARS]}… ({len(v)} characters)"
        elif isinstance(v, bool | int | np.integer | np.bool_):
            out[str(k)] = v.item() if hasattr(v, "item") else v
        elif isinstance(v, float | np.floating):
            f = float(v)
            out[str(k)] = f if np.isfinite(f) else str(f)
        else:
            out[str(k)] = str(v)[:MAX_RAW_CHARS]
    return out


def declare_ts(raw: pd.DataFrame, tmap: Any) -> None:
    """Carry a mapping's declared timestamp unit or layout to :func:`check` (``raw.attrs``)."""
    unit, fmt = getattr(tmap, "ts_unit", None), getattr(tmap, "ts_format", None)
    if unit or fmt:
        raw.attrs[TS_ATTR] = {"unit": unit, "format": fmt}
