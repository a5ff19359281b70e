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

Freeman's product assumes the features independent; the client (user agent and device id) is not
independent of the network.  A browser that lost its cookie or a new phone shows a new device id,
often a new user-agent string, on the account's own IP or provider; an attacker shows whatever client
he likes -- the victim's user agent, even a replayed device id -- but from a network of his own.  So
the client factor (user agent x device) is weighed by the network it comes from
(:meth:`LoginRisk._client`):

* from an IP the account has used: at most ``client_cap_known_ip`` (cookies cleared, an update);
* from a new IP of a network (ASN) it uses: at most ``client_cap_known_network`` (a new phone on the
  usual carrier) -- except a new device id running the account's own client software (the exact
  user-agent string, or a browser version and an OS version it uses), which a lost cookie does not
  explain away from a new IP (a copied fingerprint);
* from a network it never used: at least ``new_network_floor`` -- a familiar device id or user
  agent does not cancel an unfamiliar network (a replayed fingerprint).
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
from detectors.columns import as_str, cumcount, distinct_map, known_mask
from detectors.login_counts import Counts
from detectors.login_history import successful_in
from detectors.useragent import describe, parse_series

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
_EVIDENCE_COLUMNS = ("account_id", "ts", "event_id", "ip", "country", "city", "device_id", "user_agent")
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

# why the client factor (user agent x device) was capped or floored, for the finding's text
_GATE_TEXT = {
    "known_ip": "user agent and device counted ×{f} at most: IP known",
    "known_network": "user agent and device counted ×{f} at most: network known",
    "new_network": "user agent and device counted ×{f} at least: network never used",
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
        "client_cap_known_ip": Param(
            30.0,
            "From an IP the account has used, the user agent and the device together count at most "
            "this factor (cookies cleared, a browser update, a new phone at home); 0: off.",
            ge=0,
            le=1e12,
        ),
        "client_cap_known_network": Param(
            10.0,
            "From a new IP of a network (ASN) the account uses: the same cap (a new phone on the "
            "usual carrier), unless a new device id presents the account's own user agent (exact "
            "string, or browser and OS versions it uses: a copied fingerprint); 0: off.",
            ge=0,
            le=1e12,
        ),
        "new_network_floor": Param(
            30.0,
            "From a network (ASN) the account has never used, the user agent and the device together "
            "count at least this factor: a familiar (possibly replayed) device id or user agent does "
            "not cancel an unfamiliar network; 0 or 1: off.",
            ge=0,
            le=1e12,
        ),
        "ip_novelty_cap": Param(
            1.0,
            "A new IP of a network the account uses counts up to this many times more when the "
            "account rarely shows new IPs there (a home line, not a carrier's NAT); 1: off "
            "(docs/quality.md measures 3).",
            ge=1,
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
        ok = successful_in(batch, df)
        if ok.empty:
            return result
        levels = self._levels(ok, batch, result)
        if not levels:
            return result
        counts = Counts(ok, profiles)
        total_prior = counts.total_prior[counts.code] + cumcount(counts.code)
        n_rows = len(ok)
        factors: dict[str, np.ndarray] = {}
        detail: dict[str, dict[str, np.ndarray]] = {}
        trust_ns = int(pd.Timedelta(hours=self.p["trust_after_hours"]).value)
        for feat, lvls in HIERARCHY.items():
            if feat not in self.p["features"] or lvls[0][0] not in levels:
                continue
            f_known = counts.known(levels[lvls[0][0]])
            n = counts.n_prior(feat, f_known)
            local = np.zeros(n_rows)
            wsum = np.zeros(n_rows)
            unseen = np.ones(n_rows)
            detail[feat] = {}
            for i, (lvl, w) in enumerate(lvls):
                if lvl not in levels:
                    continue
                vals = levels[lvl]
                count, distinct, first = counts.prior_count(vals, lvl)
                detail[feat][lvl] = count
                has = counts.known(vals)
                share = count / np.maximum(n, 1)
                if self.p["trust_after_hours"] > 0 or self.p["trust_after_uses"] > 0:
                    # an established value is at least as likely as any other of the account's values
                    trusted = np.zeros(n_rows, dtype=bool)
                    if self.p["trust_after_hours"] > 0:
                        trusted |= (count > 0) & ((counts.t - first) >= trust_ns)
                    if self.p["trust_after_uses"] > 0:
                        trusted |= count >= self.p["trust_after_uses"]
                    floor = np.maximum(share, 1.0 / np.maximum(distinct, 1))
                    share = np.where(trusted, floor, share)
                local += np.where(has & (n > 0), w * share, 0.0)
                wsum += np.where(has, w, 0.0)
                if i > 0:
                    unseen += distinct
            local = local / np.where(wsum > 0, wsum, 1.0)
            w0 = lvls[0][1] / sum(w for _, w in lvls)
            floor = w0 / (n + unseen)
            like = np.maximum(local, floor)
            with np.errstate(divide="ignore"):
                factor = np.where(f_known & (n > 0), 1.0 / like, 1.0)
            factors[feat] = factor
        novelty = self._ip_novelty(factors, detail, levels, counts)
        client, used, gate = self._client(factors, detail, levels, counts)
        log10 = np.log10(factors["ip"]) if "ip" in factors else np.zeros(n_rows)
        log10 = log10 + np.log10(used)
        eligible = total_prior >= self.p["min_history_logins"]
        flagged = np.flatnonzero(eligible & (log10 >= self.p["min_log10_score"]))
        cols = [c for c in _EVIDENCE_COLUMNS if c in ok.columns]
        rows: list[dict[str, Any]] = [
            {str(c): v for c, v in r.items()} for r in ok.iloc[flagged][cols].to_dict("records")
        ]
        for k, row in zip(flagged.tolist(), rows, strict=True):
            result.findings.append(
                self._finding(
                    row,
                    float(log10[k]),
                    int(total_prior[k]),
                    {f: float(s[k]) for f, s in factors.items()},
                    {f: {lvl: int(c[k]) for lvl, c in d.items()} for f, d in detail.items()},
                    {lvl: levels[lvl][k] for lvl in levels},
                    (float(client[k]), float(used[k]), str(gate[k])),
                    {name: float(v[k]) for name, v in novelty.items()},
                )
            )
        tops = {feat: lvls[0][0] for feat, lvls in HIERARCHY.items() if lvls[0][0] in levels}
        result.profiles = counts.update(levels, tops, self.p["max_values"])
        return result

    def _ip_novelty(
        self,
        factors: dict[str, np.ndarray],
        detail: Mapping[str, Mapping[str, np.ndarray]],
        levels: dict[str, np.ndarray],
        counts: Counts,
    ) -> dict[str, np.ndarray]:
        """A new IP on a network the account uses, weighed by how often the account shows new IPs there.

        Freeman's back-off gives every new IP of a known network the same likelihood, whether the
        network is a phone carrier's NAT (a new address nearly every time) or a home line that kept
        one address for months.  The account's own rate of new addresses on that network, the
        Good-Turing style estimate ``(new IPs seen there + 1) / (logins there + 2)``, says which:
        the IP factor is multiplied by its inverse, at most ``ip_novelty_cap``.  The level
        ``asn_new_ip`` (the network of each login that brought a new IP) keeps the count in the
        profile.
        """
        cap = self.p["ip_novelty_cap"]
        ip_d = detail.get("ip", {})
        if cap <= 1 or "ip" not in factors or "ip" not in ip_d or "asn" not in ip_d:
            return {}
        asn_known = counts.known(levels["asn"])
        new_ip = counts.known(levels["ip"]) & (ip_d["ip"] == 0)
        derived = np.full(len(new_ip), None, dtype=object)
        sel = new_ip & asn_known
        derived[sel] = levels["asn"][sel]
        levels["asn_new_ip"] = derived
        new_ips, _, _ = counts.prior_count(derived, "asn_new_ip")
        on_net = ip_d["asn"]
        rate = (new_ips + 1.0) / (on_net + 2.0)
        boost = np.where(new_ip & asn_known & (on_net > 0), np.minimum(1.0 / rate, cap), 1.0)
        boost = np.maximum(boost, 1.0)
        factors["ip"] = factors["ip"] * boost
        return {"factor": boost, "new_ips_on_network": new_ips, "logins_on_network": on_net}

    def _client(
        self,
        factors: Mapping[str, np.ndarray],
        detail: Mapping[str, Mapping[str, np.ndarray]],
        levels: Mapping[str, np.ndarray],
        counts: Counts,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The client factor (user agent x device), as scored and as used, and why they differ.

        Freeman's product treats the features as independent; the device id is not: a browser that
        lost its cookie or a new phone shows a new device id (and often a new user-agent string) on
        the account's own networks, an attacker shows whatever client he likes -- even a replayed
        one -- from a network of his own.  So the client evidence is weighed by the network it comes
        from: capped on a familiar IP or network, floored on a network the account never used.
        """
        n_rows = len(counts.t)
        client = np.ones(n_rows)
        for feat in ("ua", "device"):
            if feat in factors:
                client = client * factors[feat]
        used = client.copy()
        gate = np.full(n_rows, "", dtype=object)
        ip_d = detail.get("ip", {})
        ip_seen = ip_d["ip"] > 0 if "ip" in ip_d else np.zeros(n_rows, dtype=bool)
        asn_known = counts.known(levels["asn"]) if "asn" in ip_d else np.zeros(n_rows, dtype=bool)
        asn_seen = asn_known & (ip_d["asn"] > 0) if "asn" in ip_d else np.zeros(n_rows, dtype=bool)
        cap_ip, cap_net, floor = (
            self.p["client_cap_known_ip"],
            self.p["client_cap_known_network"],
            self.p["new_network_floor"],
        )
        if cap_ip > 0:
            hit = ip_seen & (used > cap_ip)
            used = np.where(hit, cap_ip, used)
            gate[hit] = "known_ip"
        if cap_net > 0:
            ua_d, dev_d = detail.get("ua", {}), detail.get("device", {})
            copied = np.zeros(n_rows, dtype=bool)
            if "ua" in ua_d and "device" in dev_d:
                # a new device id presenting the account's own client software: the exact user-agent
                # string, or a browser version and an OS version the account uses (the string may
                # differ in minor versions) -- a new phone or a new browser shows new software
                same = ua_d["ua"] > 0
                if "browser" in ua_d and "os" in ua_d:
                    same = same | ((ua_d["browser"] > 0) & (ua_d["os"] > 0))
                copied = same & (dev_d["device"] == 0) & counts.known(levels["device"])
            hit = ~ip_seen & asn_seen & ~copied & (used > cap_net)
            used = np.where(hit, cap_net, used)
            gate[hit] = "known_network"
        if floor > 1:
            scored = factors["ip"] > 1 if "ip" in factors else np.zeros(n_rows, dtype=bool)
            hit = asn_known & ~asn_seen & scored & (used < floor)
            used = np.where(hit, floor, used)
            gate[hit] = "new_network"
        return client, used, gate

    # -- inputs ---------------------------------------------------------------------------------------
    def _levels(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> dict[str, np.ndarray]:
        """The value of every level per login as str (None where unknown)."""
        out: dict[str, np.ndarray] = {}

        def col(name: str) -> np.ndarray | None:
            if not batch.has_column(self.table, name) and name not in ok.columns:
                return None
            s = ok[name]
            vals = as_str(s)
            vals[~known_mask(s)] = None
            return vals

        feats = self.p["features"]
        if "ip" in feats:
            ip = col("ip") if batch.has_column(self.table, "ip") else None
            if ip is None:
                result.skips.append(Skip(self.name, "column 'ip' absent: IP not scored", len(ok)))
            else:
                out["ip"] = ip
                if not batch.has_column(self.table, "asn"):
                    result.skips.append(Skip(self.name, "column 'asn' absent: IP scored without its network", len(ok)))
                    if "asn_org" in ok.columns:
                        org = col("asn_org")
                        if org is not None:
                            out["asn"] = org
                else:
                    raw = ok["asn"].astype("object")
                    num = pd.to_numeric(raw.where(known_mask(raw)), errors="coerce")
                    asn = np.full(len(ok), None, dtype=object)
                    has = num.notna().to_numpy()
                    asn[has] = distinct_map(num[has], lambda u: "AS" + u.astype("Int64").astype(str))
                    out["asn"] = asn
                if not batch.has_column(self.table, "country"):
                    result.skips.append(
                        Skip(self.name, "column 'country' absent: IP scored without its country", len(ok))
                    )
                else:
                    cc = ok["country"].astype("object")
                    cc = cc.where(known_mask(cc))
                    out["country"] = distinct_map(cc, lambda u: u.str.upper())
        if "ua" in feats:
            if not batch.has_column(self.table, "user_agent"):
                result.skips.append(Skip(self.name, "column 'user_agent' absent: user agent not scored", len(ok)))
            else:
                ua = col("user_agent")
                assert ua is not None
                parsed = parse_series(pd.Series(ua, index=ok.index, dtype=object))
                out["ua"] = ua
                out["browser"] = parsed["browser_version"].to_numpy(dtype=object)
                out["os"] = parsed["os_version"].to_numpy(dtype=object)
                out["device_type"] = parsed["device_type"].to_numpy(dtype=object)
        if "device" in feats:
            if not batch.has_column(self.table, "device_id"):
                result.skips.append(Skip(self.name, "column 'device_id' absent: device not scored", len(ok)))
            else:
                dev = col("device_id")
                assert dev is not None
                out["device"] = dev
        for name in ("ip", "ua", "device"):
            if name in out and pd.isna(out[name]).any():
                result.skips.append(Skip(self.name, f"{name} unknown: not scored", int(pd.isna(out[name]).sum())))
        return out

    # -- output ---------------------------------------------------------------------------------------
    def _finding(
        self,
        row: Mapping[str, Any],
        log10: float,
        history: int,
        factors: Mapping[str, float],
        counts: Mapping[str, Mapping[str, int]],
        values: Mapping[str, Any],
        client: tuple[float, float, str] = (1.0, 1.0, ""),
        novelty: Mapping[str, float] | None = None,
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
        raw, used, gate = client
        nov = novelty or {}
        if nov.get("factor", 1.0) >= 1.5:
            parts.append(
                f"new IPs rare on that network: {int(nov['new_ips_on_network'])} in "
                f"{int(nov['logins_on_network'])} logins (×{_fmt(nov['factor'])} in the IP factor)"
            )
        if gate:
            parts.append(_GATE_TEXT[gate].format(f=_fmt(used)))
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
                "client_factor": round(raw, 3),
                "client_factor_used": round(used, 3),
                "client_gate": gate or None,
                "ip_novelty": {k: round(v, 3) if k == "factor" else int(v) for k, v in nov.items()} or None,
                "text": text,
                "ip": _plain(row.get("ip")),
                "country": _plain(row.get("country")),
                "city": _plain(row.get("city")),
                "device_id": _plain(row.get("device_id")),
                "device": describe(row.get("user_agent")),
            },
        )


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
