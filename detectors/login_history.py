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

:class:`History` reads the batch's profiles once into flat arrays (one Python step per stored
entry, none per login), answers every question with integer keys ``account x value`` and sorted
searches, and writes the profiles back from the same arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from detectors.batch import Batch
from detectors.columns import (
    NAT,
    cumcount,
    group_min,
    iso_to_ns,
    isoformat_utc,
    known_mask,
    last_in_group,
    previous_in_group,
    to_ns,
)
from detectors.sorting import stable_argsort


def successful(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["success"].fillna(False).astype(bool)]


def successful_in(batch: Batch, df: pd.DataFrame) -> pd.DataFrame:
    """:func:`successful` of one of the batch's frames, filtered once per batch: the login detectors
    all ask, and filtering every column of a large frame is not free.  Shared, so read-only (no
    detector writes to its frames)."""
    memo: dict[int, tuple[pd.DataFrame, int, pd.DataFrame]] = batch.__dict__.setdefault("_successful", {})
    hit = memo.get(id(df))
    if hit is None or hit[0] is not df or hit[1] != len(df):
        hit = memo[id(df)] = (df, len(df), successful(df))
    return hit[2]


def value_is_known(s: pd.Series) -> pd.Series:
    return pd.Series(known_mask(s), index=s.index)


def days_ns(days: float) -> int:
    return int(pd.Timedelta(days=days).value)


@dataclass(frozen=True)
class Level:
    """The rows of one level that carry a value: positions in the logins, and the values (str)."""

    rows: np.ndarray
    vals: np.ndarray
    extra: Mapping[str, np.ndarray] | None = None  # per-row fields stored after [ts, ordinal]


class History:
    """One scan's successful logins with what their accounts' profiles remember."""

    def __init__(self, ok: pd.DataFrame, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        self.ok = ok
        self.t = to_ns(ok["ts"]) if len(ok) else np.zeros(0, dtype=np.int64)
        code, uniq = pd.factorize(ok["account_id"])
        self.code = code.astype(np.int64)
        self.accounts = [str(a) for a in uniq]
        n_acc = len(self.accounts)
        prof = [profiles.get(a) or {} for a in self.accounts]
        self.n_prior = np.array([int(p.get("n", 0)) for p in prof], dtype=np.int64)
        self.first_iso: list[str | None] = [p.get("first") for p in prof]
        has_first = [i for i, f in enumerate(self.first_iso) if f is not None]
        self.first_prof = np.full(n_acc, NAT, dtype=np.int64)
        if has_first:
            self.first_prof[has_first] = iso_to_ns([str(self.first_iso[i]) for i in has_first])
        self.ords = self.n_prior[self.code] + cumcount(self.code)
        # every stored entry of these accounts, all levels, flat
        acct: list[int] = []
        level: list[str] = []
        val: list[str] = []
        iso: list[str] = []
        ordinal: list[int] = []
        self.e_entry: list[list[Any]] = []
        self.levels_of: list[list[str]] = []  # stored levels per account, in stored order (even empty)
        for i, p in enumerate(prof):
            seen = p.get("seen") or {}
            self.levels_of.append(list(seen))
            for lvl, bucket in seen.items():
                for v, e in bucket.items():
                    acct.append(i)
                    level.append(lvl)
                    val.append(v)
                    iso.append(e[0])
                    ordinal.append(int(e[1]))
                    self.e_entry.append(list(e))
        self.e_acct = np.array(acct, dtype=np.int64)
        self.e_level = np.array(level, dtype=object)
        self.e_val = np.array(val, dtype=object)
        self.e_t = iso_to_ns(iso)
        self.e_o = np.array(ordinal, dtype=np.int64)

    # -- learning period ------------------------------------------------------------------------
    def learned(self, min_logins: int, min_days: float) -> np.ndarray:
        """Rows whose account has ``min_logins`` earlier successful logins and whose first one is
        at least ``min_days`` old (the learning period, research b9)."""
        eligible = self.ords >= min_logins
        if min_days > 0 and len(self.t):
            batch_first = group_min(self.code, self.t, len(self.accounts), np.iinfo(np.int64).max)
            prof = self.first_prof
            first = np.where((prof != NAT) & (prof < batch_first), prof, batch_first)
            eligible &= (self.t - first[self.code]) >= days_ns(min_days)
        return eligible

    # -- the familiarity test -------------------------------------------------------------------
    def _keys(self, lvl: Level, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer keys ``account x value`` for the rows and for the stored entries of ``level``."""
        sel = np.flatnonzero(self.e_level == level) if len(self.e_level) else np.zeros(0, dtype=np.int64)
        vcode, vuniq = pd.factorize(np.concatenate([lvl.vals, self.e_val[sel]]).astype(object))
        nv = max(len(vuniq), 1)
        m = len(lvl.rows)
        key = self.code[lvl.rows] * nv + vcode[:m]
        pkey = self.e_acct[sel] * nv + vcode[m:]
        return key, pkey, sel

    def last_use(self, lvl: Level, level: str) -> tuple[np.ndarray, np.ndarray]:
        """Time (ns, NAT for never) and ordinal (NaN for never) of the previous successful login of
        the same account with the same value: the batch's previous row, else the profile."""
        key, pkey, sel = self._keys(lvl, level)
        m = len(key)
        prev_t = np.full(m, NAT, dtype=np.int64)
        prev_o = np.full(m, np.nan)
        if m == 0:
            return prev_t, prev_o
        prev = previous_in_group(key)
        has = prev >= 0
        prev_t[has] = self.t[lvl.rows[prev[has]]]
        prev_o[has] = self.ords[lvl.rows[prev[has]]]
        miss = np.flatnonzero(~has)
        if len(pkey) and len(miss):
            order = stable_argsort(pkey)
            spk = pkey[order]
            j = np.minimum(np.searchsorted(spk, key[miss]), len(spk) - 1)
            hit = spk[j] == key[miss]
            src = sel[order[j[hit]]]
            prev_t[miss[hit]] = self.e_t[src]
            prev_o[miss[hit]] = self.e_o[src]
        return prev_t, prev_o

    def familiar(self, lvl: Level, level: str, window_days: int, history_logins: int) -> np.ndarray:
        """Seen within the window (either side, for a late row) or within the last N successful logins."""
        prev_t, prev_o = self.last_use(lvl, level)
        known = prev_t != NAT
        t = self.t[lvl.rows]
        recent = np.zeros(len(t), dtype=bool)
        recent[known] = np.abs(t[known] - prev_t[known]) <= days_ns(window_days)
        if history_logins > 0:
            with np.errstate(invalid="ignore"):
                recent |= (self.ords[lvl.rows].astype(np.float64) - prev_o) <= history_logins
        return known & recent

    # -- evidence -------------------------------------------------------------------------------
    def known_before(self, lvl: Level, level: str, window_days: int, limit: int = 10) -> KnownBefore:
        return KnownBefore(self, lvl, level, days_ns(window_days), limit)

    def stored(self, acct: int, level: str) -> np.ndarray:
        """Positions of the stored entries of one account and level, in stored order."""
        if not hasattr(self, "_by_acct"):
            order = stable_argsort(self.e_acct)
            starts = np.searchsorted(self.e_acct[order], np.arange(len(self.accounts) + 1))
            self._by_acct = (order, starts)
        order, starts = self._by_acct
        mine = order[starts[acct] : starts[acct + 1]]
        return mine[self.e_level[mine] == level]

    # -- profiles out ---------------------------------------------------------------------------
    def update(self, seen: Mapping[str, Level], window_days: int, history_logins: int) -> dict[str, dict[str, Any]]:
        """The new profiles of the batch's accounts: stored entries merged with the batch's last use
        of every value, then pruned of what can no longer make a value familiar."""
        n_acc = len(self.accounts)
        n_new = self.n_prior + np.bincount(self.code, minlength=n_acc)
        batch_first = group_min(self.code, self.t, n_acc, np.iinfo(np.int64).max)
        later = (self.first_prof == NAT) | (self.first_prof > batch_first)
        first_new = isoformat_utc(batch_first[later])
        firsts = list(self.first_iso)
        for i, f in zip(np.flatnonzero(later).tolist(), first_new, strict=True):
            firsts[i] = f

        keep_stored = np.ones(len(self.e_acct), dtype=bool)
        parts_acct = [self.e_acct]
        parts_level = [self.e_level]
        parts_val = [self.e_val]
        parts_t = [self.e_t]
        parts_o = [self.e_o]
        entries: list[list[Any]] = list(self.e_entry)
        present: list[set[str]] = [set(lv) for lv in self.levels_of]
        order_of: list[list[str]] = [list(lv) for lv in self.levels_of]
        for level, lvl in seen.items():
            if len(lvl.rows) == 0:
                continue
            key, pkey, sel = self._keys(lvl, level)
            t = self.t[lvl.rows]
            o = self.ords[lvl.rows]
            last = last_in_group(key, t, o)
            lk = key[last]
            replace = np.ones(len(last), dtype=bool)
            if len(pkey):
                order = stable_argsort(pkey)
                spk = pkey[order]
                j = np.minimum(np.searchsorted(spk, lk), len(spk) - 1)
                hit = spk[j] == lk
                src = sel[order[j[hit]]]
                newer = self.e_t[src] <= t[last[hit]]
                keep_stored[src[newer]] = False
                replace[np.flatnonzero(hit)[~newer]] = False
            take = last[replace]
            isos = isoformat_utc(t[take])
            extra_cols = [] if lvl.extra is None else [np.asarray(v, dtype=object)[take] for v in lvl.extra.values()]
            o_take = o[take].tolist()
            if extra_cols:
                plain = [[_plain(x) for x in c.tolist()] for c in extra_cols]
                entries.extend([[iso, ordinal, *ex] for iso, ordinal, *ex in zip(isos, o_take, *plain, strict=True)])
            else:
                entries.extend([[iso, ordinal] for iso, ordinal in zip(isos, o_take, strict=True)])
            a_take = self.code[lvl.rows[take]]
            parts_acct.append(a_take)
            parts_level.append(np.full(len(take), level, dtype=object))
            parts_val.append(lvl.vals[take])
            parts_t.append(t[take])
            parts_o.append(o[take])
            for a in np.unique(self.code[lvl.rows]).tolist():
                if level not in present[a]:
                    present[a].add(level)
                    order_of[a].append(level)
        acct = np.concatenate(parts_acct)
        lev = np.concatenate(parts_level)
        val = np.concatenate(parts_val)
        t_all = np.concatenate(parts_t)
        o_all = np.concatenate(parts_o)
        alive = np.concatenate([keep_stored, np.ones(len(acct) - len(keep_stored), dtype=bool)])
        # prune: per account and level, what is neither within the window of the latest use nor
        # among the last N logins
        lcode, _ = pd.factorize(lev)
        grp = acct * max(int(lcode.max(initial=0)) + 1, 1) + lcode
        gcode, guniq = pd.factorize(grp[alive])
        latest = np.full(len(guniq), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, gcode, t_all[alive])
        full_latest = np.zeros(len(acct), dtype=np.int64)
        full_latest[alive] = latest[gcode]
        fresh = (full_latest - t_all) <= days_ns(window_days)
        if history_logins > 0:
            fresh |= (n_new[acct] - 1 - o_all) < history_logins
        alive &= fresh

        out: dict[str, dict[str, Any]] = {
            self.accounts[i]: {
                "n": int(n_new[i]),
                "first": firsts[i],
                "seen": {lv: {} for lv in order_of[i]},
            }
            for i in range(n_acc)
        }
        idx = np.flatnonzero(alive)
        idx = idx[stable_argsort(acct[idx])]
        names = self.accounts
        for i, lv, v, j in zip(acct[idx].tolist(), lev[idx].tolist(), val[idx].tolist(), idx.tolist(), strict=True):
            out[names[i]]["seen"][lv][v] = entries[j]
        return out


class KnownBefore:
    """The values an account used before a given login, for the evidence of flagged rows only."""

    def __init__(self, hist: History, lvl: Level, level: str, window: int, limit: int) -> None:
        self.hist = hist
        self.lvl = lvl
        self.level = level
        self.window = window
        self.limit = limit
        acct = hist.code[lvl.rows]
        self.order = stable_argsort(acct)
        self.starts = np.searchsorted(acct[self.order], np.arange(len(hist.accounts) + 1))

    def earlier(self, k: int) -> np.ndarray:
        """Positions (within the level's rows) of the same account's rows before row ``k``."""
        a = int(self.hist.code[self.lvl.rows[k]])
        mine = self.order[self.starts[a] : self.starts[a + 1]]
        return mine[mine < k]

    def __call__(self, k: int) -> list[str]:
        h = self.hist
        a = int(h.code[self.lvl.rows[k]])
        ts = int(h.t[self.lvl.rows[k]])
        st = h.stored(a, self.level)
        near = st[np.abs(h.e_t[st] - ts) <= self.window]
        seen = set(h.e_val[near].tolist())
        seen.update(self.lvl.vals[self.earlier(k)].tolist())  # already str
        return sorted(seen)[: self.limit]


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v
