"""Per-account event sequences: the vectorised window arithmetic behind the transfer, trading,
leverage and learned detectors.

Why this exists: "ten batches give the same findings as one scan" only holds when a detector's
definition is itself *bounded*.  Every windowed statistic here is therefore defined as "over the
last ``max_items`` earlier events of the same account within ``horizon``" -- exactly what a
bounded profile can carry from one batch to the next.  A profile that keeps the last
``max_items`` events within ``horizon`` of the account's latest event reproduces the one-scan
result bit for bit (money is summed as integer cents, so no float drift between the two).

Order is ``(account, ts, event_id)``: events with the same timestamp are ordered by event id,
as :class:`detectors.batch.Batch` sorts them.

Persisted items carry timestamps as ISO 8601 strings (readable in the database) and every
profile carries ``"v": PROFILE_VERSION``; a profile of another version is ignored (the account
re-learns) rather than misread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors.sorting import lexsort

PROFILE_VERSION = 1
NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR


def to_ns(ts: pd.Series) -> np.ndarray:
    """Tz-aware timestamps -> int64 nanoseconds since the epoch (UTC)."""
    # cache=False: pandas' cache probe turns 10,000 timestamps into Python objects per call
    s = pd.to_datetime(ts, utc=True, cache=False)
    return np.asarray(s.dt.as_unit("ns").dt.tz_localize(None).to_numpy().view("int64"), dtype=np.int64)


def str_values(s: pd.Series) -> np.ndarray:
    """``s.astype(str).to_numpy(dtype=object)``: Arrow strings without nulls are converted in C
    (``astype(str)`` goes value by value, four times slower)."""
    if isinstance(s.dtype, pd.StringDtype) and not s.hasnans:
        return np.asarray(s.to_numpy(dtype=object), dtype=object)
    return np.asarray(s.astype(str).to_numpy(dtype=object), dtype=object)


def unique_str(s: pd.Series) -> np.ndarray:
    """``s.astype(str).unique()``: the distinct values as text, in order of appearance."""
    return np.asarray(pd.unique(str_values(s)), dtype=object)


def ns_to_iso(ns: np.ndarray) -> list[str]:
    """Int nanoseconds -> ISO 8601 UTC strings, millisecond precision when that is exact."""
    arr = np.asarray(ns, dtype=np.int64)
    if arr.size == 0:
        return []
    unit = "ms" if bool(np.all(arr % 1_000_000 == 0)) else "ns"
    return [str(x) for x in np.datetime_as_string(arr.view("datetime64[ns]"), unit=unit, timezone="UTC")]  # type: ignore[call-overload]


def ts_of(ns: int | np.integer[Any]) -> pd.Timestamp:
    """Int nanoseconds -> a tz-aware UTC timestamp at microsecond precision (what a finding keeps)."""
    v = int(ns)
    return pd.Timestamp(v - v % 1000, tz="UTC")


def records(df: pd.DataFrame, labels: np.ndarray, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Plain rows for the given index labels only: one lookup for all flagged rows, NaN as None."""
    cols = [c for c in columns if c in df.columns]
    if len(labels) == 0:
        return []
    sub = df.loc[np.asarray(labels), cols].astype(object)
    return [{str(k): _plain(v) for k, v in r.items()} for r in sub.to_dict("records")]


def iso_at(t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ISO strings aligned with ``t``, filled only where ``mask`` (cheap: only kept rows are formatted)."""
    out = np.empty(len(t), dtype=object)
    out[mask] = ns_to_iso(t[mask])
    return out


def iso_to_ns(values: Sequence[str]) -> np.ndarray:
    """ISO 8601 strings -> int64 nanoseconds (UTC).  The UTC forms this package writes ("...Z",
    "...+00:00") parse in numpy's C parser; anything else goes through pandas."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    vals = list(values)
    try:
        if all(v.endswith("Z") for v in vals):
            bare = [v[:-1] for v in vals]
        elif all(v.endswith("+00:00") for v in vals):
            bare = [v[:-6] for v in vals]
        else:
            bare = []
        if bare and all("T" in v for v in bare):
            return np.array(bare, dtype="datetime64[ns]").view(np.int64)
    except (ValueError, TypeError, AttributeError):
        pass
    idx = pd.to_datetime(pd.Index(list(values)), utc=True, format="ISO8601")
    return np.asarray(idx.as_unit("ns").tz_localize(None).to_numpy().view("int64"), dtype=np.int64)


def to_cents(usd: np.ndarray) -> np.ndarray:
    """USD floats -> int64 cents (exact sums in any batching)."""
    return np.rint(np.asarray(usd, dtype=np.float64) * 100.0).astype(np.int64)


def state_of(profiles: Mapping[str, Mapping[str, Any]], account: str) -> Mapping[str, Any]:
    """The account's profile if it has the current version, else an empty one."""
    prof = profiles.get(account)
    if not prof or prof.get("v") != PROFILE_VERSION:
        return {}
    return prof


@dataclass
class Seq:
    """Events of several accounts sorted by ``(account, ts, event_id)``.

    ``new`` marks rows of the current batch; ``row`` is their index label in the batch frame
    (-1 for rows rebuilt from profiles).  ``cols`` holds extra per-row arrays.
    """

    account: np.ndarray
    code: np.ndarray
    t: np.ndarray
    eid: np.ndarray
    new: np.ndarray
    row: np.ndarray
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    def first_of_group(self) -> np.ndarray:
        first = np.ones(len(self.code), dtype=bool)
        first[1:] = self.code[1:] != self.code[:-1]
        return first

    def last_of_group(self) -> np.ndarray:
        last = np.ones(len(self.code), dtype=bool)
        last[:-1] = self.code[:-1] != self.code[1:]
        return last

    def group_start(self) -> np.ndarray:
        """For each row, the index of the first row of its account."""
        idx = np.where(self.first_of_group(), np.arange(len(self.code)), 0)
        return np.maximum.accumulate(idx) if len(idx) else idx

    def prev(self, values: np.ndarray, initial: Any) -> np.ndarray:
        """The value of the previous row of the same account (``initial`` for the first)."""
        out = np.empty_like(values)
        if len(values):
            out[1:] = values[:-1]
            out[self.first_of_group()] = initial
        return out


def build_seq(
    frame: pd.DataFrame | None,
    cols: Mapping[str, np.ndarray],
    history: Iterable[tuple[str, str, str, Sequence[Any]]],
    names: Sequence[str],
) -> Seq:
    """Merge batch rows with history rows rebuilt from profiles.

    ``frame`` has ``account_id, ts, event_id``; ``cols`` are per-row arrays aligned with it.
    ``history`` yields ``(account, iso_ts, event_id, values)`` with ``values`` matching ``names``.
    """
    hist = list(history)
    n_new = 0 if frame is None else len(frame)
    acc_parts: list[np.ndarray] = []
    t_parts: list[np.ndarray] = []
    eid_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    col_parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    if hist:
        acc_parts.append(np.array([h[0] for h in hist], dtype=object))
        t_parts.append(iso_to_ns([h[1] for h in hist]))
        eid_parts.append(np.array([h[2] for h in hist], dtype=object))
        row_parts.append(np.full(len(hist), -1, dtype=np.int64))
        for j, n in enumerate(names):
            col_parts[n].append(
                np.array([h[3][j] for h in hist], dtype=np.asarray(cols[n]).dtype if n in cols else object)
            )
    if frame is not None and n_new:
        acc_parts.append(str_values(frame["account_id"]))
        t_parts.append(to_ns(frame["ts"]))
        eid_parts.append(str_values(frame["event_id"]))
        row_parts.append(frame.index.to_numpy(dtype=np.int64))
        for n in names:
            col_parts[n].append(np.asarray(cols[n]))
    if not acc_parts:
        empty = np.zeros(0, dtype=np.int64)
        return Seq(
            np.zeros(0, dtype=object),
            empty,
            empty,
            np.zeros(0, dtype=object),
            np.zeros(0, dtype=bool),
            empty,
            {n: np.zeros(0) for n in names},
        )
    account = np.concatenate(acc_parts)
    t = np.concatenate(t_parts)
    eid = np.concatenate(eid_parts)
    row = np.concatenate(row_parts)
    new = row >= 0
    codes, _ = pd.factorize(account)
    order = lexsort((t, codes))
    sc, st = codes[order], t[order]
    if len(order) > 1 and bool(np.any((sc[1:] == sc[:-1]) & (st[1:] == st[:-1]))):
        # equal (account, ts): only then does the event id decide, and ranking ids costs a sort
        eid_rank, _ = pd.factorize(eid, sort=True)
        order = lexsort((eid_rank, t, codes))
    out_cols = {n: np.concatenate(col_parts[n])[order] for n in names}
    return Seq(account[order], codes[order].astype(np.int64), t[order], eid[order], new[order], row[order], out_cols)


def window_start(code: np.ndarray, t: np.ndarray, horizon: int) -> np.ndarray:
    """For each row i, the first row j of the same account with ``t[j] > t[i] - horizon``.

    Rows must be sorted by ``(code, t)``.  One merge of rows and queries, fully vectorised.
    """
    n = len(t)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keys_t = np.concatenate([t, t - np.int64(horizon)])
    keys_c = np.concatenate([code, code])
    flag = np.concatenate([np.zeros(n, dtype=np.int8), np.ones(n, dtype=np.int8)])
    # at equal (code, t), rows sort before queries: a row at exactly t - horizon is outside
    order = lexsort((flag, keys_t, keys_c))
    is_row = (order < n).astype(np.int64)
    rows_before = np.cumsum(is_row) - is_row
    pos = np.empty(2 * n, dtype=np.int64)
    pos[order] = np.arange(2 * n)
    return np.asarray(rows_before[pos[n:]], dtype=np.int64)


@dataclass(frozen=True)
class Window:
    """Members of a windowed statistic for each row, as ordinals ``[start, end)`` among members."""

    count: np.ndarray
    total: np.ndarray
    start: np.ndarray
    end: np.ndarray
    member_rows: np.ndarray


def window_sums(
    seq: Seq,
    member: np.ndarray,
    values: np.ndarray,
    horizon: int,
    max_items: int,
    *,
    inclusive: bool,
) -> Window:
    """Count and integer sum of the last ``max_items`` member rows of the same account within
    ``(t - horizon, t]`` that come before row i (and row i itself when ``inclusive``)."""
    m = np.asarray(member, dtype=bool)
    mi = m.astype(np.int64)
    cm = np.concatenate(([0], np.cumsum(mi)))
    end = cm[1:] if inclusive else cm[:-1]
    first_row = window_start(seq.code, seq.t, horizon)
    start = np.maximum(cm[first_row], end - max_items)
    start = np.minimum(start, end)
    vals = np.asarray(values, dtype=np.int64)[m]
    mv = np.concatenate(([0], np.cumsum(vals)))
    return Window(end - start, mv[end] - mv[start], start, end, np.flatnonzero(m))


def range_min(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_len: int) -> np.ndarray:
    """``min(values[lo:hi])`` per query (NaN when empty); ``hi - lo`` is at most ``max_len``.

    A sparse table with only the levels ``max_len`` needs: O(n log max_len) memory and time.
    """
    vals = np.asarray(values, dtype=np.float64)
    out = np.full(len(lo), np.nan)
    ok = hi > lo
    if not ok.any():
        return out
    levels = [vals]
    k = 1
    while (1 << k) <= max_len and (1 << k) <= len(vals):
        prev, half = levels[-1], 1 << (k - 1)
        levels.append(np.fmin(prev[:-half], prev[half:]))
        k += 1
    length = (hi - lo)[ok]
    level = np.zeros(len(length), dtype=np.int64)
    while True:
        step = (np.int64(1) << (level + 1)) <= length
        if not step.any():
            break
        level = level + step
    a = lo[ok]
    b = hi[ok] - (np.int64(1) << level)
    res = np.empty(len(length))
    for lv in np.unique(level):
        sel = level == lv
        table = levels[int(lv)]
        res[sel] = np.fmin(table[a[sel]], table[b[sel]])
    out[ok] = res
    return out


def keep_recent(seq: Seq, horizon: int, max_items: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Rows a profile must keep: per account, the last ``max_items`` (among ``mask``) whose time is
    within ``horizon`` of the account's latest row."""
    m = np.ones(len(seq), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if len(seq) == 0:
        return m
    last = np.flatnonzero(seq.last_of_group())
    group_end = np.repeat(last, np.diff(np.concatenate(([-1], last))))  # last row of each row's account
    cm = np.cumsum(m.astype(np.int64))
    rank_from_end = cm[group_end] - cm + m  # members from this row to the account's last row
    return m & (rank_from_end <= max_items) & (seq.t > seq.t[group_end] - np.int64(horizon))


def per_account(
    seq: Seq, mask: np.ndarray, fields: Sequence[np.ndarray | list[Any]]
) -> dict[str, list[tuple[Any, ...]]]:
    """Group selected rows into ``{account: [(field0, field1, ...), ...]}`` (in sequence order).

    Columns become Python lists in C (``tolist``); only float and object columns are scanned
    for NaN, which strict JSON cannot hold.
    """
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return {}
    columns = []
    for f in fields:
        arr = np.asarray(f)[idx]
        values = arr.tolist()
        if arr.dtype.kind in "fO":
            bad = np.flatnonzero(pd.isna(arr))
            for j in bad:
                values[j] = None
            if arr.dtype.kind == "O":
                values = [_plain(v) if isinstance(v, np.generic) else v for v in values]
        columns.append(values)
    rows = list(zip(*columns, strict=True))  # tuples: JSON writes them as arrays
    accts = seq.account[idx]
    cut = np.flatnonzero(seq.code[idx][1:] != seq.code[idx][:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(idx)]))
    return {str(accts[a]): rows[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}


def _plain(v: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN / NA as null (strict JSON has no NaN)."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    return v
