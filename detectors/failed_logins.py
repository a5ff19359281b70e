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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch
from detectors.columns import as_str, iso_to_ns, isoformat_utc, to_ns
from detectors.sequence import window_start
from detectors.sorting import lexsort

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
        accounts = pd.unique(as_str(rows["account_id"]))
        hist = [(a, ts, eid, ip) for a in accounts.tolist() for ts, eid, ip in profiles.get(a, {}).get("fails", [])]
        n_hist = len(hist)
        cur_ip = rows["ip"].to_numpy(dtype=object) if has_ip else np.full(len(rows), None, dtype=object)
        acct = np.concatenate([np.array([h[0] for h in hist], dtype=object), as_str(rows["account_id"])])
        t = np.concatenate([iso_to_ns([h[1] for h in hist]), to_ns(rows["ts"])])
        eid = np.concatenate([np.array([h[2] for h in hist], dtype=object), as_str(rows["event_id"])])
        ip = np.concatenate([np.array([h[3] for h in hist], dtype=object), cur_ip])
        fail = np.concatenate([np.ones(n_hist, dtype=bool), ~rows["success"].astype(bool).to_numpy()])
        is_hist = np.arange(len(acct)) < n_hist
        # order (account, ts, event_id); event ids are ranked only where (account, ts) ties exist
        code, _ = pd.factorize(acct, sort=True)
        order = lexsort((t, code))
        sc, st = code[order], t[order]
        if len(order) > 1 and bool(np.any((sc[1:] == sc[:-1]) & (st[1:] == st[:-1]))):
            eid_rank, _ = pd.factorize(eid, sort=True)
            order = lexsort((eid_rank, t, code))
        code, t, fail, is_hist = code[order], t[order], fail[order], is_hist[order]
        acct, eid, ip = acct[order], eid[order], ip[order]
        window = pd.Timedelta(minutes=self.p["window_minutes"])
        # failures within (ts - window, ts] of the same account, up to this row
        start = window_start(code, t, window.value)
        cf = np.concatenate(([0], np.cumsum(fail)))
        count = cf[np.arange(len(t)) + 1] - cf[start]
        k = self.p["max_failures"]
        f_idx = np.flatnonzero(fail)
        prev_count = np.zeros(len(f_idx), dtype=np.int64)
        same = np.zeros(len(f_idx), dtype=bool)
        same[1:] = code[f_idx[1:]] == code[f_idx[:-1]]
        prev_count[1:] = count[f_idx[:-1]]
        prev_count[~same] = 0
        burst = (count[f_idx] >= k) & (prev_count < k) & ~is_hist[f_idx]
        flagged = [(int(i), "burst") for i in f_idx[burst]]
        if self.p["flag_success"]:
            succ = ~fail & (count >= k) & ~is_hist
            flagged += [(int(i), "success_after_burst") for i in np.flatnonzero(succ)]
        cols = _Cols(acct, t, eid, ip, fail, start)
        for i, kind in sorted(flagged):
            result.findings.append(self._finding(cols, i, kind))
        # profile: failures within the window of the account's latest attempt
        last = np.ones(len(code), dtype=bool)
        last[:-1] = code[:-1] != code[1:]
        ends = np.flatnonzero(last)
        group_latest = np.repeat(t[ends], np.diff(np.concatenate(([-1], ends))))
        keep = np.flatnonzero(fail & (t > group_latest - window.value))
        for a in acct[np.flatnonzero(np.r_[True, code[1:] != code[:-1]])].tolist():
            result.profiles[str(a)] = {"fails": []}
        for j, iso in zip(keep.tolist(), isoformat_utc(t[keep]), strict=True):
            v = ip[j]
            result.profiles[str(acct[j])]["fails"].append(
                [iso, str(eid[j]), None if v is None or pd.isna(v) else v]
            )
        return result

    def _finding(self, c: _Cols, i: int, kind: str) -> Any:
        window = self.p["window_minutes"]
        span = np.arange(c.start[i], i + 1)
        mine = span[c.fail[span]]
        ips = sorted({str(x) for x in c.ip[mine].tolist() if x is not None and not pd.isna(x)})
        fail_ids = [str(e) for e in c.eid[mine].tolist()][-_MAX_EVENT_IDS:]
        ids = [*fail_ids, str(c.eid[i])] if kind == "success_after_burst" else fail_ids
        n = len(mine)
        score = min(1.0, 0.4 + 0.1 * n / self.p["max_failures"]) if kind == "burst" else 0.9
        first, last = isoformat_utc(np.array([c.t[mine].min(), c.t[mine].max()]))
        return self.finding(
            str(c.acct[i]),
            pd.Timestamp(int(c.t[i]), tz="UTC"),
            key=f"{c.eid[i]}:{kind}",
            kind=kind,
            score=score,
            event_ids=ids,
            evidence={
                "failures": n,
                "max_failures": self.p["max_failures"],
                "window_minutes": window,
                "first_failure_at": first,
                "last_failure_at": last,
                "distinct_ips": len(ips),
                "ips": ips[:10],
                "success_event_id": str(c.eid[i]) if kind == "success_after_burst" else None,
                "text": f"{n} failed logins in {window} min from {len(ips)} IP address(es)"
                + (", then a successful login" if kind == "success_after_burst" else ""),
            },
        )


@dataclass(frozen=True)
class _Cols:
    """The merged attempts (profile + batch) sorted by account, time and event id."""

    acct: np.ndarray
    t: np.ndarray
    eid: np.ndarray
    ip: np.ndarray
    fail: np.ndarray
    start: np.ndarray  # first row of the same account within the window
