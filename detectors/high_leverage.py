"""High leverage and margin-ratio tiers before liquidation.

A finding when a position's leverage crosses ``max_leverage`` or its margin ratio (maintenance
margin / margin balance; liquidation at 1.0) enters a higher tier of ``margin_tiers`` -- one
finding per crossing, per account and symbol, not one per snapshot.  Falling back below a tier
re-arms it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch


class HighLeverage(Detector):
    name = "high_leverage"
    family = "leverage"
    table = "positions"
    required_columns = ("event_id", "account_id", "ts", "symbol", "leverage")
    optional_columns = ("margin_ratio", "notional_usd", "liquidation_price", "mark_price", "unrealized_pnl_usd")
    description = "Leverage above a threshold, or a margin ratio entering a liquidation-warning tier."
    params: ClassVar[Mapping[str, Param]] = {
        "max_leverage": Param(50.0, "Flag when a position's leverage reaches this value.", gt=1),
        "margin_tiers": Param((0.7, 0.8, 0.9), "Ascending margin-ratio tiers (liquidation at 1.0).", kind=list),
    }

    def _check_params(self) -> None:
        tiers = self.p["margin_tiers"]
        if not all(isinstance(t, int | float) and 0 < t < 1 for t in tiers) or list(tiers) != sorted(set(tiers)):
            raise ParameterError(
                "The 'margin_tiers' parameter of HighLeverage must be strictly ascending numbers in (0, 1). "
                f"Got {list(tiers)!r} instead."
            )
        self.p["margin_tiers"] = tuple(float(t) for t in tiers)

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        tiers = np.asarray(self.p["margin_tiers"])
        has_mr = batch.has_column(self.table, "margin_ratio")
        if not has_mr:
            result.skips.append(Skip(self.name, "column 'margin_ratio' absent: tiers not checked", len(df)))
        mr = df["margin_ratio"].astype("float64") if has_mr else pd.Series(np.nan, index=df.index)
        tier = pd.Series(np.searchsorted(tiers, mr.fillna(-1).to_numpy(), side="right"), index=df.index)
        lev = df["leverage"].astype("float64")
        bad = lev.isna()
        if bad.any():
            result.skips.append(Skip(self.name, "leverage unknown", int(bad.sum())))
        high = (lev >= self.p["max_leverage"]).astype(int)

        keys = [df["account_id"], df["symbol"].astype(str)]
        prev_tier = tier.groupby(keys, sort=False).shift(1)
        prev_high = high.groupby(keys, sort=False).shift(1)
        first = prev_tier.isna()
        if first.any():
            prof = [
                profiles.get(a, {}).get("symbols", {}).get(s, {})
                for a, s in zip(df.loc[first, "account_id"], df.loc[first, "symbol"].astype(str), strict=True)
            ]
            prev_tier.loc[first] = [p.get("tier", 0) for p in prof]
            prev_high.loc[first] = [p.get("high", 0) for p in prof]
        tier_up = tier > prev_tier.astype(int)
        lev_up = (high == 1) & (prev_high.astype(int) == 0)
        for idx in df.index[(tier_up | lev_up).to_numpy()]:
            row = df.loc[idx]
            t = int(tier[idx])
            kinds = []
            if tier_up[idx]:
                kinds.append(f"margin_tier_{t}")
            if lev_up[idx]:
                kinds.append("leverage")
            mr_v = None if pd.isna(mr[idx]) else float(mr[idx])
            score = max(mr_v or 0.0, min(1.0, float(lev[idx]) / (2 * self.p["max_leverage"])) if lev_up[idx] else 0)
            result.findings.append(
                self.finding(
                    row["account_id"], row["ts"], key=f"{row['event_id']}:{'+'.join(kinds)}",
                    kind="+".join(kinds), score=score, event_ids=[row["event_id"]],
                    evidence={
                        "symbol": row["symbol"], "leverage": float(lev[idx]), "margin_ratio": mr_v,
                        "tier": t, "tier_threshold": float(tiers[t - 1]) if t > 0 else None,
                        "max_leverage": self.p["max_leverage"],
                        "notional_usd": row.get("notional_usd"), "liquidation_price": row.get("liquidation_price"),
                        "mark_price": row.get("mark_price"), "unrealized_pnl_usd": row.get("unrealized_pnl_usd"),
                    },
                )
            )
        last = df.assign(_tier=tier, _high=high).groupby(keys, sort=False).tail(1)
        for _, row in last.iterrows():
            acct = str(row["account_id"])
            st = result.profiles.setdefault(acct, {"symbols": dict(profiles.get(acct, {}).get("symbols", {}))})
            st["symbols"][str(row["symbol"])] = {"tier": int(row["_tier"]), "high": int(row["_high"])}
        return result
