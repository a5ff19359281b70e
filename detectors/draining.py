"""Draining velocity: many withdrawals, a large sum, or most of the recent deposits leaving within
a short window.

A takeover rarely ends with one withdrawal: the attacker empties the account in a burst, often
in amounts kept under the large-withdrawal threshold.  For each outgoing transfer Vigil looks at
the account's outflows within ``window_hours`` (this one included) and at its inflows within
``deposit_days``, and reports when

* ``count``: the window holds ``max_count`` or more outflows,
* ``sum``: they add up to ``max_sum_usd`` or more,
* ``share``: they are ``max_share`` or more of the inflows (deposits, transfers in), and at
  least ``min_share_usd``.

Velocity rules of this kind are Flink's fraud demo and Tazama rule 901 (research/fraud-anchors.md,
transaction detectors).  Each criterion fires once when it becomes true, not again for every
further withdrawal of the same burst: it re-arms after an outflow for which it is false.

Windows hold the last ``max_events`` flows of each direction (the profile bound: default 200
per direction, ~10 KB); the one-scan definition uses the same bound, so batching never changes a
finding.  Profile: ``{"v": 1, "f": [[ts, event_id, direction, usd_cents], ...], "on": [criteria
active at the last outflow]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from detectors.base import Detector, DetectorResult, Param, ParameterError
from detectors.batch import Batch
from detectors.large_withdrawal import OUT_KINDS, priced
from detectors.sequence import (
    NS_PER_DAY,
    NS_PER_HOUR,
    PROFILE_VERSION,
    build_seq,
    iso_at,
    keep_recent,
    per_account,
    state_of,
    to_cents,
    ts_of,
    unique_str,
    window_sums,
)

IN_KINDS = ("deposit", "transfer_in")
CRITERIA = ("count", "sum", "share")


class Draining(Detector):
    name = "draining"
    family = "transfer"
    table = "transactions"
    required_columns = ("event_id", "account_id", "ts", "kind", "asset", "amount")
    optional_columns = ("amount_usd",)
    description = "Many withdrawals, a large sum, or most recent deposits withdrawn within a short window."
    params: ClassVar[Mapping[str, Param]] = {
        "window_hours": Param(24.0, "The outflow window in hours.", gt=0, le=720),
        "max_count": Param(5, "Report when the window holds this many outflows.", kind=int, ge=2, le=1000),
        "max_sum_usd": Param(50_000.0, "Report when the window's outflows reach this USD sum.", gt=0),
        "max_share": Param(
            0.8, "Report when the window's outflows reach this share of recent inflows.", gt=0, le=10
        ),
        "min_share_usd": Param(2_000.0, "The share check ignores windows below this USD sum.", ge=0),
        "deposit_days": Param(
            30, "Inflows of this many days form the share's denominator.", kind=int, ge=1, le=365
        ),
        "max_events": Param(200, "Profile bound: flows remembered per direction.", kind=int, ge=10, le=2000),
        "out_kinds": Param(OUT_KINDS, "Transaction kinds that are outflows.", kind=list, choices=OUT_KINDS),
        "in_kinds": Param(IN_KINDS, "Transaction kinds that are inflows.", kind=list, choices=IN_KINDS),
    }

    def _check_params(self) -> None:
        if not self.p["out_kinds"]:
            raise ParameterError("The 'out_kinds' parameter of Draining must name at least one kind.")
        self._require_not_above("max_count", "max_events")

    def scan(
        self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime
    ) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        flows = df[df["kind"].isin((*self.p["out_kinds"], *self.p["in_kinds"]))]
        if flows.empty:
            return result
        flows = priced(flows, batch, self.table, self.name, result)
        if flows.empty:
            return result
        k = self.p["max_events"]
        w_ns = int(self.p["window_hours"] * NS_PER_HOUR)
        d_ns = self.p["deposit_days"] * NS_PER_DAY
        accounts = unique_str(flows["account_id"])
        hist = (
            (a, it[0], it[1], (int(it[2]), int(it[3])))
            for a in accounts
            for it in state_of(profiles, a).get("f", [])
        )
        out = flows["kind"].isin(self.p["out_kinds"]).to_numpy()
        seq = build_seq(
            flows,
            {"out": out.astype(np.int64), "cents": to_cents(flows["_usd"].to_numpy())},
            hist,
            ("out", "cents"),
        )
        is_out = seq.cols["out"] == 1
        cents = seq.cols["cents"]
        ow = window_sums(seq, is_out, cents, w_ns, k, inclusive=True)
        iw = window_sums(seq, ~is_out, cents, d_ns, k, inclusive=True)
        out_usd = ow.total / 100.0
        in_usd = iw.total / 100.0
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(in_usd > 0, out_usd / in_usd, np.nan)
        hit = {
            "count": ow.count >= self.p["max_count"],
            "sum": out_usd >= self.p["max_sum_usd"],
            "share": (share >= self.p["max_share"]) & (out_usd >= self.p["min_share_usd"]),
        }
        # edge trigger per criterion over the account's outflows; the state before the batch's
        # first outflow comes from the profile, never from recomputed (truncated) history rows
        out_idx = np.flatnonzero(is_out)
        same_prev = np.zeros(len(out_idx), dtype=bool)
        same_prev[1:] = (seq.code[out_idx[1:]] == seq.code[out_idx[:-1]]) & seq.new[out_idx[:-1]]
        prof_on = {a: set(state_of(profiles, a).get("on", [])) for a in accounts}
        from_prof = np.flatnonzero(~same_prev & seq.new[out_idx])
        fire: dict[str, np.ndarray] = {}
        for c in CRITERIA:
            now_on = hit[c][out_idx]
            before = np.zeros(len(out_idx), dtype=bool)
            before[1:] = now_on[:-1]
            before[from_prof] = [c in prof_on[str(seq.account[out_idx[p]])] for p in from_prof]
            fire[c] = now_on & ~before
        any_fire = np.zeros(len(out_idx), dtype=bool)
        for c in CRITERIA:
            any_fire |= fire[c]
        any_fire &= seq.new[out_idx]
        for pos in np.flatnonzero(any_fire):
            i = out_idx[pos]
            kinds = [c for c in CRITERIA if fire[c][pos]]
            s = share[i]
            score = max(
                min(1.0, 0.4 + 0.05 * ow.count[i]) if "count" in kinds else 0.0,
                min(1.0, 0.5 + 0.25 * out_usd[i] / self.p["max_sum_usd"]) if "sum" in kinds else 0.0,
                min(1.0, 0.4 + 0.4 * float(s)) if "share" in kinds else 0.0,
            )
            members = ow.member_rows[ow.start[i] : ow.end[i]]
            result.findings.append(
                self.finding(
                    seq.account[i],
                    ts_of(seq.t[i]),
                    key=str(seq.eid[i]),
                    kind="+".join(kinds),
                    score=score,
                    event_ids=[str(seq.eid[x]) for x in members],
                    evidence={
                        "outflows_in_window": int(ow.count[i]),
                        "outflow_usd": round(float(out_usd[i]), 2),
                        "inflow_usd": round(float(in_usd[i]), 2),
                        "share_of_inflows": None if np.isnan(s) else round(float(s), 3),
                        "window_hours": self.p["window_hours"],
                        "deposit_days": self.p["deposit_days"],
                        "criteria": kinds,
                        "active": [c for c in CRITERIA if hit[c][i]],
                        "thresholds": {
                            "count": self.p["max_count"],
                            "sum_usd": self.p["max_sum_usd"],
                            "share": self.p["max_share"],
                        },
                    },
                )
            )
        keep = keep_recent(seq, w_ns, k, is_out) | keep_recent(seq, d_ns, k, ~is_out)
        items = per_account(seq, keep, [iso_at(seq.t, keep), seq.eid, seq.cols["out"], cents])
        last_on: dict[str, list[str]] = {}
        last_out = (
            out_idx[np.append(seq.code[out_idx[1:]] != seq.code[out_idx[:-1]], True)]
            if len(out_idx)
            else out_idx
        )
        for r in last_out:
            if seq.new[r]:
                last_on[str(seq.account[r])] = [c for c in CRITERIA if hit[c][r]]
        for a in accounts:
            acct = str(a)
            on = last_on.get(acct, list(state_of(profiles, acct).get("on", [])))
            result.profiles[acct] = {"v": PROFILE_VERSION, "f": items.get(acct, []), "on": on}
        return result
