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
from detectors.columns import as_str, distinct_map, known_mask
from detectors.geo import haversine_km
from detectors.login_history import History, KnownBefore, Level, successful_in
from detectors.useragent import describe

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
        ok = successful_in(batch, df)
        if ok.empty:
            return result
        hist = History(ok, profiles)
        eligible = hist.learned(self.p["min_history_logins"], self.p["min_history_days"])
        window, last_n = self.p["window_days"], self.p["history_logins"]
        seen: dict[str, Level] = {}
        has_pt = batch.has_column(self.table, "lat") and batch.has_column(self.table, "lon")
        country: np.ndarray | None = None
        for level in self.p["levels"]:
            if not batch.has_column(self.table, level):
                result.skips.append(Skip(self.name, f"column '{level}' absent: {level} not checked", len(ok)))
                continue
            if level == "city" and not batch.has_column(self.table, "country"):
                result.skips.append(Skip(self.name, "column 'country' absent: city not checked", len(ok)))
                continue
            known = known_mask(ok[level])
            if level == "city":
                known &= known_mask(ok["country"])
            if (~known).any():
                result.skips.append(Skip(self.name, f"{level} unknown", int((~known).sum())))
            rows = np.flatnonzero(known)
            if len(rows) == 0:
                continue
            if country is None:
                country = distinct_map(ok["country"], lambda u: u.astype(str).str.upper())
            vals = country[rows]
            if level == "city":
                city = distinct_map(ok["city"].iloc[rows], lambda u: u.astype(str).str.strip())
                vals = (pd.Series(vals, dtype=object) + "/" + pd.Series(city, dtype=object)).to_numpy(dtype=object)
            extra = None
            if level == "city" and has_pt:
                extra = {
                    "lat_": ok["lat"].astype("float64").to_numpy()[rows],
                    "lon_": ok["lon"].astype("float64").to_numpy()[rows],
                }
            lvl = Level(rows, as_str(vals), extra)
            fam = hist.familiar(lvl, level, window, last_n)
            flag = np.flatnonzero(~fam & eligible[rows])
            seen[level] = lvl
            if len(flag):
                before = hist.known_before(lvl, level, window)
                for k, row in zip(flag.tolist(), _records(ok, rows[flag]), strict=True):
                    result.findings.append(self._finding(hist, lvl, k, row, level, has_pt, before))
        result.profiles = hist.update(seen, window, last_n)
        return result

    def _finding(
        self,
        hist: History,
        lvl: Level,
        k: int,
        row: Mapping[str, Any],
        level: str,
        has_pt: bool,
        before: KnownBefore,
    ) -> Any:
        acct = str(row["account_id"])
        known = before(k)
        evidence: dict[str, Any] = {
            "level": level,
            "country": row.get("country"),
            "city": row.get("city"),
            "ip": row.get("ip"),
            "device_id": row.get("device_id"),
            "device": describe(row.get("user_agent")),
            "known": known,
            "window_days": self.p["window_days"],
            "history_logins": self.p["history_logins"],
        }
        score = _LEVEL_SCORE[level]
        if level == "city":
            near = _nearest_known(hist, lvl, before, k, row) if has_pt else None
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
    hist: History, lvl: Level, before: KnownBefore, k: int, row: Mapping[str, Any]
) -> tuple[str, float] | None:
    """The closest city the account used before this login, and its distance in km."""
    lat, lon = row.get("lat"), row.get("lon")
    if lat is None or lon is None or pd.isna(lat) or pd.isna(lon):
        return None
    names, lats, lons = [], [], []
    for j in hist.stored(int(hist.code[lvl.rows[k]]), "city").tolist():
        e = hist.e_entry[j]
        if len(e) >= 4 and e[2] is not None and e[3] is not None:
            names.append(str(hist.e_val[j]))
            lats.append(float(e[2]))
            lons.append(float(e[3]))
    assert lvl.extra is not None
    earlier = before.earlier(k)
    e_lat, e_lon = lvl.extra["lat_"][earlier], lvl.extra["lon_"][earlier]
    pt = ~np.isnan(e_lat) & ~np.isnan(e_lon)
    names += [str(v) for v in lvl.vals[earlier[pt]].tolist()]
    lats += e_lat[pt].tolist()
    lons += e_lon[pt].tolist()
    if not names:
        return None
    d = haversine_km(np.array(lats), np.array(lons), float(lat), float(lon))
    i = int(np.argmin(d))
    return names[i], float(d[i])


_EVIDENCE_COLUMNS = ("account_id", "ts", "event_id", "country", "city", "ip", "device_id", "lat", "lon", "user_agent")


def _records(ok: pd.DataFrame, positions: np.ndarray) -> list[dict[str, Any]]:
    cols = [c for c in _EVIDENCE_COLUMNS if c in ok.columns]
    return [{str(k): v for k, v in r.items()} for r in ok.iloc[positions][cols].to_dict("records")]
