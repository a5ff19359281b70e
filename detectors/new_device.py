"""New device, new IP subnet, new network (ASN): a successful login with a property the account has
not used lately.

Okta's ANOMALOUS_DEVICE / ANOMALOUS_IP and the IP, subnet and ASN parts of Entra's unfamiliar
sign-in properties (research b3, b4).  Three small detectors share one mechanism
(:mod:`detectors.login_history`): familiar = used within ``window_days`` or within the last
``history_logins`` successful logins; nothing is judged during the learning period.

Each alone is weak evidence (people buy phones, travel and switch networks), so the default pack
combines them in the statistical login risk (:mod:`detectors.login_risk`) and uses these for
context and for stricter packs.  ``new_device`` reports Auth0's *partial match*: the device is new
but its browser family is known (score 0.3), else a full mismatch (score 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Finding, Param, Skip
from detectors.batch import Batch
from detectors.columns import as_str, distinct_map, known_mask
from detectors.geo import subnet_of
from detectors.impossible_travel import HOSTING_ASNS
from detectors.login_history import History, Level, successful_in
from detectors.useragent import describe, parse, parse_series

_COMMON: dict[str, Param] = {
    "window_days": Param(90, "A value used within this many days is familiar.", kind=int, ge=1, le=3650),
    "history_logins": Param(
        20, "A value used in the last N successful logins is familiar (0: off).", kind=int, ge=0, le=1000
    ),
    "min_history_logins": Param(
        5, "Learning period: earlier successful logins needed before judging.", kind=int, ge=0, le=1000
    ),
    "min_history_days": Param(0.0, "Learning period: days since the first successful login.", ge=0, le=365),
}
_EVIDENCE_COLUMNS = (
    "account_id",
    "ts",
    "event_id",
    "ip",
    "device_id",
    "country",
    "city",
    "user_agent",
    "asn",
    "asn_org",
    "is_anonymous_ip",
)


class _NewValue(Detector):
    """A successful login whose value at ``level`` is unfamiliar to the account."""

    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    level: ClassVar[str]
    source_column: ClassVar[str]
    score: ClassVar[float] = 0.4

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> np.ndarray | None:
        """The value per successful login as str (None where unknown); None when the column is absent."""
        if not batch.has_column(self.table, self.source_column):
            result.skips.append(
                Skip(self.name, f"column '{self.source_column}' absent: {self.level} not checked", len(ok))
            )
            return None
        col = ok[self.source_column]
        out = as_str(col)
        out[~known_mask(col)] = None
        return out

    def context(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult | None = None) -> dict[str, Level]:
        """Other levels to remember alongside (used by evidence)."""
        return {}

    def evidence(self, row: Mapping[str, Any], value: str, known: list[str], partial: bool) -> dict[str, Any]:
        return {
            "level": self.level,
            "value": value,
            "known": known,
            "ip": row.get("ip"),
            "device_id": row.get("device_id"),
            "country": row.get("country"),
            "city": row.get("city"),
            "device": describe(row.get("user_agent")),  # "Chrome 131 on Windows", for people
        }

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = successful_in(batch, df)
        if ok.empty:
            return result
        vals_all = self.values(ok, batch, result)
        if vals_all is None:
            return result
        known = ~pd.isna(vals_all)
        if (~known).any():
            result.skips.append(Skip(self.name, f"{self.level} unknown", int((~known).sum())))
        hist = History(ok, profiles)
        eligible = hist.learned(self.p["min_history_logins"], self.p["min_history_days"])
        rows = np.flatnonzero(known)
        lvl = Level(rows, vals_all[rows])
        window, last_n = self.p["window_days"], self.p["history_logins"]
        seen: dict[str, Level] = {}
        if len(rows):
            fam = hist.familiar(lvl, self.level, window, last_n)
            flag = np.flatnonzero(~fam & eligible[rows])
            ctx = self.context(ok, batch, result)
            partial = self._partial(hist, ctx, rows[flag]) if len(flag) else {}
            if len(flag):
                before = hist.known_before(lvl, self.level, window)
                for k, row in zip(flag.tolist(), _records(ok, rows[flag]), strict=True):
                    pos = int(rows[k])
                    result.findings.append(self._make(row, lvl.vals[k], before(k), partial.get(pos, False)))
            seen[self.level] = lvl
            seen.update(ctx)
        else:
            seen.update(self.context(ok, batch, result))
        result.profiles = hist.update(seen, window, last_n)
        return result

    def _partial(self, hist: History, ctx: Mapping[str, Level], flagged: np.ndarray) -> dict[int, bool]:
        """Whether the first context level (the browser) was familiar, for each flagged position."""
        if not ctx:
            return {}
        level, lvl = next(iter(ctx.items()))
        fam = hist.familiar(lvl, level, self.p["window_days"], self.p["history_logins"])
        at = np.isin(lvl.rows, flagged)
        return dict(zip(lvl.rows[at].tolist(), fam[at].tolist(), strict=True))

    def _make(self, row: Mapping[str, Any], value: str, known: list[str], partial: bool) -> Finding:
        score = self.score - (0.2 if partial else 0.0)
        return self.finding(
            row["account_id"],
            row["ts"],
            key=f"{row['event_id']}:{self.level}",
            kind=self.level,
            score=score,
            event_ids=[row["event_id"]],
            evidence=self.evidence(row, value, known, partial),
        )


class NewDevice(_NewValue):
    name = "new_device"
    level = "device"
    source_column = "device_id"
    optional_columns = ("device_id", "user_agent", "ip", "country", "city")
    description = "A successful login from a device the account has not used lately."
    params: ClassVar[Mapping[str, Param]] = dict(_COMMON)
    score = 0.5

    def context(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult | None = None) -> dict[str, Level]:
        if not batch.has_column(self.table, "user_agent"):
            if result is not None:
                result.skips.append(Skip(self.name, "column 'user_agent' absent: partial match not judged", len(ok)))
            return {}
        fam = parse_series(ok["user_agent"])["browser"].to_numpy(dtype=object)
        rows = np.flatnonzero(~pd.isna(fam))
        return {"browser": Level(rows, as_str(fam[rows]))}

    def evidence(self, row: Mapping[str, Any], value: str, known: list[str], partial: bool) -> dict[str, Any]:
        ev = super().evidence(row, value, known, partial)
        ua = row.get("user_agent")
        ev["user_agent"] = ua
        ev["browser"] = parse(ua).browser if isinstance(ua, str) and ua.strip() else None
        ev["partial_match"] = partial  # Auth0: device unknown, browser family known
        return ev


class NewSubnet(_NewValue):
    name = "new_subnet"
    level = "subnet"
    source_column = "ip"
    optional_columns = ("ip", "asn", "country", "city", "device_id")
    description = "A successful login from an IP network (/24, /48 for IPv6) the account has not used lately."
    params: ClassVar[Mapping[str, Param]] = dict(_COMMON)
    score = 0.3

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> np.ndarray | None:
        raw = super().values(ok, batch, result)
        return None if raw is None else subnet_of(pd.Series(raw, index=ok.index)).to_numpy(dtype=object)

    def evidence(self, row: Mapping[str, Any], value: str, known: list[str], partial: bool) -> dict[str, Any]:
        ev = super().evidence(row, value, known, partial)
        ev["asn"] = row.get("asn")
        return ev


class NewAsn(_NewValue):
    name = "new_asn"
    level = "asn"
    source_column = "asn"
    optional_columns = ("asn", "asn_org", "ip", "country", "city", "device_id", "is_anonymous_ip")
    description = "A successful login from a network (autonomous system) the account has not used lately."
    params: ClassVar[Mapping[str, Param]] = {
        **_COMMON,
        "hosting_asns": Param(HOSTING_ASNS, "ASNs of hosting / VPN networks (evidence 'hosting').", kind=list),
    }
    score = 0.4

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> np.ndarray | None:
        has_num = batch.has_column(self.table, "asn")
        has_org = "asn_org" in ok.columns  # added by geo enrichment from an offline database
        if not has_num and not has_org:
            result.skips.append(Skip(self.name, "column 'asn' absent: asn not checked", len(ok)))
            return None
        out = np.full(len(ok), None, dtype=object)
        if has_org:
            org = ok["asn_org"].astype("object")
            known = known_mask(org)
            out[known] = distinct_map(org[known], lambda u: "org:" + u.astype(str).str.strip().str.upper())
        if has_num:
            num = pd.to_numeric(ok["asn"], errors="coerce")
            has = num.notna().to_numpy()
            out[has] = distinct_map(num[has], lambda u: "AS" + u.astype("Int64").astype(str))
        return out

    def evidence(self, row: Mapping[str, Any], value: str, known: list[str], partial: bool) -> dict[str, Any]:
        ev = super().evidence(row, value, known, partial)
        asn = row.get("asn")
        ev["asn"] = asn
        ev["asn_org"] = row.get("asn_org")
        # Entra's anonymous-IP detection (research b5): a new network that is an anonymiser or a
        # hosting provider is a stronger signal than a new home or mobile network
        anon = row.get("is_anonymous_ip")
        ev["is_anonymous_ip"] = False if anon is None or pd.isna(anon) else bool(anon)
        ev["hosting"] = bool(asn is not None and not pd.isna(asn) and int(asn) in set(self.p["hosting_asns"]))
        return ev


def _records(ok: pd.DataFrame, positions: np.ndarray) -> list[dict[str, Any]]:
    """Plain rows for the flagged positions only (evidence), as ``DataFrame.to_dict`` gives them."""
    cols = [c for c in _EVIDENCE_COLUMNS if c in ok.columns]
    return [{str(k): v for k, v in r.items()} for r in ok.iloc[positions][cols].to_dict("records")]
