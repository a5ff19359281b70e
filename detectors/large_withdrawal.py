"""Large withdrawal: above an absolute USD amount, or a multiple of the account's own history.

Marble's documented pattern (research/fraud-anchors.md, transaction detectors): flag when
``amount_usd > multiple x mean(withdrawals over history_days)``.  The relative check needs
``min_history`` earlier withdrawals; the absolute check applies from the first withdrawal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch

USD_ASSETS = frozenset({"USD", "USDT", "USDC", "BUSD", "DAI", "FDUSD", "TUSD", "USDP"})


def usd_amounts(df: pd.DataFrame, has_usd: bool) -> pd.Series:
    """``amount_usd`` where given, else the amount of a USD-pegged asset, else NaN."""
    base = df["amount_usd"].astype("float64") if has_usd else pd.Series(np.nan, index=df.index)
    pegged = df["asset"].astype(str).str.upper().isin(USD_ASSETS)
    return base.where(base.notna(), df["amount"].astype("float64").where(pegged))


class LargeWithdrawal(Detector):
    name = "large_withdrawal"
    family = "transfer"
    table = "transactions"
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd", "address", "network")
    description = "A withdrawal above an absolute USD amount or a multiple of the account's usual withdrawals."
    params: ClassVar[Mapping[str, Param]] = {
        "absolute_usd": Param(10_000.0, "Flag every withdrawal at or above this USD value.", gt=0),
        "multiple": Param(5.0, "Flag a withdrawal this many times the account's mean withdrawal.", gt=1),
        "history_days": Param(60, "Days of withdrawals that form the account's mean.", kind=int, ge=1, le=3650),
        "min_history": Param(3, "Earlier withdrawals needed before the relative check applies.",
                             kind=int, ge=1, le=1000),
        "min_relative_usd": Param(1_000.0, "The relative check ignores withdrawals below this USD value.", ge=0),
    }

    def _check_params(self) -> None:
        if self.p["min_relative_usd"] > self.p["absolute_usd"]:
            from detectors.base import ParameterError

            raise ParameterError(
                "The 'min_relative_usd' parameter of LargeWithdrawal must not exceed 'absolute_usd'. "
                f"Got {self.p['min_relative_usd']:g} > {self.p['absolute_usd']:g}."
            )

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        wd = df[df["kind"] == "withdrawal"]
        if wd.empty:
            return result
        usd = usd_amounts(wd, batch.has_column(self.table, "amount_usd"))
        unknown = usd.isna()
        if unknown.any():
            reason = "amount_usd missing for a non-USD asset"
            result.skips.append(Skip(self.name, reason, int(unknown.sum())))
        wd = wd.assign(_usd=usd)[~unknown]
        if wd.empty:
            return result
        horizon = pd.Timedelta(days=self.p["history_days"])

        # history rows from profiles, then batch rows; rolling mean over [ts - horizon, ts)
        hist_rows = []
        for acct in wd["account_id"].unique():
            for ts, amt in profiles.get(acct, {}).get("recent", []):
                hist_rows.append((acct, pd.Timestamp(ts), float(amt)))
        hist = pd.DataFrame(hist_rows, columns=["account_id", "ts", "_usd"])
        hist["_hist"] = True
        cur = wd[["account_id", "ts", "_usd"]].copy()
        cur["_hist"] = False
        allrows = pd.concat([hist, cur]) if len(hist) else cur
        allrows["ts"] = pd.to_datetime(allrows["ts"], utc=True)
        allrows = allrows.sort_values(["account_id", "ts"], kind="mergesort")
        roll = allrows.groupby("account_id", sort=False).rolling(horizon, on="ts", closed="left")["_usd"]
        means = roll.mean().reset_index(level=0, drop=True)
        counts = roll.count().reset_index(level=0, drop=True)
        allrows["_mean"] = means.to_numpy()
        allrows["_count"] = counts.to_numpy()
        mine = allrows[~allrows["_hist"]]
        wd = wd.assign(_mean=mine["_mean"].reindex(wd.index), _count=mine["_count"].reindex(wd.index))
        wd["_count"] = wd["_count"].fillna(0)

        absolute = wd["_usd"] >= self.p["absolute_usd"]
        rel_ok = (wd["_count"] >= self.p["min_history"]) & (wd["_usd"] >= self.p["min_relative_usd"])
        ratio = wd["_usd"] / wd["_mean"].where(wd["_mean"] > 0)
        relative = rel_ok & (ratio >= self.p["multiple"])
        for idx in wd.index[(absolute | relative).to_numpy()]:
            row = wd.loc[idx]
            kinds = [k for k, hit in (("absolute", absolute[idx]), ("relative", relative[idx])) if hit]
            r = float(ratio[idx]) if pd.notna(ratio[idx]) else None
            score = max(
                min(1.0, 0.5 + 0.5 * row["_usd"] / (4 * self.p["absolute_usd"])) if absolute[idx] else 0.0,
                min(1.0, 0.4 + 0.05 * (r or 0)) if relative[idx] else 0.0,
            )
            result.findings.append(
                self.finding(
                    row["account_id"], row["ts"], key=str(row["event_id"]), kind="+".join(kinds), score=score,
                    event_ids=[row["event_id"]],
                    evidence={
                        "amount": row["amount"], "asset": row["asset"], "amount_usd": round(row["_usd"], 2),
                        "address": row.get("address"), "network": row.get("network"),
                        "threshold_usd": self.p["absolute_usd"],
                        "baseline_mean_usd": None if pd.isna(row["_mean"]) else round(row["_mean"], 2),
                        "multiple_of_baseline": None if r is None else round(r, 2),
                        "history_count": int(row["_count"]), "history_days": self.p["history_days"],
                        "reasons": kinds,
                    },
                )
            )
        # profile: withdrawals within the horizon of the latest one, per account
        for acct, grp in allrows.groupby("account_id", sort=False):
            latest = grp["ts"].max()
            keep = grp[grp["ts"] >= latest - horizon]
            result.profiles[str(acct)] = {
                "recent": [[t.isoformat(), round(float(a), 6)] for t, a in zip(keep["ts"], keep["_usd"], strict=True)]
            }
        return result
