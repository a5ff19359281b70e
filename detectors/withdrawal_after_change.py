"""Withdrawal within a window after a security change: the account-takeover kill chain.

An attacker who got in changes the password, resets or disables 2FA, or swaps the email or phone,
then moves the money out.  OKX and KuCoin lock withdrawals for 24 h after exactly these changes
(research/fraud-anchors.md b14); Vigil reports the withdrawals that happen inside such a window,
with every qualifying change as evidence and in ``event_ids``.

A change at the same instant as the withdrawal counts (``0 <= withdrawal - change <= window``).
Security events and transactions are read through separate cursors, so a change can arrive in
a later batch than the withdrawal it precedes; the profile therefore also keeps the account's
recent withdrawals, and a late change still produces the finding (same finding id as an on-time
one, so nothing is doubled).

Profile (bounded): ``{"v": 1, "c": [[ts, event_id, kind, ip], ...], "w": [[ts, event_id, asset,
amount, usd_or_null], ...]}``: at most 20 changes and 50 withdrawals, those within the window of
the account's latest event of each kind (~6 KB).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError
from detectors.batch import Batch
from detectors.contract import SECURITY_KINDS
from detectors.large_withdrawal import OUT_KINDS, usd_amounts
from detectors.sequence import (
    NS_PER_HOUR,
    PROFILE_VERSION,
    Seq,
    build_seq,
    iso_at,
    keep_recent,
    ns_to_iso,
    per_account,
    state_of,
    ts_of,
)

MAX_CHANGES = 20
MAX_WITHDRAWALS = 50
TAKEOVER_KINDS = ("password_change", "2fa_reset", "2fa_disabled", "email_change", "phone_change")
# how strongly each change suggests a takeover when money leaves right after it
KIND_WEIGHT = {
    "2fa_disabled": 0.95,
    "2fa_reset": 0.9,
    "password_change": 0.85,
    "email_change": 0.85,
    "phone_change": 0.85,
    "whitelist_change": 0.8,
    "api_key_created": 0.7,
    "anti_phishing_change": 0.7,
}


class WithdrawalAfterChange(Detector):
    name = "withdrawal_after_change"
    family = "transfer"
    table = "transactions"
    extra_tables = ("security_events",)
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd", "address", "network")
    description = "A withdrawal within a window after a password, 2FA, email or phone change."
    params: ClassVar[Mapping[str, Param]] = {
        "window_hours": Param(
            24.0, "A withdrawal this many hours or less after a change is reported.", gt=0, le=720
        ),
        "change_kinds": Param(
            TAKEOVER_KINDS, "Security-event kinds that open the window.", kind=list, choices=SECURITY_KINDS
        ),
        "kinds": Param(
            ("withdrawal",), "Transaction kinds that count as money out.", kind=list, choices=OUT_KINDS
        ),
        "min_usd": Param(
            0.0, "Ignore withdrawals below this USD value (an unknown USD value is always judged).", ge=0
        ),
    }

    def _check_params(self) -> None:
        for name in ("change_kinds", "kinds"):
            if not self.p[name]:
                raise ParameterError(f"The {name!r} parameter of WithdrawalAfterChange must not be empty.")

    def scan(
        self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime
    ) -> DetectorResult:
        result = DetectorResult()
        window = int(self.p["window_hours"] * NS_PER_HOUR)
        tx = self.frame(batch)
        wd = None if tx is None else tx[tx["kind"].isin(self.p["kinds"])]
        if wd is not None and self.p["min_usd"] > 0:
            usd = usd_amounts(wd, batch.has_column(self.table, "amount_usd"))
            wd = wd[((usd >= self.p["min_usd"]) | usd.isna()).to_numpy()]
        sec = batch.get("security_events")
        ch = None if sec is None else sec[sec["kind"].isin(self.p["change_kinds"])]
        if (wd is None or wd.empty) and (ch is None or ch.empty):
            return result
        accounts: set[str] = set()
        for f in (wd, ch):
            if f is not None:
                accounts.update(f["account_id"].astype(str).unique())

        wseq = self._withdrawals(wd, batch, profiles, accounts)
        cseq = self._changes(ch, batch, profiles, accounts)
        if len(wseq) and len(cseq):
            self._pair(result, wseq, cseq, window)

        keep_w = keep_recent(wseq, window, MAX_WITHDRAWALS)
        keep_c = keep_recent(cseq, window, MAX_CHANGES)
        w_items = per_account(
            wseq,
            keep_w,
            [
                iso_at(wseq.t, keep_w),
                wseq.eid,
                wseq.cols["asset"],
                wseq.cols["amount"],
                _cents(wseq.cols["usd"], keep_w),
            ],
        )
        c_items = per_account(
            cseq, keep_c, [iso_at(cseq.t, keep_c), cseq.eid, cseq.cols["kind"], cseq.cols["ip"]]
        )
        for acct in sorted(accounts):
            result.profiles[acct] = {
                "v": PROFILE_VERSION,
                "c": c_items.get(acct, []),
                "w": w_items.get(acct, []),
            }
        return result

    def _withdrawals(
        self,
        wd: pd.DataFrame | None,
        batch: Batch,
        profiles: Mapping[str, Mapping[str, Any]],
        accounts: set[str],
    ) -> Seq:
        hist = (
            (a, it[0], it[1], tuple(it[2:5])) for a in accounts for it in state_of(profiles, a).get("w", [])
        )
        if wd is None or wd.empty:
            cols: dict[str, np.ndarray] = {n: np.zeros(0, dtype=object) for n in ("asset", "amount", "usd")}
            return build_seq(None, cols, hist, ("asset", "amount", "usd"))
        usd = usd_amounts(wd, batch.has_column(self.table, "amount_usd"))
        cols = {
            "asset": wd["asset"].astype(str).to_numpy(dtype=object),
            "amount": wd["amount"].astype("float64").to_numpy(dtype=object),
            "usd": usd.to_numpy(dtype=object),  # rounded to cents only where shown or kept
        }
        return build_seq(wd, cols, hist, ("asset", "amount", "usd"))

    def _changes(
        self,
        ch: pd.DataFrame | None,
        batch: Batch,
        profiles: Mapping[str, Mapping[str, Any]],
        accounts: set[str],
    ) -> Seq:
        hist = (
            (a, it[0], it[1], tuple(it[2:4])) for a in accounts for it in state_of(profiles, a).get("c", [])
        )
        if ch is None or ch.empty:
            return build_seq(
                None,
                {"kind": np.zeros(0, dtype=object), "ip": np.zeros(0, dtype=object)},
                hist,
                ("kind", "ip"),
            )
        has_ip = batch.has_column("security_events", "ip")
        ip = np.full(len(ch), None, dtype=object)
        if has_ip:
            known = ch["ip"].notna().to_numpy()
            ip[known] = ch["ip"].astype(str).to_numpy(dtype=object)[known]
        cols = {"kind": ch["kind"].astype(str).to_numpy(dtype=object), "ip": ip}
        return build_seq(ch, cols, hist, ("kind", "ip"))

    def _pair(self, result: DetectorResult, wseq: Seq, cseq: Seq, window: int) -> None:
        w = pd.DataFrame({"acct": wseq.account, "t": wseq.t, "i": np.arange(len(wseq))})
        c = pd.DataFrame({"acct": cseq.account, "t": cseq.t, "j": np.arange(len(cseq))})
        m = pd.merge_asof(
            w.sort_values("t", kind="mergesort"),
            c.sort_values("t", kind="mergesort"),
            on="t",
            by="acct",
            direction="backward",
            tolerance=window,
            allow_exact_matches=True,
        )
        m = m[m["j"].notna()]
        if m.empty:
            return
        i = m["i"].to_numpy(dtype=np.int64)
        j = m["j"].to_numpy(dtype=np.int64)
        # report when something new is involved: a new withdrawal, or a late change for an old one
        fresh = wseq.new[i] | cseq.new[j]
        starts = np.flatnonzero(cseq.first_of_group())
        ends = np.append(starts[1:], len(cseq))
        c_by_acct = {
            str(a): (int(s), int(e)) for a, s, e in zip(cseq.account[starts], starts, ends, strict=True)
        }
        order = np.argsort(i[fresh], kind="mergesort")
        for wi in i[fresh][order]:
            acct = str(wseq.account[wi])
            tw = int(wseq.t[wi])
            lo, hi = c_by_acct[acct]
            cand = np.arange(lo, hi)
            within = cand[(cseq.t[cand] <= tw) & (tw - cseq.t[cand] <= window)]
            latest = int(within[-1])
            hours = (tw - int(cseq.t[latest])) / NS_PER_HOUR
            kinds = [str(cseq.cols["kind"][x]) for x in within]
            base = max(KIND_WEIGHT.get(k, 0.7) for k in kinds)
            score = base - 0.15 * hours / max(self.p["window_hours"], 1e-9) + 0.03 * (len(set(kinds)) - 1)
            ts = ts_of(tw)
            result.findings.append(
                self.finding(
                    acct,
                    ts,
                    key=str(wseq.eid[wi]),
                    kind=str(cseq.cols["kind"][latest]),
                    score=score,
                    event_ids=[*(str(cseq.eid[x]) for x in within), str(wseq.eid[wi])],
                    evidence={
                        "change_kind": kinds[-1],
                        "change_kinds": kinds,
                        "change_at": ns_to_iso(cseq.t[latest : latest + 1])[0],
                        "change_ip": cseq.cols["ip"][latest],
                        "hours_after_change": round(hours, 2),
                        "window_hours": self.p["window_hours"],
                        "withdrawal_event_id": str(wseq.eid[wi]),
                        "asset": wseq.cols["asset"][wi],
                        "amount": wseq.cols["amount"][wi],
                        "amount_usd": _round_usd(wseq.cols["usd"][wi]),
                    },
                )
            )


def _round_usd(v: Any) -> float | None:
    """USD to the cent as the evidence and the profile show it (None where unknown)."""
    return None if v is None or pd.isna(v) else round(float(v), 2)


def _cents(usd: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``usd`` rounded to the cent at the kept rows only (the profile's items)."""
    out = np.full(len(usd), None, dtype=object)
    at = np.flatnonzero(keep)
    out[at] = [_round_usd(v) for v in usd[at].tolist()]
    return out
