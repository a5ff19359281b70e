"""Large withdrawal: above an absolute USD amount, a multiple of the account's own history, or --
while the account has no history yet -- above a lower cold-start amount.

Marble's documented pattern (research/fraud-anchors.md, transaction detectors): flag when
``amount_usd >= multiple x mean(earlier withdrawals)``.  A mean of one or two withdrawals says
little, so the relative check waits for ``min_history`` earlier withdrawals.  Until then an
account is in *cold start*: new accounts and first withdrawals are exactly where takeovers and
mule accounts cash out, so a withdrawal of ``cold_start_usd`` or more is reported as
``cold_start`` (with the account's age when ``accounts.created_at`` is known) instead of going
unjudged.  The absolute check applies from the first withdrawal.

Baseline: the mean of the last ``max_history`` withdrawals within ``history_days`` before this one
(in ``(ts, event_id)`` order).  Profile (bounded): ``{"v": 1, "w": [[ts, event_id, usd_cents],
...]}`` holding at most ``max_history`` withdrawals (default 50, at most 500: ~3 KB at the
default), the ones within ``history_days`` of the account's latest withdrawal.
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
    NS_PER_DAY,
    PROFILE_VERSION,
    build_seq,
    iso_at,
    keep_recent,
    per_account,
    records,
    state_of,
    to_cents,
    to_ns,
    ts_of,
    unique_str,
    window_sums,
)

USD_ASSETS = frozenset({"USD", "USDT", "USDC", "BUSD", "DAI", "FDUSD", "TUSD", "USDP"})
OUT_KINDS = ("withdrawal", "transfer_out")


def usd_amounts(df: pd.DataFrame, has_usd: bool) -> pd.Series:
    """``amount_usd`` where given, else the amount of a USD-pegged asset, else NaN."""
    base = df["amount_usd"].astype("float64") if has_usd else pd.Series(np.nan, index=df.index)
    codes, assets = pd.factorize(df["asset"])  # upper-case each distinct asset once, not each row
    usd_codes = [i for i, a in enumerate(assets) if str(a).upper() in USD_ASSETS]
    pegged = pd.Series(np.isin(codes, usd_codes), index=df.index)
    return base.where(base.notna(), df["amount"].astype("float64").where(pegged))


def priced(df: pd.DataFrame, batch: Batch, table: str, name: str, result: DetectorResult) -> pd.DataFrame:
    """Rows with a USD value (column ``_usd``); the rest are counted as a skip, never guessed."""
    usd = usd_amounts(df, batch.has_column(table, "amount_usd"))
    unknown = usd.isna()
    if unknown.any():
        why = (
            "amount_usd missing for a non-USD asset"
            if batch.has_column(table, "amount_usd")
            else ("column 'amount_usd' absent: non-USD assets not valued")
        )
        result.skips.append(Skip(name, why, int(unknown.sum())))
    return df.assign(_usd=usd)[~unknown]


def account_created(batch: Batch) -> dict[str, int]:
    """account_id -> created_at (ns) from the accounts table, where known."""
    acc = batch.get("accounts")
    if acc is None or not batch.has_column("accounts", "created_at"):
        return {}
    known = acc[acc["created_at"].notna()]
    if known.empty:
        return {}
    return dict(zip(known["account_id"].astype(str), to_ns(known["created_at"]).tolist(), strict=True))


class LargeWithdrawal(Detector):
    name = "large_withdrawal"
    family = "transfer"
    table = "transactions"
    extra_tables = ("accounts",)
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd", "address", "network")
    description = (
        "A withdrawal above an absolute USD amount, a multiple of the account's usual withdrawals, "
        "or a cold-start amount while the account has no history."
    )
    params: ClassVar[Mapping[str, Param]] = {
        "absolute_usd": Param(10_000.0, "Flag every withdrawal at or above this USD value.", gt=0),
        "multiple": Param(5.0, "Flag a withdrawal this many times the account's mean withdrawal.", gt=1),
        "history_days": Param(60, "Days of withdrawals that form the account's mean.", kind=int, ge=1, le=3650),
        "min_history": Param(
            3, "Earlier withdrawals needed before the relative check applies.", kind=int, ge=1, le=100
        ),
        "max_history": Param(
            50, "At most this many recent withdrawals form the mean (profile bound).", kind=int, ge=1, le=500
        ),
        "min_relative_usd": Param(1_000.0, "The relative check ignores withdrawals below this USD value.", ge=0),
        "cold_start_usd": Param(3_000.0, "Before min_history withdrawals, flag at or above this USD value.", gt=0),
        "new_account_days": Param(
            7, "An account younger than this is new (needs accounts.created_at).", kind=int, ge=0, le=365
        ),
        "kinds": Param(("withdrawal",), "Transaction kinds that count as withdrawals.", kind=list, choices=OUT_KINDS),
    }

    def _check_params(self) -> None:
        self._require_not_above("min_relative_usd", "absolute_usd")
        self._require_not_above("cold_start_usd", "absolute_usd")
        self._require_not_above("min_history", "max_history")
        if not self.p["kinds"]:
            raise ParameterError("The 'kinds' parameter of LargeWithdrawal must name at least one kind.")

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        wd = df[df["kind"].isin(self.p["kinds"])]
        if wd.empty:
            return result
        wd = priced(wd, batch, self.table, self.name, result)
        if wd.empty:
            return result
        horizon = self.p["history_days"] * NS_PER_DAY
        k = self.p["max_history"]
        hist = (
            (acct, it[0], it[1], (int(it[2]),))
            for acct in unique_str(wd["account_id"])
            for it in state_of(profiles, acct).get("w", [])
        )
        seq = build_seq(wd, {"cents": to_cents(wd["_usd"].to_numpy())}, hist, ("cents",))
        cents = seq.cols["cents"]
        win = window_sums(seq, np.ones(len(seq), dtype=bool), cents, horizon, k, inclusive=False)
        count = win.count
        mean_usd = np.where(count > 0, win.total / np.maximum(count, 1) / 100.0, np.nan)
        usd = cents / 100.0

        absolute = usd >= self.p["absolute_usd"]
        warm = count >= self.p["min_history"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(mean_usd > 0, usd / mean_usd, np.nan)
        relative = warm & (usd >= self.p["min_relative_usd"]) & (ratio >= self.p["multiple"])
        cold = ~warm & (usd >= self.p["cold_start_usd"])
        flag = seq.new & (absolute | relative | cold)

        created = account_created(batch)
        flagged = np.flatnonzero(flag)
        rows = records(wd, seq.row[flagged], ("amount", "asset", "address", "network"))
        for i, row in zip(flagged, rows, strict=True):
            acct = str(seq.account[i])
            reasons = [
                name
                for name, hit in (
                    ("absolute", absolute[i]),
                    ("relative", relative[i]),
                    ("cold_start", cold[i]),
                )
                if hit
            ]
            age_days = None
            if acct in created:
                age_days = round((int(seq.t[i]) - created[acct]) / NS_PER_DAY, 2)
            new_account = age_days is not None and age_days < self.p["new_account_days"]
            r = None if np.isnan(ratio[i]) else float(ratio[i])
            score = max(
                min(1.0, 0.5 + 0.5 * usd[i] / (4 * self.p["absolute_usd"])) if absolute[i] else 0.0,
                min(1.0, 0.4 + 0.05 * (r or 0.0)) if relative[i] else 0.0,
                min(0.8, 0.3 + 0.3 * usd[i] / self.p["absolute_usd"] + (0.2 if new_account else 0.0))
                if cold[i]
                else 0.0,
            )
            result.findings.append(
                self.finding(
                    acct,
                    ts_of(seq.t[i]),
                    key=str(seq.eid[i]),
                    kind="+".join(reasons),
                    score=score,
                    event_ids=[seq.eid[i]],
                    evidence={
                        "amount": row["amount"],
                        "asset": row["asset"],
                        "amount_usd": round(float(usd[i]), 2),
                        "address": row.get("address"),
                        "network": row.get("network"),
                        "threshold_usd": self.p["absolute_usd"],
                        "cold_start_usd": self.p["cold_start_usd"] if cold[i] else None,
                        "baseline_mean_usd": None if np.isnan(mean_usd[i]) else round(float(mean_usd[i]), 2),
                        "multiple_of_baseline": None if r is None else round(r, 2),
                        "history_count": int(count[i]),
                        "history_days": self.p["history_days"],
                        "no_recent_withdrawals": bool(count[i] == 0),
                        "account_age_days": age_days,
                        "new_account": new_account,
                        "reasons": reasons,
                    },
                )
            )
        keep = keep_recent(seq, horizon, k)
        items = per_account(seq, keep, [iso_at(seq.t, keep), seq.eid, cents])
        for acct in seq.account[seq.first_of_group()]:
            result.profiles.setdefault(str(acct), {"v": PROFILE_VERSION, "w": items.get(str(acct), [])})
        return result
