"""Failed-login burst on one account (brute force), and a success right after one.

Research b8: Auth0's brute-force protection counts failed attempts per identifier (default
``max_attempts`` 10) and notifies the user.  Here a burst starts when the failures of one account
within ``window_minutes`` reach ``max_failures``; one finding per burst (the count has to drop
below the threshold before another can start), kind ``burst``.  A successful login while the
count is at or above the threshold is the worse case, kind ``success_after_burst``: someone may
have guessed the password.

The profile keeps the account's failures of the last window, so a burst that straddles two
batches is found once, exactly as in one scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch

_MAX_EVENT_IDS = 50


class FailedLogins(Detector):
    name = "failed_logins"
    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("ip", "country")
    description = "Many failed logins on one account within a short window (brute force), or a success after them."
    params: ClassVar[Mapping[str, Param]] = {
        "max_failures": Param(
            10, "Failures within the window that make a burst (Auth0 default: 10).", kind=int, ge=2, le=10_000
        ),
        "window_minutes": Param(60, "Length of the sliding window in minutes.", kind=int, ge=1, le=7 * 24 * 60),
        "flag_success": Param(True, "Also report a successful login during a burst.", kind=bool),
    }

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        unknown = df["success"].isna()
        if unknown.any():
            result.skips.append(Skip(self.name, "success unknown", int(unknown.sum())))
        rows = df[~unknown]
        if rows.empty:
            return result
        has_ip = batch.has_column(self.table, "ip")
        cur = pd.DataFrame(
            {
                "account_id": rows["account_id"],
                "ts": rows["ts"],
                "event_id": rows["event_id"],
                "fail": ~rows["success"].astype(bool),
                "ip": rows["ip"].astype("object") if has_ip else None,
                "hist": False,
            }
        )
        hist_rows = [
            (a, pd.Timestamp(ts), eid, True, ip, True)
            for a in cur["account_id"].unique()
            for ts, eid, ip in profiles.get(a, {}).get("fails", [])
        ]
        allrows = cur
        if hist_rows:
            hist = pd.DataFrame(hist_rows, columns=["account_id", "ts", "event_id", "fail", "ip", "hist"])
            hist["ts"] = pd.to_datetime(hist["ts"], utc=True)
            allrows = pd.concat([hist, cur], ignore_index=True)
        allrows = allrows.sort_values(["account_id", "ts", "event_id"], kind="mergesort").reset_index(drop=True)
        window = pd.Timedelta(minutes=self.p["window_minutes"])
        allrows["_f"] = allrows["fail"].astype("float64")
        # rows are sorted by account then time, and groupby(sort=False) keeps that order
        counts = allrows.groupby("account_id", sort=False).rolling(window, on="ts", closed="right")["_f"].sum()
        allrows["_count"] = counts.to_numpy()
        k = self.p["max_failures"]
        fails = allrows[allrows["fail"]]
        prev_count = fails.groupby("account_id", sort=False)["_count"].shift(1).fillna(0)
        burst = (fails["_count"] >= k) & (prev_count < k) & ~fails["hist"]
        flagged = [(i, "burst") for i in fails.index[burst.to_numpy()]]
        if self.p["flag_success"]:
            succ = (~allrows["fail"]) & (allrows["_count"] >= k) & ~allrows["hist"]
            flagged += [(i, "success_after_burst") for i in allrows.index[succ.to_numpy()]]
        for i, kind in sorted(flagged):
            result.findings.append(self._finding(allrows, i, kind, window))
        # profile: failures within the window of the account's latest attempt
        latest = allrows.groupby("account_id", sort=False)["ts"].transform("max")
        keep = allrows[allrows["fail"] & (allrows["ts"] > latest - window)]
        for a in allrows["account_id"].unique():
            result.profiles[str(a)] = {"fails": []}
        r: Any
        for r in keep.itertuples(index=False):
            result.profiles[str(r.account_id)]["fails"].append(
                [
                    pd.Timestamp(r.ts).isoformat(),
                    str(r.event_id),
                    None if r.ip is None or pd.isna(r.ip) else r.ip,
                ]
            )
        return result

    def _finding(self, allrows: pd.DataFrame, i: int, kind: str, window: pd.Timedelta) -> Any:
        row = allrows.loc[i]
        acct = str(row["account_id"])
        mine = allrows[
            (allrows["account_id"] == acct)
            & allrows["fail"]
            & (allrows["ts"] > row["ts"] - window)
            & (allrows.index <= i)
        ]
        ips = sorted({str(x) for x in mine["ip"] if x is not None and not pd.isna(x)})
        fail_ids = [str(e) for e in mine["event_id"]][-_MAX_EVENT_IDS:]
        ids = [*fail_ids, str(row["event_id"])] if kind == "success_after_burst" else fail_ids
        n = len(mine)
        score = min(1.0, 0.4 + 0.1 * n / self.p["max_failures"]) if kind == "burst" else 0.9
        return self.finding(
            acct,
            row["ts"],
            key=f"{row['event_id']}:{kind}",
            kind=kind,
            score=score,
            event_ids=ids,
            evidence={
                "failures": n,
                "max_failures": self.p["max_failures"],
                "window_minutes": self.p["window_minutes"],
                "first_failure_at": mine["ts"].min().isoformat(),
                "last_failure_at": mine["ts"].max().isoformat(),
                "distinct_ips": len(ips),
                "ips": ips[:10],
                "success_event_id": str(row["event_id"]) if kind == "success_after_burst" else None,
                "text": f"{n} failed logins in {self.p['window_minutes']} min from {len(ips)} IP address(es)"
                + (", then a successful login" if kind == "success_after_burst" else ""),
            },
        )
