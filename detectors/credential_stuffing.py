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
from detectors.columns import as_str, distinct_map, iso_to_ns, isoformat_utc, to_ns
from detectors.login_history import value_is_known
from detectors.sequence import unique_str
from detectors.sorting import lexsort

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
        ips = unique_str(df["ip"][value_is_known(df["ip"])])
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
        ip = distinct_map(rows["ip"], lambda u: u.astype(str).str.strip())
        cur_acct = as_str(rows["account_id"])
        cur_eid = as_str(rows["event_id"])
        ips = pd.unique(ip)
        hist = [
            (h_ip, ts, a, eid, bool(ok))
            for h_ip in ips.tolist()
            for ts, a, eid, ok in profiles.get(ip_key(h_ip), {}).get("attempts", [])
        ]
        n_hist = len(hist)
        all_ip = np.concatenate([np.array([h[0] for h in hist], dtype=object), ip])
        all_t = np.concatenate([iso_to_ns([h[1] for h in hist]), to_ns(rows["ts"])])
        all_acct = np.concatenate([np.array([str(h[2]) for h in hist], dtype=object), cur_acct])
        all_eid = np.concatenate([np.array([str(h[3]) for h in hist], dtype=object), cur_eid])
        all_ok = np.concatenate([np.array([h[4] for h in hist], dtype=bool), rows["success"].astype(bool).to_numpy()])
        all_hist = np.arange(len(all_ip)) < n_hist
        # order (ip, ts, event_id); event ids are ranked only where (ip, ts) ties exist
        ip_code, ip_uniq = pd.factorize(all_ip, sort=True)
        order = lexsort((all_t, ip_code))
        sc, st = ip_code[order], all_t[order]
        if len(order) > 1 and bool(np.any((sc[1:] == sc[:-1]) & (st[1:] == st[:-1]))):
            eid_rank, _ = pd.factorize(all_eid, sort=True)
            order = lexsort((eid_rank, all_t, ip_code))
        ip_code, all_ip, all_t = ip_code[order], all_ip[order], all_t[order]
        all_acct, all_eid, all_ok, all_hist = all_acct[order], all_eid[order], all_ok[order], all_hist[order]
        window = pd.Timedelta(minutes=self.p["window_minutes"])
        k = self.p["min_accounts"]

        # only IPs where enough distinct accounts failed at all can be hot: a cheap vectorised filter
        fail = ~all_ok
        acct_code, _ = pd.factorize(all_acct)
        pairs = np.unique(ip_code[fail] * (int(acct_code.max(initial=0)) + 1) + acct_code[fail])
        n_fail_accts = np.bincount(pairs // (int(acct_code.max(initial=0)) + 1), minlength=len(ip_uniq))
        starts = np.searchsorted(ip_code, np.arange(len(ip_uniq) + 1))
        for c in np.flatnonzero(n_fail_accts >= k).tolist():
            lo, hi = starts[c], starts[c + 1]
            grp = pd.DataFrame(
                {
                    "ip": all_ip[lo:hi],
                    "ts": pd.to_datetime(all_t[lo:hi], utc=True),
                    "account_id": all_acct[lo:hi],
                    "event_id": all_eid[lo:hi],
                    "ok": all_ok[lo:hi],
                    "hist": all_hist[lo:hi],
                }
            )
            self._scan_ip(grp, window, k, result)

        # profile per IP: attempts within the window of its latest one, only for IPs with failures
        latest = np.full(len(ip_uniq), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, ip_code, all_t)
        recent = all_t > latest[ip_code] - window.value
        failed_ips = np.zeros(len(ip_uniq), dtype=bool)
        failed_ips[ip_code[recent & fail]] = True
        for ip_ in ips.tolist():
            result.profiles[ip_key(ip_)] = {"attempts": []}
        keep = np.flatnonzero(recent & failed_ips[ip_code])
        isos = isoformat_utc(all_t[keep])
        for j, iso in zip(keep.tolist(), isos, strict=True):
            result.profiles[ip_key(all_ip[j])]["attempts"].append(
                [iso, all_acct[j], all_eid[j], bool(all_ok[j])]
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
