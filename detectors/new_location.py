"""New country / new city: a successful login from a place the account has not used lately.

Okta's ANOMALOUS_LOCATION and Entra's "new country" (research/fraud-anchors.md b1): a value is
familiar when a successful login of the same account used it within ``window_days`` or within its
last ``history_logins`` successful logins.  Accounts still in their learning period (fewer than
``min_history_logins`` earlier successful logins, or a first login younger than
``min_history_days``) are not judged.

The city level is keyed by ``country/city`` (there is a Valencia in Spain and one in Venezuela).
Its evidence names the nearest city the account did use and how far away it is, so that a rule
can tell a suburb from another continent (``finding.evidence.nearest_known_km``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.geo import haversine_km
from detectors.login_history import (
    KnownValues,
    familiar,
    last_use,
    learned,
    successful,
    update_profiles,
    value_is_known,
)

_LEVEL_SCORE = {"country": 0.7, "city": 0.3}


class NewLocation(Detector):
    name = "new_location"
    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("country", "city", "lat", "lon", "ip", "device_id")
    description = "A successful login from a country (or city) the account has not used lately."
    params: ClassVar[Mapping[str, Param]] = {
        "levels": Param(("country",), "Which levels to check: country, city.", kind=list, choices=("country", "city")),
        "window_days": Param(90, "A location used within this many days is familiar.", kind=int, ge=1, le=3650),
        "history_logins": Param(
            20,
            "A location used in the last N successful logins is familiar (0: off).",
            kind=int,
            ge=0,
            le=1000,
        ),
        "min_history_logins": Param(
            3, "Learning period: earlier successful logins needed before judging.", kind=int, ge=0, le=1000
        ),
        "min_history_days": Param(0.0, "Learning period: days since the first successful login.", ge=0, le=365),
    }

    def _check_params(self) -> None:
        if not self.p["levels"]:
            raise ParameterError("The 'levels' parameter of NewLocation must name at least one level.")

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = successful(df)
        if ok.empty:
            return result
        eligible, ords = learned(ok, profiles, self.p["min_history_logins"], self.p["min_history_days"])
        seen: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
        extra: dict[str, pd.DataFrame] = {}
        has_pt = batch.has_column(self.table, "lat") and batch.has_column(self.table, "lon")
        for level in self.p["levels"]:
            if not batch.has_column(self.table, level):
                result.skips.append(Skip(self.name, f"column '{level}' absent: {level} not checked", len(ok)))
                continue
            if level == "city" and not batch.has_column(self.table, "country"):
                result.skips.append(Skip(self.name, "column 'country' absent: city not checked", len(ok)))
                continue
            known = value_is_known(ok[level])
            if level == "city":
                known &= value_is_known(ok["country"])
            if (~known).any():
                result.skips.append(Skip(self.name, f"{level} unknown", int((~known).sum())))
            sub = ok[known]
            if sub.empty:
                continue
            vals = sub["country"].astype(str).str.upper()
            if level == "city":
                vals = vals + "/" + sub["city"].astype(str).str.strip()
            prev_ts, prev_o = last_use(sub, vals, ords[sub.index], level, profiles)
            fam = familiar(sub["ts"], ords[sub.index], prev_ts, prev_o, self.p["window_days"], self.p["history_logins"])
            flag = ~fam & eligible[sub.index]
            seen[level] = (sub, vals)
            if level == "city" and has_pt:
                extra[level] = sub[["lat", "lon"]].astype("float64").rename(columns={"lat": "lat_", "lon": "lon_"})
            if flag.any():
                before = KnownValues(profiles, level, sub, vals, self.p["window_days"])
                flagged = sub.index[flag.to_numpy()]
                for idx, row in zip(flagged, _records(sub.loc[flagged]), strict=True):
                    result.findings.append(self._finding(sub, vals, idx, row, level, profiles, has_pt, before))
        update_profiles(
            result.profiles, profiles, ok, ords, seen, self.p["window_days"], self.p["history_logins"], extra
        )
        return result

    def _finding(
        self,
        sub: pd.DataFrame,
        vals: pd.Series,
        idx: Any,
        row: Mapping[str, Any],
        level: str,
        profiles: Mapping[str, Mapping[str, Any]],
        has_pt: bool,
        before: KnownValues,
    ) -> Any:
        acct = str(row["account_id"])
        prof = profiles.get(acct, {})
        known = before.before(acct, idx)
        evidence: dict[str, Any] = {
            "level": level,
            "country": row.get("country"),
            "city": row.get("city"),
            "ip": row.get("ip"),
            "device_id": row.get("device_id"),
            "known": known,
            "window_days": self.p["window_days"],
            "history_logins": self.p["history_logins"],
        }
        score = _LEVEL_SCORE[level]
        if level == "city":
            near = _nearest_known(prof, sub, vals, before, acct, idx, row) if has_pt else None
            evidence["nearest_known"] = near[0] if near else None
            evidence["nearest_known_km"] = round(near[1]) if near else None
            if near:
                score = 0.2 + 0.5 * min(1.0, near[1] / 1000.0)
        return self.finding(
            acct,
            row["ts"],
            key=f"{row['event_id']}:{level}",
            kind=level,
            score=score,
            event_ids=[row["event_id"]],
            evidence=evidence,
        )


def _nearest_known(
    prof: Mapping[str, Any],
    sub: pd.DataFrame,
    vals: pd.Series,
    before: KnownValues,
    acct: str,
    idx: Any,
    row: Mapping[str, Any],
) -> tuple[str, float] | None:
    """The closest city the account used before this login, and its distance in km."""
    lat, lon = row.get("lat"), row.get("lon")
    if lat is None or lon is None or pd.isna(lat) or pd.isna(lon):
        return None
    names, lats, lons = [], [], []
    for v, e in prof.get("seen", {}).get("city", {}).items():
        if len(e) >= 4 and e[2] is not None and e[3] is not None:
            names.append(v)
            lats.append(float(e[2]))
            lons.append(float(e[3]))
    mine = before.pos.get(acct, np.array([], dtype=np.int64))
    earlier = sub.iloc[mine[mine < before.index[idx]]]
    earlier = earlier[earlier["lat"].notna() & earlier["lon"].notna()]
    names += [str(v) for v in vals[earlier.index]]
    lats += list(earlier["lat"].astype(float))
    lons += list(earlier["lon"].astype(float))
    if not names:
        return None
    d = haversine_km(np.array(lats), np.array(lons), float(lat), float(lon))
    i = int(np.argmin(d))
    return names[i], float(d[i])


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]
