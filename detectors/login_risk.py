"""Statistical login risk after Freeman et al. (NDSS 2016), as implemented by das-group/rba-algorithm.

Research b12.  Freeman scores a login ``x`` of user ``u`` as

    S_u(x) = p(u|attack)/p(u|legit) · Π_k p(x_k|attack) / p(x_k|u, legit)

with hierarchical back-off inside each feature: the IP falls back to its network (ASN) and its
country (weights 0.6 / 0.3 / 0.1), the user-agent string to the browser version, the OS version
and the device type (0.539 / 0.268 / 0.188 / 0.005).  The user likelihood of a feature is the
weighted share of earlier logins that match at each level, ``Σ_l w_l · count_l / n``.

Two deliberate differences from the notebook, both because a Vigil detector sees one account at a
time (an unrelated account must never change another's findings, and profiles load per account):

* ``p(x_k|attack)``: the notebook uses the platform-wide frequency of the value; here every value is
  equally likely for an attacker (the notebook's own ``feature_value_attack_probability = 1``), and
  the user prior ``p(u|attack)/p(u|legit)`` is left out.  The score then reads "how many times less
  typical for this account than its usual login", and grows with the account's history (Freeman's
  "profit after a few logins").
* a value never seen at any level gets ``w_0 / (n + unseen)`` (the notebook's smoothed minimum
  likelihood) instead of "global / 4", which needed the platform-wide figure.

A third feature, the device id, is used when present (Entra's unfamiliar-properties list has it).
The finding carries each feature's factor, so a message or a ticket can say *why*:
"device new (×24) · IP new, network AS4766 known (×3.2) · browser Chrome 121 new, Chrome known (×1.9)".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, Skip
from detectors.batch import Batch
from detectors.login_history import successful, value_is_known
from detectors.useragent import parse_series

# feature -> ordered levels (most to least specific) with Freeman / rba-algorithm weights
HIERARCHY: dict[str, tuple[tuple[str, float], ...]] = {
    "ip": (("ip", 0.6), ("asn", 0.3), ("country", 0.1)),
    "ua": (
        ("ua", 0.5386653840551359),
        ("browser", 0.2680451498625666),
        ("os", 0.18818295100109536),
        ("device_type", 0.0051065150812021525),
    ),
    "device": (("device", 1.0),),
}
_LABEL = {
    "ip": "IP",
    "asn": "network",
    "country": "country",
    "ua": "user agent",
    "browser": "browser",
    "os": "OS",
    "device_type": "device type",
    "device": "device",
}


class LoginRisk(Detector):
    name = "login_risk"
    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("ip", "asn", "country", "user_agent", "device_id")
    description = "A successful login much less typical for the account than its usual ones (Freeman et al. 2016)."
    params: ClassVar[Mapping[str, Param]] = {
        "min_log10_score": Param(
            2.0, "Report logins whose score is at least 10^this (2: 100x less typical).", ge=0, le=20
        ),
        "features": Param(
            ("ip", "ua", "device"),
            "Features to score: ip, ua, device.",
            kind=list,
            choices=("ip", "ua", "device"),
        ),
        "min_history_logins": Param(
            5, "Learning period: earlier successful logins needed before scoring.", kind=int, ge=1, le=1000
        ),
        "trust_after_hours": Param(
            48.0,
            "A value first used this long ago counts as one of the account's own "
            "(Coinbase trusts a new device after 48 h); 0: off.",
            ge=0,
            le=24 * 365,
        ),
        "trust_after_uses": Param(
            2,
            "A value already used this many times counts as one of the account's own (0: off).",
            kind=int,
            ge=0,
            le=1000,
        ),
        "max_values": Param(
            500,
            "Distinct values kept per level and account (least used dropped).",
            kind=int,
            ge=10,
            le=100_000,
        ),
    }

    def _check_params(self) -> None:
        if not self.p["features"]:
            from detectors.base import ParameterError

            raise ParameterError("The 'features' parameter of LoginRisk must name at least one feature.")

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = successful(df)
        if ok.empty:
            return result
        levels = self._levels(ok, batch, result)
        if not levels:
            return result
        acct = ok["account_id"]
        total_prior = acct.map({a: int(profiles.get(a, {}).get("total", 0)) for a in acct.unique()}).astype("int64")
        total_prior = total_prior + ok.groupby("account_id", sort=False).cumcount()
        log10 = pd.Series(0.0, index=ok.index)
        factors: dict[str, pd.Series] = {}
        detail: dict[str, dict[str, pd.Series]] = {}
        for feat, lvls in HIERARCHY.items():
            if feat not in self.p["features"] or lvls[0][0] not in levels:
                continue
            f_known = levels[lvls[0][0]].notna()
            n = self._prior_n(ok, f_known, feat, profiles)
            local = pd.Series(0.0, index=ok.index)
            wsum = pd.Series(0.0, index=ok.index)
            unseen = pd.Series(1.0, index=ok.index)
            detail[feat] = {}
            for i, (lvl, w) in enumerate(lvls):
                if lvl not in levels:
                    continue
                vals = levels[lvl]
                count, distinct, first = self._prior_count(ok, vals, lvl, profiles)
                detail[feat][lvl] = count
                has = vals.notna()
                share = count / n.clip(lower=1)
                if self.p["trust_after_hours"] > 0 or self.p["trust_after_uses"] > 0:
                    # an established value is at least as likely as any other of the account's values
                    trusted = pd.Series(False, index=ok.index)
                    if self.p["trust_after_hours"] > 0:
                        age = ok["ts"] - first
                        trusted |= (count > 0) & (age >= pd.Timedelta(hours=self.p["trust_after_hours"]))
                    if self.p["trust_after_uses"] > 0:
                        trusted |= count >= self.p["trust_after_uses"]
                    floor = pd.Series(np.maximum(share, 1.0 / distinct.clip(lower=1)), index=ok.index)
                    share = share.where(~trusted, floor)
                local += np.where(has & (n > 0), w * share, 0.0)
                wsum += np.where(has, w, 0.0)
                if i > 0:
                    unseen += distinct
            local = local / wsum.where(wsum > 0, 1.0)
            w0 = lvls[0][1] / sum(w for _, w in lvls)
            floor = w0 / (n + unseen)
            like = np.maximum(local, floor)
            factor = pd.Series(np.where(f_known & (n > 0), 1.0 / like, 1.0), index=ok.index)
            factors[feat] = factor
            log10 += np.log10(factor)
        eligible = total_prior >= self.p["min_history_logins"]
        flag = eligible & (log10 >= self.p["min_log10_score"])
        flagged = ok.index[flag.to_numpy()]
        for idx, row in zip(flagged, ok.loc[flagged].to_dict("records"), strict=True):
            result.findings.append(
                self._finding(
                    row,
                    float(log10[idx]),
                    int(total_prior[idx]),
                    {f: float(s[idx]) for f, s in factors.items()},
                    {f: {lvl: int(c[idx]) for lvl, c in d.items()} for f, d in detail.items()},
                    {lvl: levels[lvl][idx] for lvl in levels},
                )
            )
        self._update(result, profiles, ok, levels)
        return result

    # -- inputs ---------------------------------------------------------------------------------------
    def _levels(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> dict[str, pd.Series]:
        """The value of every level per login (NaN where unknown)."""
        out: dict[str, pd.Series] = {}

        def col(name: str) -> pd.Series | None:
            if not batch.has_column(self.table, name) and name not in ok.columns:
                return None
            s = ok[name].astype("object")
            return s.where(value_is_known(s)).astype("object")

        feats = self.p["features"]
        if "ip" in feats:
            ip = col("ip") if batch.has_column(self.table, "ip") else None
            if ip is None:
                result.skips.append(Skip(self.name, "column 'ip' absent: IP not scored", len(ok)))
            else:
                out["ip"] = ip
                asn = col("asn") if batch.has_column(self.table, "asn") else None
                if asn is None:
                    result.skips.append(Skip(self.name, "column 'asn' absent: IP scored without its network", len(ok)))
                if asn is not None:
                    num = pd.to_numeric(asn, errors="coerce")
                    out["asn"] = ("AS" + num.astype("Int64").astype(str)).where(num.notna()).astype("object")
                elif "asn_org" in ok.columns:
                    org = col("asn_org")
                    if org is not None:
                        out["asn"] = org
                cc = col("country") if batch.has_column(self.table, "country") else None
                if cc is None:
                    result.skips.append(
                        Skip(self.name, "column 'country' absent: IP scored without its country", len(ok))
                    )
                else:
                    out["country"] = cc.astype("object").str.upper()
        if "ua" in feats:
            if not batch.has_column(self.table, "user_agent"):
                result.skips.append(Skip(self.name, "column 'user_agent' absent: user agent not scored", len(ok)))
            else:
                ua = col("user_agent")
                assert ua is not None
                parsed = parse_series(ua)
                out["ua"] = ua
                out["browser"] = parsed["browser_version"].astype("object")
                out["os"] = parsed["os_version"].astype("object")
                out["device_type"] = parsed["device_type"].astype("object")
        if "device" in feats:
            if not batch.has_column(self.table, "device_id"):
                result.skips.append(Skip(self.name, "column 'device_id' absent: device not scored", len(ok)))
            else:
                dev = col("device_id")
                assert dev is not None
                out["device"] = dev
        for name in ("ip", "ua", "device"):
            if name in out and out[name].isna().any():
                result.skips.append(Skip(self.name, f"{name} unknown: not scored", int(out[name].isna().sum())))
        return out

    def _prior_n(
        self, ok: pd.DataFrame, known: pd.Series, feat: str, profiles: Mapping[str, Mapping[str, Any]]
    ) -> pd.Series:
        acct = ok["account_id"]
        base = acct.map({a: int(profiles.get(a, {}).get("n", {}).get(feat, 0)) for a in acct.unique()})
        k = known.astype("int64")
        return (base.astype("int64") + k.groupby(acct, sort=False).cumsum() - k).astype("float64")

    def _prior_count(
        self, ok: pd.DataFrame, vals: pd.Series, lvl: str, profiles: Mapping[str, Mapping[str, Any]]
    ) -> tuple[pd.Series, pd.Series, pd.Series]:
        """Earlier logins of the account with the same value, distinct values seen before, and when
        the value was first used (NaT for a value never seen)."""
        acct = ok["account_id"]
        has = vals.notna()
        frame = pd.DataFrame({"a": acct, "v": vals.fillna("\x00"), "ts": ok["ts"]}, index=ok.index)
        grp = frame.groupby(["a", "v"], sort=False)
        in_batch = grp.cumcount()
        batch_first = grp["ts"].transform("min")
        rows = [
            (a, v, int(e[0]), e[1])
            for a in acct.unique()
            for v, e in profiles.get(a, {}).get("c", {}).get(lvl, {}).items()
        ]
        if rows:
            prof = pd.DataFrame(rows, columns=["a", "v", "c", "f"])
            prof["f"] = pd.to_datetime(prof["f"], utc=True, format="ISO8601")
            j = frame[["a", "v"]].reset_index().merge(prof, on=["a", "v"], how="left").set_index("index")
            j = j.reindex(ok.index)
            prior = j["c"].fillna(0).astype("int64")
            first = j["f"].where(j["f"].notna(), batch_first)
        else:
            prior = pd.Series(0, index=ok.index, dtype="int64")
            first = batch_first
        count = (prior + in_batch).where(has, 0).astype("float64")
        new = (has & (count == 0)).astype("int64")
        base = acct.map({a: len(profiles.get(a, {}).get("c", {}).get(lvl, {})) for a in acct.unique()})
        distinct = base.astype("int64") + new.groupby(acct, sort=False).cumsum() - new
        return count, distinct.astype("float64"), pd.to_datetime(first, utc=True)

    # -- output ---------------------------------------------------------------------------------------
    def _finding(
        self,
        row: Mapping[str, Any],
        log10: float,
        history: int,
        factors: Mapping[str, float],
        counts: Mapping[str, Mapping[str, int]],
        values: Mapping[str, Any],
    ) -> Any:
        parts = []
        feats: dict[str, Any] = {}
        for feat, f in sorted(factors.items(), key=lambda kv: -kv[1]):
            lv = {
                lvl: {"value": _plain(values.get(lvl)), "seen": counts[feat].get(lvl, 0)}
                for lvl, _ in HIERARCHY[feat]
                if lvl in counts[feat]
            }
            feats[feat] = {"factor": round(f, 3), "levels": lv}
            if f >= 1.5:
                parts.append(f"{_explain(feat, lv)} (×{_fmt(f)})")
        text = " · ".join(parts) or "unusual combination"
        return self.finding(
            row["account_id"],
            row["ts"],
            key=str(row["event_id"]),
            kind="score",
            score=min(1.0, log10 / 4.0),
            event_ids=[row["event_id"]],
            evidence={
                "log10_score": round(log10, 3),
                "risk_score": round(10 ** min(log10, 300), 1),
                "history_logins": history,
                "factors": feats,
                "top_feature": max(factors, key=lambda k: factors[k]) if factors else None,
                "text": text,
                "ip": _plain(row.get("ip")),
                "country": _plain(row.get("country")),
                "city": _plain(row.get("city")),
                "device_id": _plain(row.get("device_id")),
            },
        )

    def _update(
        self,
        result: DetectorResult,
        profiles: Mapping[str, Mapping[str, Any]],
        ok: pd.DataFrame,
        levels: Mapping[str, pd.Series],
    ) -> None:
        acct = ok["account_id"]
        out: dict[str, dict[str, Any]] = {}
        for a in acct.unique():
            p = profiles.get(a, {})
            out[a] = {
                "total": int(p.get("total", 0)),
                "n": dict(p.get("n", {})),
                "c": {lvl: {k: list(e) for k, e in v.items()} for lvl, v in p.get("c", {}).items()},
            }
        for a, k in acct.value_counts().items():
            out[str(a)]["total"] += int(k)
        for feat, lvls in HIERARCHY.items():
            top = lvls[0][0]
            if top not in levels:
                continue
            known = levels[top].notna()
            for a, k in known.groupby(acct, sort=False).sum().items():
                out[str(a)]["n"][feat] = out[str(a)]["n"].get(feat, 0) + int(k)
        for lvl, vals in levels.items():
            has = vals.notna()
            if not has.any():
                continue
            grouped = (
                pd.DataFrame({"a": acct[has], "v": vals[has].astype(str), "ts": ok.loc[has, "ts"]})
                .groupby(["a", "v"], sort=False)["ts"]
                .agg(["size", "min"])
            )
            for (a, v), k, first in zip(grouped.index, grouped["size"], grouped["min"], strict=True):
                bucket = out[str(a)]["c"].setdefault(lvl, {})
                cur = bucket.get(v)
                if cur is None:
                    bucket[v] = [int(k), first.isoformat()]
                else:
                    bucket[v] = [cur[0] + int(k), min(pd.Timestamp(cur[1]), first).isoformat()]
        cap = self.p["max_values"]
        for st in out.values():
            for lvl, bucket in st["c"].items():
                if len(bucket) > cap:
                    keep = sorted(bucket.items(), key=lambda kv: (-kv[1][0], kv[0]))[:cap]
                    st["c"][lvl] = dict(keep)
        result.profiles = out


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return v.item() if hasattr(v, "item") else v


def _fmt(f: float) -> str:
    return f"{f:.1f}" if f < 10 else f"{f:,.0f}"


def _explain(feat: str, lv: Mapping[str, Mapping[str, Any]]) -> str:
    """'IP new, network AS4766 known' from the per-level counts."""
    items = list(lv.items())
    if not items:
        return feat
    top, top_info = items[0]
    if top_info["seen"]:
        return f"{_LABEL[top]} {top_info['value']} rarely used"
    known = [(lvl, info) for lvl, info in items[1:] if info["seen"]]
    head = f"{_LABEL[top]} new"
    if len(items) == 1:
        return head
    if known:
        lvl, info = known[0]
        return f"{head}, {_LABEL[lvl]} {info['value']} known"
    return f"{head}, nothing similar seen"
