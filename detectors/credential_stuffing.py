"""Credential stuffing from one IP: many accounts fail, then one of them succeeds.

Research b6/b7.  Entra's password-spray detection fires only when the attacker validates a
password; Auth0 throttles an IP after many failures across identities.  Here an IP is *hot* when,
within ``window_minutes`` before a login, at least ``min_accounts`` distinct other accounts
failed from it and failures make at least ``min_failure_ratio`` of its attempts (a carrier NAT or
an office with many successful logins stays quiet).  Every successful login from a hot IP is a
finding for the account that logged in: its password is probably among the leaked ones.

**Cross-account by design.**  This is the one login detector whose findings for an account depend
on other accounts' rows (the failures from the same IP); the conformance property "an unrelated
account never changes another's findings" does not apply to it (``cross_account = True``).  Its
profiles are keyed by IP (``"ip:203.0.113.7"``), not by account: :meth:`profile_keys` names the
keys a batch needs, so the store loads them along with the accounts' profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch
from detectors.login_history import value_is_known

_MAX_EVENT_IDS = 20


def ip_key(ip: str) -> str:
    return f"ip:{ip}"


class CredentialStuffing(Detector):
    name = "credential_stuffing"
    family = "login"
    table = "logins"
    cross_account: ClassVar[bool] = True
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("ip", "asn", "country")
    description = "A successful login from an IP address that many other accounts just failed from."
    params: ClassVar[Mapping[str, Param]] = {
        "min_accounts": Param(
            10, "Distinct other accounts failing from the IP within the window.", kind=int, ge=2, le=100_000
        ),
        "window_minutes": Param(60, "Length of the sliding window in minutes.", kind=int, ge=1, le=7 * 24 * 60),
        "min_failure_ratio": Param(0.5, "Failures as a share of the IP's attempts in the window.", gt=0, le=1),
    }

    def profile_keys(self, batch: Batch) -> set[str]:
        """The profile keys this detector reads for a batch: one per IP address in it."""
        df = self.frame(batch)
        if df is None or not batch.has_column(self.table, "ip"):
            return set()
        ips = df["ip"][value_is_known(df["ip"])].astype(str).unique()
        return {ip_key(ip) for ip in ips}

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        if not batch.has_column(self.table, "ip"):
            result.skips.append(Skip(self.name, "column 'ip' absent: credential stuffing not checked", len(df)))
            return result
        known = value_is_known(df["ip"]) & df["success"].notna()
        if (~known).any():
            result.skips.append(Skip(self.name, "IP or success unknown", int((~known).sum())))
        rows = df[known]
        if rows.empty:
            return result
        cur = pd.DataFrame(
            {
                "ip": rows["ip"].astype(str).str.strip(),
                "ts": rows["ts"],
                "account_id": rows["account_id"].astype(str),
                "event_id": rows["event_id"].astype(str),
                "ok": rows["success"].astype(bool),
                "hist": False,
            }
        )
        hist_rows = [
            (ip, ts, a, eid, bool(ok), True)
            for ip in cur["ip"].unique()
            for ts, a, eid, ok in profiles.get(ip_key(ip), {}).get("attempts", [])
        ]
        allrows = cur
        if hist_rows:
            hist = pd.DataFrame(hist_rows, columns=["ip", "ts", "account_id", "event_id", "ok", "hist"])
            hist["ts"] = pd.to_datetime(hist["ts"], utc=True, format="ISO8601")
            allrows = pd.concat([hist, cur], ignore_index=True)
        allrows = allrows.sort_values(["ip", "ts", "event_id"], kind="mergesort").reset_index(drop=True)
        window = pd.Timedelta(minutes=self.p["window_minutes"])
        k = self.p["min_accounts"]

        # only IPs where enough distinct accounts failed at all can be hot: a cheap vectorised filter
        fails = allrows[~allrows["ok"]]
        n_fail_accts = fails.groupby("ip")["account_id"].nunique()
        hot_ips = n_fail_accts.index[n_fail_accts >= k]
        for ip in hot_ips:
            grp = allrows[allrows["ip"] == ip]
            self._scan_ip(grp, window, k, result)

        # profile per IP: attempts within the window of its latest one, only for IPs with failures
        latest = allrows.groupby("ip")["ts"].transform("max")
        recent = allrows[allrows["ts"] > latest - window]
        with_fail = recent.groupby("ip")["ok"].transform("min") == False  # noqa: E712
        for ip in allrows["ip"].unique():
            result.profiles[ip_key(ip)] = {"attempts": []}
        r: Any
        for r in recent[with_fail].itertuples(index=False):
            result.profiles[ip_key(r.ip)]["attempts"].append(
                [pd.Timestamp(r.ts).isoformat(), r.account_id, r.event_id, bool(r.ok)]
            )
        return result

    def _scan_ip(self, grp: pd.DataFrame, window: pd.Timedelta, k: int, result: DetectorResult) -> None:
        ts = grp["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        ok = grp["ok"].to_numpy()
        accts = grp["account_id"].to_numpy()
        start = np.searchsorted(ts, ts - window.to_timedelta64(), side="right")
        for pos in np.flatnonzero(ok & ~grp["hist"].to_numpy()):
            lo = start[pos]
            win = slice(lo, pos)
            failed = ~ok[win]
            others = {a for a, f in zip(accts[win], failed, strict=True) if f and a != accts[pos]}
            attempts = pos - lo
            ratio = float(failed.sum()) / attempts if attempts else 0.0
            if len(others) < k or ratio < self.p["min_failure_ratio"]:
                continue
            row = grp.iloc[pos]
            fail_ids = [str(e) for e, f in zip(grp["event_id"].to_numpy()[win], failed, strict=True) if f]
            score = min(1.0, 0.7 + 0.1 * len(others) / k)
            result.findings.append(
                self.finding(
                    row["account_id"],
                    row["ts"],
                    key=str(row["event_id"]),
                    kind="success_from_stuffing_ip",
                    score=score,
                    event_ids=[row["event_id"]],
                    evidence={
                        "ip": row["ip"],
                        "failed_accounts": len(others),
                        "failures": int(failed.sum()),
                        "attempts": int(attempts),
                        "failure_ratio": round(ratio, 3),
                        "window_minutes": self.p["window_minutes"],
                        "min_accounts": k,
                        "failed_event_ids": fail_ids[-_MAX_EVENT_IDS:],
                        "text": f"{len(others)} other accounts failed to log in from {row['ip']} in the "
                        f"{self.p['window_minutes']} min before this successful login",
                    },
                )
            )
