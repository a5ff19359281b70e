"""High leverage, margin-ratio tiers before liquidation, and a sudden rise in leverage.

Per position (account and symbol), three kinds of finding:

* ``margin_tier_N``: the margin ratio (maintenance margin / margin balance; liquidation at 1.0)
  entered tier N of ``margin_tiers`` (e.g. 0.7 / 0.8 / 0.9).  This is a *liquidation warning*
  like Binance's ``MARGIN_CALL`` (research/fraud-anchors.md b14), not a takeover sign.
* ``leverage``: leverage reached ``max_leverage``.
* ``leverage_rise``: leverage reached ``rise_factor`` times the position's lowest leverage of the
  last ``rise_hours`` (and at least ``rise_min_leverage``): the "sudden leverage increase" the
  research lists as a behaviour change worth a question.

One finding per crossing, not one per snapshot, with *hysteresis*: a tier re-arms only after the
margin ratio falls below the tier minus ``tier_hysteresis``, and high leverage only after leverage
falls below ``max_leverage x (1 - leverage_hysteresis)``, so a position oscillating around a tier
does not re-fire.  Each tier is a set/reset latch (set at or above the tier, reset below tier minus
hysteresis, hold in between), computed vectorised by forward-filling the last set/reset event.

Warnings are never skipped (issue 13): a position first seen at or above a tier, or jumping over
several tiers between two snapshots, warns once at the highest tier reached (``margin_tier_N``
with ``previous_tier`` in the evidence); a tier re-arms only below the tier minus the hysteresis.
A position ends with a snapshot that shows it liquidated (margin ratio >= 1) or closed (notional
0): the next snapshot of the same symbol is a new position and is judged from tier 0, so a latch
left over from the last position can never swallow the next one's warning.

Profile (bounded): ``{"v": 1, "s": {symbol: {"tier", "high", "rise", "t", "r": [[ts, leverage],
...]}}}`` -- at most ``max_snapshots`` snapshots per symbol and the ``max_symbols`` most recently
updated symbols (defaults 32 and 50: at most ~80 KB, typically well under 2 KB).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.sequence import (
    NS_PER_HOUR,
    PROFILE_VERSION,
    Seq,
    build_seq,
    iso_at,
    iso_to_ns,
    keep_recent,
    ns_to_iso,
    per_account,
    range_min,
    records,
    state_of,
    ts_of,
    window_start,
)

SEP = "\x1f"


class HighLeverage(Detector):
    name = "high_leverage"
    family = "leverage"
    table = "positions"
    required_columns = ("event_id", "account_id", "ts", "symbol", "leverage")
    optional_columns = (
        "margin_ratio",
        "notional_usd",
        "liquidation_price",
        "mark_price",
        "unrealized_pnl_usd",
    )
    description = (
        "Leverage above a threshold, a margin ratio entering a liquidation-warning tier, "
        "or a sudden rise in leverage."
    )
    params: ClassVar[Mapping[str, Param]] = {
        "max_leverage": Param(50.0, "Report when a position's leverage reaches this value.", gt=1),
        "margin_tiers": Param(
            (0.7, 0.8, 0.9), "Ascending margin-ratio tiers (liquidation at 1.0).", kind=list
        ),
        "tier_hysteresis": Param(
            0.05, "A tier re-arms after the margin ratio falls this far below it.", ge=0, le=0.5
        ),
        "leverage_hysteresis": Param(
            0.2, "High leverage re-arms below max_leverage x (1 - this).", ge=0, le=0.9
        ),
        "rise_factor": Param(3.0, "Report a rise to this many times the lowest recent leverage.", gt=1),
        "rise_hours": Param(24.0, "How far back the lowest leverage is looked for.", gt=0, le=720),
        "rise_min_leverage": Param(10.0, "Ignore rises that end below this leverage.", ge=1),
        "max_snapshots": Param(
            32, "Profile bound: snapshots per symbol the rise looks back on.", kind=int, ge=2, le=1000
        ),
        "max_symbols": Param(50, "Profile bound: symbols remembered per account.", kind=int, ge=1, le=1000),
    }

    def _check_params(self) -> None:
        tiers = self.p["margin_tiers"]
        if not all(isinstance(t, int | float) and 0 < t < 1 for t in tiers) or list(tiers) != sorted(
            set(tiers)
        ):
            raise ParameterError(
                "The 'margin_tiers' parameter of HighLeverage must be strictly ascending numbers in (0, 1). "
                f"Got {list(tiers)!r} instead."
            )
        self.p["margin_tiers"] = tuple(float(t) for t in tiers)

    def scan(
        self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime
    ) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        lev_known = df["leverage"].notna()
        if not lev_known.all():
            result.skips.append(Skip(self.name, "leverage unknown", int((~lev_known).sum())))
        df = df[lev_known]
        if df.empty:
            return result
        has_mr = batch.has_column(self.table, "margin_ratio")
        if not has_mr:
            result.skips.append(Skip(self.name, "column 'margin_ratio' absent: tiers not checked", len(df)))
        a_code, a_uniq = pd.factorize(df["account_id"])
        s_code, s_uniq = pd.factorize(df["symbol"], use_na_sentinel=False)
        p_code, p_uniq = pd.factorize(a_code.astype(np.int64) * max(len(s_uniq), 1) + s_code)
        a_str = [str(a) for a in a_uniq]
        # "account<SEP>symbol" built once per position, not once per snapshot
        pair = np.array(
            [a_str[p // max(len(s_uniq), 1)] + SEP + str(s_uniq[p % max(len(s_uniq), 1)]) for p in p_uniq.tolist()],
            dtype=object,
        )
        keyed = df.assign(account_id=pair[p_code])
        states = {a: state_of(profiles, a) for a in a_str}
        k = self.p["max_snapshots"]
        hist = (
            (a + SEP + sym, it[0], "", (float(it[1]), np.nan, False))
            for a, st in states.items()
            for sym, s in st.get("s", {}).items()
            for it in s.get("r", [])
        )
        mr = df["margin_ratio"].astype("float64") if has_mr else pd.Series(np.nan, index=df.index)
        seq = build_seq(
            keyed,
            {
                "lev": df["leverage"].astype("float64").to_numpy(),
                "mr": mr.to_numpy(),
                "end": self._ended(df, batch),
            },
            hist,
            ("lev", "mr", "end"),
        )
        first = seq.first_of_group()
        group = np.cumsum(first) - 1
        group_state = [self._sym_state(states, str(key)) for key in seq.account[first]]

        def initial(field: str) -> np.ndarray:
            return np.array([int(s.get(field, 0)) for s in group_state], dtype=np.int64)[group]

        lev = seq.cols["lev"]
        mrv = seq.cols["mr"]

        tiers = np.asarray(self.p["margin_tiers"])
        # a liquidated (margin ratio >= 1) or closed (notional 0) position ends: the next snapshot
        # of the symbol is a new position, judged from tier 0 (first seen), whatever was latched
        after_end = seq.prev(seq.cols["end"].astype(bool), False)
        life = np.cumsum(seq.first_of_group() | after_end) - 1
        first_life = (pd.Series(after_end.astype(np.int64)).groupby(seq.code).cumsum() == 0).to_numpy()
        init_tier = initial("tier") * first_life
        tier = np.zeros(len(seq), dtype=np.int64)
        for n, thr in enumerate(tiers, start=1):
            tier += _latch(seq, life, mrv >= thr, (mrv < thr - self.p["tier_hysteresis"]), init_tier >= n)
        hi_thr = self.p["max_leverage"]
        init_high = initial("high").astype(bool) & first_life
        high = _latch(seq, life, lev >= hi_thr, lev < hi_thr * (1 - self.p["leverage_hysteresis"]), init_high)

        r_ns = int(self.p["rise_hours"] * NS_PER_HOUR)
        idx = np.arange(len(seq))
        lo = np.maximum(window_start(seq.code, seq.t, r_ns), idx - k)
        low = range_min(lev, lo, idx, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            rising = (lev >= self.p["rise_factor"] * low) & (lev >= self.p["rise_min_leverage"])
        init_rise = initial("rise").astype(bool)

        prev_new = seq.prev(seq.new, False)
        from_prof = seq.new & ~prev_new
        prev_tier = np.where(from_prof, init_tier, seq.prev(tier, 0))
        prev_high = np.where(from_prof, init_high, seq.prev(high, False))
        prev_tier[after_end] = 0
        prev_high[after_end] = False
        prev_rise = np.where(from_prof, init_rise, seq.prev(rising, False))
        fires = {
            "tier": seq.new & (tier > prev_tier),
            "leverage": seq.new & high & ~prev_high,
            "leverage_rise": seq.new & rising & ~prev_rise,
        }
        extra = ("symbol", "notional_usd", "liquidation_price", "mark_price", "unrealized_pnl_usd")
        for kind, mask in fires.items():
            hit = np.flatnonzero(mask)
            for i, row in zip(hit, records(df, seq.row[hit], extra), strict=True):
                self._emit(result, row, seq, int(i), kind, int(tier[i]), int(prev_tier[i]), low[i])
        result.findings.sort(key=lambda f: (f.ts, f.key))
        self._profiles(result, seq, states, tier, high, rising)
        return result

    @staticmethod
    def _ended(df: pd.DataFrame, batch: Batch) -> np.ndarray:
        """Snapshots after which the position is gone: liquidated (margin ratio >= 1) or closed
        (notional 0), where those columns are given."""
        end = np.zeros(len(df), dtype=bool)
        if batch.has_column("positions", "margin_ratio"):
            end |= (df["margin_ratio"].astype("float64") >= 1.0).to_numpy()
        if batch.has_column("positions", "notional_usd"):
            end |= (df["notional_usd"].astype("float64") == 0).to_numpy()
        return end

    @staticmethod
    def _sym_state(states: Mapping[str, Mapping[str, Any]], key: str) -> Mapping[str, Any]:
        acct, sym = key.split(SEP, 1)
        s: Mapping[str, Any] = states.get(acct, {}).get("s", {}).get(sym, {})
        return s

    def _emit(
        self,
        result: DetectorResult,
        row: Mapping[str, Any],
        seq: Seq,
        i: int,
        kind: str,
        tier: int,
        prev_tier: int,
        low: float,
    ) -> None:
        tiers = self.p["margin_tiers"]
        lev = float(seq.cols["lev"][i])
        mr = seq.cols["mr"][i]
        mr_v = None if np.isnan(mr) else float(mr)
        if kind == "tier":
            kind = f"margin_tier_{tier}"
            score = mr_v or 0.0
        elif kind == "leverage":
            score = min(1.0, lev / (2 * self.p["max_leverage"]))
        else:
            score = min(1.0, 0.4 + 0.1 * lev / low) if low > 0 else 0.5
        acct = str(seq.account[i]).split(SEP, 1)[0]
        result.findings.append(
            self.finding(
                acct,
                ts_of(seq.t[i]),
                key=f"{seq.eid[i]}:{kind}",
                kind=kind,
                score=score,
                event_ids=[seq.eid[i]],
                evidence={
                    "symbol": row["symbol"],
                    "leverage": lev,
                    "margin_ratio": mr_v,
                    "tier": tier,
                    "previous_tier": prev_tier,
                    "tier_threshold": float(tiers[tier - 1]) if tier > 0 else None,
                    "tiers": list(tiers),
                    "distance_to_liquidation": None if mr_v is None else round(1.0 - mr_v, 4),
                    "max_leverage": self.p["max_leverage"],
                    "rise_from_leverage": None if kind != "leverage_rise" else float(low),
                    "rise_hours": self.p["rise_hours"] if kind == "leverage_rise" else None,
                    "notional_usd": row.get("notional_usd"),
                    "liquidation_price": row.get("liquidation_price"),
                    "mark_price": row.get("mark_price"),
                    "unrealized_pnl_usd": row.get("unrealized_pnl_usd"),
                },
            )
        )

    def _profiles(
        self,
        result: DetectorResult,
        seq: Seq,
        states: Mapping[str, Mapping[str, Any]],
        tier: np.ndarray,
        high: np.ndarray,
        rising: np.ndarray,
    ) -> None:
        r_ns = int(self.p["rise_hours"] * NS_PER_HOUR)
        keep = keep_recent(seq, r_ns, self.p["max_snapshots"])
        snaps = per_account(seq, keep, [iso_at(seq.t, keep), seq.cols["lev"]])
        last = np.flatnonzero(seq.last_of_group())
        last_iso = dict(zip(last.tolist(), ns_to_iso(seq.t[last]), strict=True))
        fresh: dict[str, dict[str, dict[str, Any]]] = {}
        for i in last:
            acct, sym = str(seq.account[i]).split(SEP, 1)
            old = self._sym_state(states, str(seq.account[i]))
            newest_new = seq.new[i]
            ended = bool(seq.cols["end"][i])
            fresh.setdefault(acct, {})[sym] = {
                "tier": (0 if ended else int(tier[i])) if newest_new else int(old.get("tier", 0)),
                "high": (0 if ended else int(high[i])) if newest_new else int(old.get("high", 0)),
                "rise": int(rising[i]) if newest_new else int(old.get("rise", 0)),
                "t": last_iso[int(i)],
                "r": snaps.get(str(seq.account[i]), []),
            }
        for acct, syms in fresh.items():
            merged = {**states.get(acct, {}).get("s", {}), **syms}
            if len(merged) > self.p["max_symbols"]:
                order = sorted(merged, key=lambda s: (iso_to_ns([merged[s].get("t", "1970-01-01")])[0], s))
                merged = {s: merged[s] for s in order[-self.p["max_symbols"] :]}
            result.profiles[acct] = {"v": PROFILE_VERSION, "s": merged}


def _latch(seq: Seq, life: np.ndarray, set_: np.ndarray, reset: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """A set/reset latch per group: on where set, off where reset, else the previous state."""
    ev = np.where(set_, 1.0, np.where(reset, 0.0, np.nan))
    ev[~seq.new] = np.nan  # history rows carry no margin information: hold the profile's state
    filled = pd.Series(ev).groupby(life).ffill().to_numpy()
    out = np.where(np.isnan(filled), initial.astype(np.float64), filled)
    return out.astype(bool)
