"""Frequent trading: a burst of trades far above the account's own baseline rate.

A hijacked account or a leaked API key shows up as trading the owner never does: dozens of
orders in an hour from an account that trades a few times a day (wash trades to move value,
pump-and-dump participation).  For each trade Vigil counts the account's trades within
``window_minutes`` (this one included) and compares the count with the account's own rate over
the ``baseline_days`` before the window:

    threshold = max(min_trades, multiple x baseline trades per window)

The baseline spans the account's observed history when that is shorter than ``baseline_days``,
and an account is not judged before its first trade is ``learning_days`` old (Entra and Okta
learning periods, research/fraud-anchors.md b9).  A spike is reported once, at the trade that
crosses the threshold; it re-arms after a trade below it.

Bounded definition: only the last ``max_events`` trades of an account are looked at (the window
count is capped there; a baseline truncated by the cap is measured over the time those trades
span).  Profile: ``{"v": 1, "t": [[ts, event_id], ...], "first": ts, "s": spiking}`` with at most
``max_events - 1`` trades (default 500: ~25 KB).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from detectors.base import Detector, DetectorResult, Param
from detectors.batch import Batch
from detectors.sequence import (
    NS_PER_DAY,
    PROFILE_VERSION,
    build_seq,
    iso_at,
    iso_to_ns,
    keep_recent,
    ns_to_iso,
    per_account,
    records,
    state_of,
    ts_of,
    unique_str,
    window_start,
)

NS_PER_MINUTE = 60_000_000_000


class TradingSpike(Detector):
    name = "trading_spike"
    family = "trading"
    table = "transactions"
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("symbol", "side", "amount_usd")
    description = "Many more trades within a short window than the account's own baseline rate."
    params: ClassVar[Mapping[str, Param]] = {
        "window_minutes": Param(60, "The burst window in minutes.", kind=int, ge=1, le=1440),
        "baseline_days": Param(
            14, "Days before the window that form the baseline rate.", kind=int, ge=1, le=365
        ),
        "multiple": Param(5.0, "Report when the window holds this many times the baseline rate.", gt=1),
        "min_trades": Param(
            30, "Never report fewer trades than this in the window.", kind=int, ge=2, le=10_000
        ),
        "learning_days": Param(
            3.0, "Do not judge an account whose first trade is younger than this.", ge=0, le=365
        ),
        "max_events": Param(500, "Profile bound: trades remembered per account.", kind=int, ge=10, le=20_000),
    }

    def _check_params(self) -> None:
        self._require_not_above("min_trades", "max_events")

    def scan(
        self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime
    ) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        trades = df[df["kind"] == "trade"]
        if trades.empty:
            return result
        k = self.p["max_events"]
        w_ns = self.p["window_minutes"] * NS_PER_MINUTE
        b_ns = self.p["baseline_days"] * NS_PER_DAY
        accounts = unique_str(trades["account_id"])
        states = {a: state_of(profiles, a) for a in accounts}
        hist = ((a, it[0], it[1], ()) for a in accounts for it in states[a].get("t", []))
        seq = build_seq(trades, {}, hist, ())
        n = len(seq)
        idx = np.arange(n)
        gstart = seq.group_start()
        lb = np.maximum(gstart, idx - k + 1)
        ws = np.maximum(window_start(seq.code, seq.t, w_ns), lb)
        count = idx - ws + 1
        raw_bs = window_start(seq.code, seq.t, w_ns + b_ns)
        bs = np.maximum(raw_bs, lb)
        n_base = np.maximum(ws - bs, 0)

        # the account's first trade: from the profile, else its first row here
        first_t = seq.t[gstart].copy()
        with_first = [a for a, st in states.items() if st.get("first")]
        if with_first:  # one parse for all accounts, not one per account
            parsed = iso_to_ns([states[a]["first"] for a in with_first]).tolist()
            prof_first = dict(zip(with_first, parsed, strict=True))
            starts = np.flatnonzero(seq.first_of_group())
            pf_acct = np.array([prof_first.get(str(a), np.iinfo(np.int64).max) for a in seq.account[starts]])
            pf = np.repeat(pf_acct, np.diff(np.append(starts, len(seq))))
            first_t = np.minimum(first_t, pf)
        truncated = raw_bs < lb
        span = np.where(truncated, seq.t - w_ns - seq.t[lb], np.minimum(b_ns, seq.t - w_ns - first_t))
        span = np.maximum(span, w_ns)
        rate = n_base * w_ns / span
        threshold = np.maximum(self.p["min_trades"], self.p["multiple"] * rate)
        learned = (seq.t - first_t) >= int(self.p["learning_days"] * NS_PER_DAY)
        spike = learned & (count >= threshold)

        prev = seq.prev(spike, False)
        first_new = seq.new & ~seq.prev(seq.new, False)
        at = np.flatnonzero(first_new)
        prev[at] = [bool(states[a].get("s", False)) for a in seq.account[at].tolist()]
        fire = spike & ~prev & seq.new
        fired = np.flatnonzero(fire)
        for i, row in zip(fired, records(trades, seq.row[fired], ("symbol", "side")), strict=True):
            r = float(rate[i])
            result.findings.append(
                self.finding(
                    seq.account[i],
                    ts_of(seq.t[i]),
                    key=str(seq.eid[i]),
                    kind="spike",
                    score=min(1.0, 0.4 + 0.1 * count[i] / threshold[i]),
                    event_ids=list(seq.eid[ws[i] : i + 1]),
                    evidence={
                        "trades_in_window": int(count[i]),
                        "window_minutes": self.p["window_minutes"],
                        "baseline_per_window": round(r, 3),
                        "threshold": round(float(threshold[i]), 3),
                        "multiple_of_baseline": None if r <= 0 else round(float(count[i]) / r, 1),
                        "baseline_days": round(float(span[i]) / NS_PER_DAY, 2),
                        "symbol": row.get("symbol"),
                        "side": row.get("side"),
                    },
                )
            )
        keep = keep_recent(seq, w_ns + b_ns, k - 1)
        items = per_account(seq, keep, [iso_at(seq.t, keep), seq.eid])
        last = np.flatnonzero(seq.last_of_group())
        firsts = ns_to_iso(first_t[last])
        for i, first_iso in zip(last, firsts, strict=True):
            acct = str(seq.account[i])
            st = states[acct]
            result.profiles[acct] = {
                "v": PROFILE_VERSION,
                "t": items.get(acct, []),
                "first": first_iso,
                "s": bool(spike[i]) if seq.new[i] else bool(st.get("s", False)),
            }
        return result
