"""Shared machinery of the login detectors: successful-login ordinals, learning periods and the
"have we seen this value lately?" test that new country / city / device / subnet / ASN all use.

Every login detector keeps a per-account profile of the same shape::

    {"n": 42,                       # successful logins seen so far
     "first": "2024-01-02T...",      # first successful login (learning period in days)
     "seen": {"device": {"d-1": ["2024-03-01T...", 41], ...}, ...}}   # value -> [last ts, ordinal]

A value is *familiar* when the account used it within ``window_days`` or within its last
``history_logins`` successful logins (Okta's last-N rule and the 90-day rule of research b1, either
suffices).  Entries that can no longer make anything familiar are pruned, so a profile stays
bounded however long the account lives.  Because the test only looks at the most recent earlier
use of the value (from the batch, else from the profile), scanning in ten batches gives the same
answers as one scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def successful(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["success"].fillna(False).astype(bool)]


def ordinals(ok: pd.DataFrame, profiles: Mapping[str, Mapping[str, Any]]) -> pd.Series:
    """How many successful logins each account had before this one (profile + earlier batch rows)."""
    prior = ok["account_id"].map({a: int(profiles.get(a, {}).get("n", 0)) for a in ok["account_id"].unique()})
    return (prior.fillna(0).astype("int64") + ok.groupby("account_id", sort=False).cumcount()).astype("int64")


def first_seen(ok: pd.DataFrame, profiles: Mapping[str, Mapping[str, Any]]) -> pd.Series:
    """The account's first successful login: from the profile, else the earliest in the batch."""
    batch_first = ok.groupby("account_id", sort=False)["ts"].transform("min")
    prof = {a: profiles.get(a, {}).get("first") for a in ok["account_id"].unique()}
    prof_ts = pd.to_datetime(ok["account_id"].map(prof), utc=True, format="ISO8601")
    return prof_ts.where(prof_ts.notna() & (prof_ts < batch_first), batch_first)


def learned(
    ok: pd.DataFrame, profiles: Mapping[str, Mapping[str, Any]], min_logins: int, min_days: float
) -> tuple[pd.Series, pd.Series]:
    """(eligible, ordinal): an account is judged once it has ``min_logins`` earlier successful
    logins and its first one is at least ``min_days`` old (the learning period, research b9)."""
    ords = ordinals(ok, profiles)
    eligible = ords >= min_logins
    if min_days > 0:
        eligible &= (ok["ts"] - first_seen(ok, profiles)) >= pd.Timedelta(days=min_days)
    return eligible, ords


def last_use(
    sub: pd.DataFrame,
    vals: pd.Series,
    ords: pd.Series,
    level: str,
    profiles: Mapping[str, Mapping[str, Any]],
) -> tuple[pd.Series, pd.Series]:
    """Timestamp and ordinal of the previous successful login of the same account with the same value."""
    frame = pd.DataFrame(
        {
            "a": sub["account_id"].to_numpy(),
            "v": vals.to_numpy(),
            "ts": sub["ts"].to_numpy(),
            "o": ords.to_numpy(),
        },
        index=sub.index,
    )
    g = frame.groupby(["a", "v"], sort=False)
    prev_ts = g["ts"].shift(1)
    prev_o = g["o"].shift(1)
    rows = []
    for a in frame["a"].unique():
        for v, (ts, o, *_rest) in profiles.get(a, {}).get("seen", {}).get(level, {}).items():
            rows.append((a, v, ts, o))
    if rows:
        prof = pd.DataFrame(rows, columns=["a", "v", "p_ts", "p_o"])
        prof["p_ts"] = pd.to_datetime(prof["p_ts"], utc=True, format="ISO8601")
        joined = frame[["a", "v"]].reset_index().merge(prof, on=["a", "v"], how="left").set_index("index")
        joined = joined.reindex(frame.index)
        prev_ts = prev_ts.where(prev_ts.notna(), joined["p_ts"])
        prev_o = prev_o.where(prev_o.notna(), joined["p_o"])
    return pd.to_datetime(prev_ts, utc=True), prev_o.astype("float64")


def familiar(
    ts: pd.Series,
    ords: pd.Series,
    prev_ts: pd.Series,
    prev_o: pd.Series,
    window_days: int,
    history_logins: int,
) -> pd.Series:
    """Seen within the window (either side, for a late row) or within the last N successful logins."""
    known = prev_ts.notna()
    recent = (ts - prev_ts).abs() <= pd.Timedelta(days=window_days)
    if history_logins > 0:
        recent |= (ords.astype("float64") - prev_o) <= history_logins
    return known & recent.fillna(False)


def update_profiles(
    out: dict[str, dict[str, Any]],
    profiles: Mapping[str, Mapping[str, Any]],
    ok: pd.DataFrame,
    ords: pd.Series,
    seen: Mapping[str, tuple[pd.DataFrame, pd.Series]],
    window_days: int,
    history_logins: int,
    extra: Mapping[str, pd.DataFrame] | None = None,
) -> None:
    """Fold this batch into the profiles of its accounts.

    ``seen`` maps a level to (rows, values) that were observed; ``extra`` optionally maps a level to
    a frame indexed like the rows with additional per-value fields stored after [ts, ordinal]
    (e.g. the coordinates of a city).
    """
    counts = ok.groupby("account_id", sort=False).size()
    firsts = ok.groupby("account_id", sort=False)["ts"].min()
    for acct, k in counts.items():
        a = str(acct)
        st = out.setdefault(a, copy_profile(profiles.get(a, {})))
        st["n"] = int(st.get("n", 0)) + int(k)
        f: Any = firsts.loc[acct]  # type: ignore[call-overload]
        if st.get("first") is None or pd.Timestamp(st["first"]) > f:
            st["first"] = f.isoformat()
    window = pd.Timedelta(days=window_days)
    for level, (rows, vals) in seen.items():
        if rows.empty:
            continue
        frame = pd.DataFrame(
            {
                "a": rows["account_id"].to_numpy(),
                "v": vals.to_numpy(),
                "ts": rows["ts"].to_numpy(),
                "o": ords[rows.index].to_numpy(),
            },
            index=rows.index,
        )
        more = extra.get(level) if extra else None
        cols = list(more.columns) if more is not None else []
        if more is not None:
            frame = frame.join(more)
        last_idx = frame.sort_values(["ts", "o"], kind="mergesort").groupby(["a", "v"], sort=False).tail(1).index
        r: Any
        for r in frame.loc[last_idx].itertuples(index=False):
            st = out.setdefault(str(r.a), copy_profile(profiles.get(str(r.a), {})))
            bucket = st["seen"].setdefault(level, {})
            cur = bucket.get(r.v)
            if cur is None or pd.Timestamp(cur[0]) <= r.ts:
                bucket[r.v] = [
                    pd.Timestamp(r.ts).isoformat(),
                    int(r.o),
                    *(_plain(getattr(r, c)) for c in cols),
                ]
    # prune what can no longer make a value familiar
    for st in out.values():
        n = int(st.get("n", 0))
        for level, bucket in st["seen"].items():
            if not bucket:
                continue
            latest = max(pd.Timestamp(v[0]) for v in bucket.values())
            st["seen"][level] = {
                k: v
                for k, v in bucket.items()
                if latest - pd.Timestamp(v[0]) <= window or (history_logins > 0 and n - 1 - int(v[1]) < history_logins)
            }


def copy_profile(prof: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n": int(prof.get("n", 0)),
        "first": prof.get("first"),
        "seen": {lvl: {k: list(v) for k, v in b.items()} for lvl, b in prof.get("seen", {}).items()},
    }


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


class KnownValues:
    """The values each account used before a given login, for the evidence of flagged rows.

    Built once per scan (grouped positions), so the evidence of many flagged rows costs no pass
    over the whole batch each.
    """

    def __init__(
        self,
        profiles: Mapping[str, Mapping[str, Any]],
        level: str,
        rows: pd.DataFrame,
        vals: pd.Series,
        window_days: int,
        limit: int = 10,
    ) -> None:
        self.profiles = profiles
        self.level = level
        self.vals = vals.to_numpy()
        self.ts = rows["ts"].to_numpy()
        self.pos: dict[Any, np.ndarray] = {
            k: np.asarray(v) for k, v in rows.groupby("account_id", sort=False).indices.items()
        }
        self.index = {idx: i for i, idx in enumerate(rows.index)}
        self.window = pd.Timedelta(days=window_days)
        self.limit = limit

    def before(self, acct: str, idx: Any) -> list[str]:
        i = self.index[idx]
        ts = pd.Timestamp(self.ts[i])
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        prof = self.profiles.get(acct, {}).get("seen", {}).get(self.level, {})
        seen = {v for v, e in prof.items() if abs(ts - pd.Timestamp(e[0])) <= self.window}
        mine = self.pos.get(acct, np.array([], dtype=np.int64))
        seen.update(str(v) for v in self.vals[mine[mine < i]])
        return sorted(seen)[: self.limit]


def value_is_known(s: pd.Series) -> pd.Series:
    return s.notna() & (s.astype(str).str.strip().str.len() > 0)
