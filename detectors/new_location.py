"""New country / new city: a successful login from a place the account has not used lately.

Okta's ANOMALOUS_LOCATION and Entra's "new country" (research/fraud-anchors.md b1): a value is
familiar when a successful login of the same account used it within ``window_days`` before
(or after, for a late row) this login.  Accounts still in their learning period
(fewer than ``min_history_logins`` earlier successful logins) are not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch

_LEVEL_COLUMN = {"country": "country", "city": "city"}
_LEVEL_SCORE = {"country": 0.7, "city": 0.4}


class NewLocation(Detector):
    name = "new_location"
    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("country", "city", "ip", "device_id", "lat", "lon")
    description = "A successful login from a country (or city) not used by the account within the window."
    params: ClassVar[Mapping[str, Param]] = {
        "levels": Param(("country",), "Which levels to check: country, city.", kind=list,
                        choices=("country", "city")),
        "window_days": Param(90, "A location seen within this many days is familiar.", kind=int, ge=1, le=3650),
        "min_history_logins": Param(3, "Learning period: earlier successful logins needed before judging.",
                                    kind=int, ge=0, le=1000),
    }

    def _check_params(self) -> None:
        if not self.p["levels"]:
            from detectors.base import ParameterError

            raise ParameterError("The 'levels' parameter of NewLocation must name at least one level.")

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = df[df["success"].fillna(False).astype(bool)]
        if ok.empty:
            return result
        window = pd.Timedelta(days=self.p["window_days"])
        accounts = ok["account_id"].to_numpy()
        prior_n = np.array([int(profiles.get(a, {}).get("n", 0)) for a in accounts], dtype=np.int64)
        prior_n = prior_n + ok.groupby("account_id", sort=False).cumcount().to_numpy()
        eligible = prior_n >= self.p["min_history_logins"]

        new_state: dict[str, dict[str, Any]] = {}
        for level in self.p["levels"]:
            col = _LEVEL_COLUMN[level]
            if not batch.has_column(self.table, col):
                result.skips.append(Skip(self.name, f"column '{col}' absent: {level} not checked", len(ok)))
                continue
            values = ok[col]
            known = values.notna() & (values.astype(str).str.len() > 0)
            if (~known).any():
                result.skips.append(Skip(self.name, f"{level} unknown", int((~known).sum())))
            sub = ok[known]
            if sub.empty:
                continue
            vals = sub[col].astype(str)
            if level == "city" and batch.has_column(self.table, "country"):
                vals = sub["country"].astype(str) + "/" + vals
            prev_in_batch = sub.assign(_v=vals).groupby(["account_id", "_v"], sort=False)["ts"].shift(1)
            prof_last = pd.to_datetime(
                pd.Series(
                    [profiles.get(a, {}).get(level, {}).get(v) for a, v in zip(sub["account_id"], vals, strict=True)],
                    index=sub.index,
                    dtype="object",
                ),
                utc=True,
            )
            prev = prev_in_batch.where(prev_in_batch.notna(), prof_last)
            familiar = prev.notna() & ((sub["ts"] - prev).abs() <= window)
            flag = (~familiar) & pd.Series(eligible, index=ok.index)[sub.index]
            for idx in sub.index[flag.to_numpy()]:
                row = sub.loc[idx]
                acct = str(row["account_id"])
                seen = self._known(profiles.get(acct, {}).get(level, {}), sub, vals, acct, row["ts"], window)
                result.findings.append(
                    self.finding(
                        acct,
                        row["ts"],
                        key=f"{row['event_id']}:{level}",
                        kind=level,
                        score=_LEVEL_SCORE[level],
                        event_ids=[row["event_id"]],
                        evidence={
                            "level": level,
                            "country": row.get("country"),
                            "city": row.get("city"),
                            "ip": row.get("ip"),
                            "device_id": row.get("device_id"),
                            "known": seen,
                            "window_days": self.p["window_days"],
                        },
                    )
                )
            # profile update: last seen per value
            last = sub.assign(_v=vals).groupby(["account_id", "_v"], sort=False)["ts"].max()
            for (acct, v), ts in last.items():
                st = new_state.setdefault(str(acct), _copy_state(profiles.get(str(acct), {})))
                cur = st[level].get(v)
                if cur is None or pd.Timestamp(cur) < ts:
                    st[level][v] = ts.isoformat()
        counts = ok.groupby("account_id", sort=False).size()
        for acct, n in counts.items():
            st = new_state.setdefault(str(acct), _copy_state(profiles.get(str(acct), {})))
            st["n"] = int(st.get("n", 0)) + int(n)
        result.profiles = new_state
        return result

    @staticmethod
    def _known(
        prof: Mapping[str, str], sub: pd.DataFrame, vals: pd.Series, acct: str, ts: pd.Timestamp, window: pd.Timedelta
    ) -> list[str]:
        seen = {v for v, last in prof.items() if abs(ts - pd.Timestamp(last)) <= window}
        mask = (sub["account_id"] == acct) & (sub["ts"] < ts) & (sub["ts"] >= ts - window)
        seen.update(vals[mask].unique())
        return sorted(seen)


def _copy_state(prof: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n": int(prof.get("n", 0)),
        "country": dict(prof.get("country", {})),
        "city": dict(prof.get("city", {})),
    }
