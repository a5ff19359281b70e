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

import pandas as pd

from detectors.base import Detector, DetectorResult, Finding, Param, Skip
from detectors.batch import Batch
from detectors.geo import subnet_of
from detectors.impossible_travel import HOSTING_ASNS
from detectors.login_history import (
    KnownValues,
    familiar,
    last_use,
    learned,
    successful,
    update_profiles,
    value_is_known,
)
from detectors.useragent import parse, parse_series

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


class _NewValue(Detector):
    """A successful login whose value at ``level`` is unfamiliar to the account."""

    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    level: ClassVar[str]
    source_column: ClassVar[str]
    score: ClassVar[float] = 0.4

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> pd.Series | None:
        """The value per successful login (None where unknown); None when the column is absent."""
        if not batch.has_column(self.table, self.source_column):
            result.skips.append(
                Skip(self.name, f"column '{self.source_column}' absent: {self.level} not checked", len(ok))
            )
            return None
        return ok[self.source_column].astype("object").where(value_is_known(ok[self.source_column]))

    def context(
        self, ok: pd.DataFrame, batch: Batch, result: DetectorResult | None = None
    ) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
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
        }

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = successful(df)
        if ok.empty:
            return result
        vals_all = self.values(ok, batch, result)
        if vals_all is None:
            return result
        known = vals_all.notna()
        if (~known).any():
            result.skips.append(Skip(self.name, f"{self.level} unknown", int((~known).sum())))
        eligible, ords = learned(ok, profiles, self.p["min_history_logins"], self.p["min_history_days"])
        sub = ok[known]
        vals = vals_all[known].astype(str)
        seen: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
        if not sub.empty:
            prev_ts, prev_o = last_use(sub, vals, ords[sub.index], self.level, profiles)
            fam = familiar(sub["ts"], ords[sub.index], prev_ts, prev_o, self.p["window_days"], self.p["history_logins"])
            flag = ~fam & eligible[sub.index]
            ctx = self.context(ok, batch, result)
            partial = self._partial(sub, ords, profiles, ctx, flag)
            before = KnownValues(profiles, self.level, sub, vals, self.p["window_days"]) if flag.any() else None
            flagged = sub.index[flag.to_numpy()]
            for idx, row in zip(flagged, _records(sub.loc[flagged]), strict=True):
                acct = str(row["account_id"])
                assert before is not None
                known_vals = before.before(acct, idx)
                is_partial = bool(partial.get(idx, False))
                result.findings.append(self._make(row, vals[idx], known_vals, is_partial))
            seen[self.level] = (sub, vals)
            seen.update(ctx)
        else:
            seen.update(self.context(ok, batch, result))
        update_profiles(result.profiles, profiles, ok, ords, seen, self.p["window_days"], self.p["history_logins"])
        return result

    def _partial(
        self,
        sub: pd.DataFrame,
        ords: pd.Series,
        profiles: Mapping[str, Mapping[str, Any]],
        ctx: Mapping[str, tuple[pd.DataFrame, pd.Series]],
        flag: pd.Series,
    ) -> dict[Any, bool]:
        if not ctx or not flag.any():
            return {}
        level, (rows, vals) = next(iter(ctx.items()))
        prev_ts, prev_o = last_use(rows, vals, ords[rows.index], level, profiles)
        fam = familiar(rows["ts"], ords[rows.index], prev_ts, prev_o, self.p["window_days"], self.p["history_logins"])
        return {i: bool(fam[i]) for i in sub.index[flag.to_numpy()] if i in fam.index}

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

    def context(
        self, ok: pd.DataFrame, batch: Batch, result: DetectorResult | None = None
    ) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
        if not batch.has_column(self.table, "user_agent"):
            if result is not None:
                result.skips.append(Skip(self.name, "column 'user_agent' absent: partial match not judged", len(ok)))
            return {}
        fam = parse_series(ok["user_agent"])["browser"]
        known = fam.notna()
        return {"browser": (ok[known], fam[known].astype(str))}

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

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> pd.Series | None:
        raw = super().values(ok, batch, result)
        return None if raw is None else subnet_of(raw)

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

    def values(self, ok: pd.DataFrame, batch: Batch, result: DetectorResult) -> pd.Series | None:
        has_num = batch.has_column(self.table, "asn")
        has_org = "asn_org" in ok.columns  # added by geo enrichment from an offline database
        if not has_num and not has_org:
            result.skips.append(Skip(self.name, "column 'asn' absent: asn not checked", len(ok)))
            return None
        out = pd.Series(None, index=ok.index, dtype="object")
        if has_org:
            org = ok["asn_org"].astype("object")
            out = out.where(~value_is_known(org), "org:" + org.astype(str).str.strip().str.upper())
        if has_num:
            num = pd.to_numeric(ok["asn"], errors="coerce")
            out = out.where(num.isna(), "AS" + num.astype("Int64").astype(str))
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


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]
