"""Per-account value counts behind the statistical login risk (:mod:`detectors.login_risk`).

Profile shape (unchanged)::

    {"total": 42,                                  # successful logins seen
     "n": {"ip": 40, "ua": 42, "device": 42},      # logins where the feature was known
     "c": {"ip": {"203.0.113.9": [12, "2024-01-02T..."]}, ...}}   # value -> [uses, first use]

:class:`Counts` reads the batch's profiles once into flat arrays, answers "how often and since
when has this account used this value before this login" for every row with integer keys and
sorted searches, and writes the profiles back from the same arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import cumcount, iso_to_ns, isoformat_utc, to_ns
from detectors.sorting import stable_argsort


def group_cumsum_before(code: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, the sum of ``k`` over the earlier rows (array order) with the same code."""
    if len(code) == 0:
        return np.zeros(0, dtype=np.int64)
    c = pd.Series(k.astype(np.int64)).groupby(code, sort=False).cumsum().to_numpy()
    return np.asarray(c - k, dtype=np.int64)


class Counts:
    """One scan's successful logins with their accounts' value counts."""

    def __init__(self, ok: pd.DataFrame, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        self.t = to_ns(ok["ts"]) if len(ok) else np.zeros(0, dtype=np.int64)
        code, uniq = pd.factorize(ok["account_id"])
        self.code = code.astype(np.int64)
        self.accounts = [str(a) for a in uniq]
        self.prof = [profiles.get(a) or {} for a in self.accounts]
        self.total_prior = np.array([int(p.get("total", 0)) for p in self.prof], dtype=np.int64)
        acct: list[int] = []
        level: list[str] = []
        val: list[str] = []
        cnt: list[int] = []
        first: list[str] = []
        for i, p in enumerate(self.prof):
            for lvl, bucket in (p.get("c") or {}).items():
                for v, e in bucket.items():
                    acct.append(i)
                    level.append(lvl)
                    val.append(v)
                    cnt.append(int(e[0]))
                    first.append(e[1])
        self.e_acct = np.array(acct, dtype=np.int64)
        self.e_level = np.array(level, dtype=object)
        self.e_val = np.array(val, dtype=object)
        self.e_count = np.array(cnt, dtype=np.int64)
        self.e_first_iso = first
        self.e_first = iso_to_ns(first)

    def known(self, vals: np.ndarray) -> np.ndarray:
        """Where a level has a value (computed once per level array: object ``isna`` is not free)."""
        memo = self.__dict__.setdefault("_known", {})
        hit = memo.get(id(vals))
        if hit is None or hit[0] is not vals:
            hit = memo[id(vals)] = (vals, ~pd.isna(vals))
        return hit[1]  # type: ignore[no-any-return]

    def n_prior(self, feat: str, known: np.ndarray) -> np.ndarray:
        """Earlier logins of the account where the feature was known (profile + batch)."""
        base = np.array([int((p.get("n") or {}).get(feat, 0)) for p in self.prof], dtype=np.int64)
        k = known.astype(np.int64)
        return (base[self.code] + group_cumsum_before(self.code, k)).astype(np.float64)

    def _keys(self, vals: np.ndarray, lvl: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer keys ``account x value`` of the rows and of the stored entries (computed once
        per level: the score and the profile update share them)."""
        memo = self.__dict__.setdefault("_memo", {})
        if lvl in memo and memo[lvl][0] is vals:
            return memo[lvl][1]  # type: ignore[no-any-return]
        memo[lvl] = (vals, self._compute_keys(vals, lvl))
        return memo[lvl][1]  # type: ignore[no-any-return]

    def _compute_keys(self, vals: np.ndarray, lvl: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sel = np.flatnonzero(self.e_level == lvl) if len(self.e_level) else np.zeros(0, dtype=np.int64)
        filled = np.where(self.known(vals), vals, "\x00").astype(object)
        vcode, vuniq = pd.factorize(np.concatenate([filled, self.e_val[sel]]).astype(object))
        nv = max(len(vuniq), 1)
        m = len(vals)
        return self.code * nv + vcode[:m], self.e_acct[sel] * nv + vcode[m:], sel

    @staticmethod
    def _lookup(pkey: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``keys`` found among ``pkey``, their positions in ``pkey``)."""
        if len(pkey) == 0 or len(keys) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        order = stable_argsort(pkey)
        spk = pkey[order]
        j = np.minimum(np.searchsorted(spk, keys), len(spk) - 1)
        hit = spk[j] == keys
        return np.flatnonzero(hit), order[j[hit]]

    def prior_count(self, vals: np.ndarray, lvl: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Earlier logins of the account with the same value, distinct values seen before, and
        when the value was first used (ns)."""
        has = self.known(vals)
        key, pkey, sel = self._keys(vals, lvl)
        in_batch = cumcount(key)
        kcode, kuniq = pd.factorize(key)
        kfirst = np.full(len(kuniq), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(kfirst, kcode, self.t)
        first = kfirst[kcode]
        prior = np.zeros(len(key), dtype=np.int64)
        at, src = self._lookup(pkey, key)
        prior[at] = self.e_count[sel[src]]
        first[at] = self.e_first[sel[src]]
        count = np.where(has, prior + in_batch, 0).astype(np.float64)
        new = (has & (count == 0)).astype(np.int64)
        base = np.bincount(self.e_acct[sel], minlength=len(self.accounts)) if len(sel) else np.zeros(
            len(self.accounts), dtype=np.int64
        )
        distinct = base[self.code] + group_cumsum_before(self.code, new)
        return count, distinct.astype(np.float64), first

    def update(self, levels: Mapping[str, np.ndarray], tops: Mapping[str, str], cap: int) -> dict[str, dict[str, Any]]:
        """The new profiles: totals, per-feature known counts (``tops``: feature -> its top level)
        and value counts merged, each level capped at the ``cap`` most used values."""
        n_acc = len(self.accounts)
        rows = np.bincount(self.code, minlength=n_acc)
        out: dict[str, dict[str, Any]] = {}
        for i, a in enumerate(self.accounts):
            p = self.prof[i]
            out[a] = {
                "total": int(self.total_prior[i]) + int(rows[i]),
                "n": dict(p.get("n") or {}),
                "c": {lvl: {} for lvl in (p.get("c") or {})},
            }
        for feat, top in tops.items():
            known = np.bincount(self.code, weights=self.known(levels[top]).astype(np.float64), minlength=n_acc)
            for a, k in zip(self.accounts, known.tolist(), strict=True):
                n_of = out[a]["n"]
                n_of[feat] = n_of.get(feat, 0) + int(k)
        entries: list[list[Any]] = [[c, f] for c, f in zip(self.e_count.tolist(), self.e_first_iso, strict=True)]
        alive = np.ones(len(entries), dtype=bool)
        accts = [self.e_acct]
        lvls = [self.e_level]
        vals_all = [self.e_val]
        for lvl, vals in levels.items():
            has = np.flatnonzero(self.known(vals))
            if len(has) == 0:
                continue
            key, pkey, sel = self._keys(vals, lvl)
            kcode, kuniq = pd.factorize(key[has])
            size = np.bincount(kcode)
            first = np.full(len(kuniq), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first, kcode, self.t[has])
            rep = np.zeros(len(kuniq), dtype=np.int64)
            rep[kcode[::-1]] = has[::-1]  # first row of each key
            at, src = self._lookup(pkey, kuniq)
            old = sel[src]
            size_total = size.copy()
            size_total[at] += self.e_count[old]
            first[at] = np.minimum(first[at], self.e_first[old])
            alive[old] = False
            isos = isoformat_utc(first)
            entries += [[c, f] for c, f in zip(size_total.tolist(), isos, strict=True)]
            accts.append(self.code[rep])
            lvls.append(np.full(len(kuniq), lvl, dtype=object))
            vals_all.append(vals[rep])
            for i in np.unique(self.code[has]).tolist():
                out[self.accounts[i]]["c"].setdefault(lvl, {})
        acct = np.concatenate(accts)
        lev = np.concatenate(lvls)
        val = np.concatenate(vals_all)
        alive = np.concatenate([alive, np.ones(len(acct) - len(alive), dtype=bool)])
        idx = np.flatnonzero(alive)
        idx = idx[stable_argsort(acct[idx])]
        names = self.accounts
        for i, lv, v, j in zip(acct[idx].tolist(), lev[idx].tolist(), val[idx].tolist(), idx.tolist(), strict=True):
            out[names[i]]["c"][lv][v] = entries[j]
        for st in out.values():
            for lv, bucket in st["c"].items():
                if len(bucket) > cap:
                    st["c"][lv] = dict(sorted(bucket.items(), key=lambda kv: (-kv[1][0], kv[0]))[:cap])
        return out
