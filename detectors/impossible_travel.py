"""Impossible travel: two successive successful logins further apart than anyone can travel.

Research b2.  authentik allows ``1000 km/h x max(elapsed_hours, 1) + tolerance``; Okta's default
velocity is 805 km/h, Airlock's 1000 km/h.  Here ``speed = distance / max(elapsed, min_hours)``
and a login is flagged when the speed exceeds ``max_speed_kmh`` and the distance exceeds
``min_distance_km``.  The distance first loses ``tolerance_km`` and, for a point known only to
country precision (enriched from the capital), the country's radius: a guess must not look like a
flight.

Logins through an anonymous IP (``is_anonymous_ip``) or a hosting / VPN network (``hosting_asns``)
say where the exit node is, not the person: they are left out of the chain (counted as skips) and
the next real login is compared with the last real one, as Entra's atypical travel ignores VPNs.
Entra also ignores pairs of places that many other users travel between; that needs other
accounts' data, which a per-account detector does not read.

The evidence is authentik's payload plus a sentence for a message or a ticket:
"Seoul → São Paulo, 18,300 km in 2 h 10 min: 8,400 km/h".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, DetectorResult, Param, ParameterError, Skip
from detectors.batch import Batch
from detectors.columns import NAT, cumcount, isoformat_utc, previous_in_group, to_ns
from detectors.geo import haversine_km, places
from detectors.login_history import successful_in
from detectors.useragent import describe

# Cloud, hosting and commercial-VPN networks whose addresses say nothing about where a person is.
# Operators extend the list in the rule pack (``detectors.impossible_travel.hosting_asns``).
HOSTING_ASNS = (
    16509,
    14618,
    8987,  # Amazon
    15169,
    396982,
    19527,  # Google
    8075,
    8068,  # Microsoft
    14061,  # DigitalOcean
    16276,  # OVH
    24940,  # Hetzner
    63949,  # Akamai / Linode
    20473,  # Vultr (Choopa)
    45102,
    37963,  # Alibaba
    132203,  # Tencent
    31898,  # Oracle
    13335,  # Cloudflare (WARP)
    9009,  # M247 (many VPN providers)
    60068,  # Datacamp (CDN77, VPN exits)
    212238,  # Datacamp
    51167,  # Contabo
    212512,
    62240,  # Clouvider
)


class ImpossibleTravel(Detector):
    name = "impossible_travel"
    family = "login"
    table = "logins"
    required_columns = ("event_id", "account_id", "ts", "success")
    optional_columns = ("lat", "lon", "country", "city", "asn", "is_anonymous_ip", "ip")
    description = "Two successive successful logins further apart than a plane can fly in the time between."
    params: ClassVar[Mapping[str, Param]] = {
        "max_speed_kmh": Param(
            1000.0, "Flag above this speed (authentik and Airlock: 1000, Okta: 805).", gt=0, le=100_000
        ),
        "min_distance_km": Param(500.0, "Ignore jumps shorter than this (after tolerances).", ge=0, le=20_000),
        "min_hours": Param(1.0, "Elapsed time is at least this many hours (authentik: 1).", gt=0, le=48),
        "tolerance_km": Param(50.0, "Subtracted from every distance: GeoIP error of a city fix.", ge=0, le=2000),
        "min_history_logins": Param(
            1, "Earlier located successful logins needed (the previous one).", kind=int, ge=1, le=1000
        ),
        "skip_anonymous": Param(True, "Leave logins through anonymous IPs out of the chain.", kind=bool),
        "hosting_asns": Param(HOSTING_ASNS, "ASNs of hosting / VPN networks left out of the chain.", kind=list),
    }

    def _check_params(self) -> None:
        bad = [a for a in self.p["hosting_asns"] if isinstance(a, bool) or not isinstance(a, int)]
        if bad:
            raise ParameterError(f"The 'hosting_asns' parameter of ImpossibleTravel must list AS numbers. Got {bad!r}.")

    def scan(self, batch: Batch, profiles: Mapping[str, Mapping[str, Any]], *, now: datetime) -> DetectorResult:
        result = DetectorResult()
        df = self.frame(batch)
        if df is None:
            return result
        ok = successful_in(batch, df)
        if ok.empty:
            return result
        if not (batch.has_column(self.table, "lat") and batch.has_column(self.table, "lon")):
            result.skips.append(Skip(self.name, "columns 'lat'/'lon' absent: travel not checked", len(ok)))
            return result
        located = ok["lat"].notna() & ok["lon"].notna()
        if (~located).any():
            result.skips.append(Skip(self.name, "location unknown", int((~located).sum())))
        keep = located
        for col, what in (("is_anonymous_ip", "anonymous IPs"), ("asn", "hosting networks")):
            if not batch.has_column(self.table, col):
                result.skips.append(Skip(self.name, f"column '{col}' absent: {what} not left out", 0))
        if self.p["skip_anonymous"] and batch.has_column(self.table, "is_anonymous_ip"):
            anon = ok["is_anonymous_ip"].fillna(False).astype(bool) & keep
            if anon.any():
                result.skips.append(Skip(self.name, "anonymous IP (VPN/Tor): not a location", int(anon.sum())))
            keep &= ~anon
        if self.p["hosting_asns"] and batch.has_column(self.table, "asn"):
            hosting = ok["asn"].isin([int(a) for a in self.p["hosting_asns"]]).fillna(False).astype(bool) & keep
            if hosting.any():
                result.skips.append(Skip(self.name, "hosting/VPN network: not a location", int(hosting.sum())))
            keep &= ~hosting
        chain = ok[keep]
        # accounts whose only rows in this batch are not located still count toward nothing
        if chain.empty:
            return result
        prec = chain["geo_precision"] if "geo_precision" in chain.columns else pd.Series("given", index=chain.index)
        # each row's previous located login of the same account: in the batch (integer codes and
        # positions, no groupby), else the profile's last one; text columns are read only at the
        # rows that need them (Arrow strings become Python objects only there)
        codes, uniq = pd.factorize(chain["account_id"])
        accts = [str(a) for a in uniq]
        stored = [profiles.get(a, {}) for a in accts]
        lasts = [p.get("last") or {} for p in stored]
        prev_pos = previous_in_group(codes)
        first = prev_pos < 0
        at = np.where(first, 0, prev_pos)

        def column_at(col: str, rows: np.ndarray) -> np.ndarray:
            series = prec if col == "precision" else chain[col]
            return series.iloc[rows].to_numpy(dtype=object)

        def prev_values(col: str, rows: np.ndarray) -> np.ndarray:
            """The previous row's ``col`` at ``rows`` (object); for a first row the profile's (None if absent)."""
            out = np.empty(len(rows), dtype=object)
            f = first[rows]
            for j, c in zip(np.flatnonzero(f).tolist(), codes[rows[f]].tolist(), strict=True):
                out[j] = lasts[c].get(col)
            if (~f).any():
                out[~f] = column_at(col, at[rows[~f]]) if col == "precision" or col in chain.columns else None
            return out

        cur_ns = to_ns(chain["ts"])
        p_ns = to_ns(pd.to_datetime(pd.Series([x.get("ts") for x in lasts], dtype=object), utc=True,
                                    format="ISO8601"))
        prev_ns = np.where(first, p_ns[codes], cur_ns[at])
        cur_lat, cur_lon = chain["lat"].astype("float64").to_numpy(), chain["lon"].astype("float64").to_numpy()
        p_lat = pd.Series([x.get("lat") for x in lasts], dtype=object).astype("float64").to_numpy()
        p_lon = pd.Series([x.get("lon") for x in lasts], dtype=object).astype("float64").to_numpy()
        plat = np.where(first, p_lat[codes], cur_lat[at])
        plon = np.where(first, p_lon[codes], cur_lon[at])
        prior_n = np.array([int(p.get("n", 0)) for p in stored], dtype=np.int64)
        n_prior = cumcount(codes) + prior_n[codes]

        dist = pd.Series(haversine_km(plat, plon, cur_lat, cur_lon), index=chain.index)
        cur_coarse = _is_country(prec).to_numpy(dtype=bool)
        stored_coarse = _is_country(pd.Series([x.get("precision") for x in lasts] + [None], dtype=object)
                                    ).to_numpy(dtype=bool)[:-1]
        prev_coarse = np.where(first, stored_coarse[codes], cur_coarse[at])
        prev_radius = np.zeros(len(chain))
        rows = np.flatnonzero(prev_coarse)
        if len(rows):
            prev_radius[rows] = _radius(pd.Series(prev_values("precision", rows), dtype=object),
                                        pd.Series(prev_values("country", rows), dtype=object)).to_numpy()
        slack = self.p["tolerance_km"] + pd.Series(prev_radius, index=chain.index) + _radius(prec, chain["country"])
        eff = (dist - slack).clip(lower=0)
        # one point known only as "somewhere in country X" and the other in X: no evidence of travel
        rows = np.flatnonzero(prev_coarse | cur_coarse)
        if len(rows) and "country" in chain.columns:
            same_cc = upper_str(pd.Series(prev_values("country", rows), dtype=object)) == upper_str(
                pd.Series(column_at("country", rows), dtype=object))
            zero = np.zeros(len(chain), dtype=bool)
            zero[rows[same_cc.astype(bool)]] = True
            eff = eff.where(~zero, 0.0)
        known = (prev_ns != NAT) & (cur_ns != NAT)
        hours = pd.Series(np.where(known, (cur_ns - prev_ns) / 1_000_000_000, np.nan) / 3600.0, index=chain.index)
        speed = eff / hours.clip(lower=self.p["min_hours"])
        flag = (
            dist.notna()
            & (n_prior >= self.p["min_history_logins"])
            & (eff > self.p["min_distance_km"])
            & (speed > self.p["max_speed_kmh"])
            & (hours >= 0)
        )
        hits = np.flatnonzero(flag.fillna(False).to_numpy())
        dist_v, eff_v = dist.to_numpy(dtype=np.float64), eff.to_numpy(dtype=np.float64)
        hours_v, speed_v = hours.to_numpy(dtype=np.float64), speed.to_numpy(dtype=np.float64)
        prev_of = {col: prev_values(col, hits) for col in ("event_id", "country", "city", "precision")}
        for j, i in enumerate(hits.tolist()):
            prev_row = {
                "ts": pd.Timestamp(int(prev_ns[i]), tz="UTC"),
                "lat": plat[i],
                "lon": plon[i],
                **{col: vals[j] for col, vals in prev_of.items()},
            }
            result.findings.append(
                self._finding(
                    chain.iloc[i],
                    prev_row,
                    float(dist_v[i]),
                    float(eff_v[i]),
                    float(hours_v[i]),
                    float(speed_v[i]),
                    str(prec.iat[i]),
                )
            )
        is_last = np.ones(len(chain), dtype=bool)
        is_last[prev_pos[prev_pos >= 0]] = False
        last = np.flatnonzero(is_last)  # each account's last row, in row order
        n_new = np.bincount(codes, minlength=len(uniq))
        isos = isoformat_utc(cur_ns[last])
        lat, lon = cur_lat[last].tolist(), cur_lon[last].tolist()
        eids = [str(v) for v in column_at("event_id", last).tolist()]
        absent = [None] * len(last)
        cc = [_str(v) for v in column_at("country", last).tolist()] if "country" in chain.columns else absent
        city = [_str(v) for v in column_at("city", last).tolist()] if "city" in chain.columns else absent
        precs = [str(v) for v in column_at("precision", last).tolist()]
        for i, c in enumerate(codes[last].tolist()):
            result.profiles[accts[c]] = {
                "n": int(prior_n[c]) + int(n_new[c]),
                "last": {
                    "ts": isos[i],
                    "lat": lat[i],
                    "lon": lon[i],
                    "event_id": eids[i],
                    "country": cc[i],
                    "city": city[i],
                    "precision": precs[i],
                },
            }
        return result

    def _finding(
        self,
        cur: pd.Series,
        prev: Mapping[str, Any],
        dist: float,
        eff: float,
        hours: float,
        speed: float,
        precision: str,
    ) -> Any:
        allowed = self.p["max_speed_kmh"] * max(hours, self.p["min_hours"]) + (dist - eff)
        ratio = speed / self.p["max_speed_kmh"]
        score = min(1.0, 0.6 + 0.15 * math.log2(max(ratio, 1.0)))
        prev_geo = {
            "country": _str(prev["country"]),
            "city": _str(prev["city"]),
            "lat": float(prev["lat"]),
            "lon": float(prev["lon"]),
            "precision": _str(prev["precision"]) or "given",
        }
        cur_geo = {
            "country": _str(cur.get("country")),
            "city": _str(cur.get("city")),
            "lat": float(cur["lat"]),
            "lon": float(cur["lon"]),
            "precision": precision,
        }
        text = (
            f"{_place(prev_geo)} → {_place(cur_geo)}, {_fmt_int(_round_sig(dist))} km in "
            f"{_fmt_duration(hours)}: {_fmt_int(_round_sig(dist / max(hours, 1 / 60)))} km/h"
        )
        return self.finding(
            cur["account_id"],
            cur["ts"],
            key=str(cur["event_id"]),
            kind="speed",
            score=score,
            event_ids=[prev["event_id"], cur["event_id"]],
            evidence={
                "distance_km": round(dist, 1),
                "allowed_distance_km": round(allowed, 1),
                "elapsed_hours": round(hours, 3),
                "speed_kmh": round(speed, 1),
                "max_speed_kmh": self.p["max_speed_kmh"],
                "previous_login_at": pd.Timestamp(prev["ts"]).isoformat(),
                "previous_event_id": str(prev["event_id"]),
                "previous_geo": prev_geo,
                "current_geo": cur_geo,
                "ip": _str(cur.get("ip")),
                "country": cur_geo["country"],
                "city": cur_geo["city"],
                "device_id": _str(cur.get("device_id")),
                "device": describe(cur.get("user_agent")),
                "text": text,
            },
        )


def upper_str(s: pd.Series) -> np.ndarray:
    """``s.astype(str).str.upper()`` computed once per distinct value."""
    arr = s.to_numpy(dtype=object)
    codes, uniq = pd.factorize(arr)
    out = np.empty(len(arr), dtype=object)
    if len(uniq):
        table = np.array([str(u).upper() for u in uniq], dtype=object)
        out[codes >= 0] = table[codes[codes >= 0]]
    miss = codes < 0
    if miss.any():
        out[miss] = pd.Series(arr[miss], dtype=object).astype(str).str.upper().to_numpy(dtype=object)
    return out


def _is_country(precision: pd.Series) -> pd.Series:
    """``precision.astype(str) == "country"``, judged once per distinct value (nulls are not "country")."""
    codes, uniq = pd.factorize(precision.to_numpy(dtype=object))
    hit = np.array([str(u) == "country" for u in uniq] + [False], dtype=bool)  # code -1 picks the False
    return pd.Series(hit[codes], index=precision.index)


def _radius(precision: pd.Series, country: pd.Series) -> pd.Series:
    """Extra slack for points known only to country precision: the country's radius."""
    coarse = _is_country(precision)
    out = pd.Series(0.0, index=precision.index)
    if coarse.any():
        try:
            db = places()
        except Exception:  # no place data: assume a large country
            out[coarse] = 1000.0
            return out
        radii = {c: db.country_radius_km(str(c)) for c in country[coarse].unique()}
        out[coarse] = country[coarse].map(radii).fillna(1000.0).astype("float64")
    return out


def _str(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return str(v)


def _place(geo: Mapping[str, Any]) -> str:
    if geo.get("city"):
        return str(geo["city"])
    if geo.get("country"):
        return str(geo["country"])
    return f"{geo['lat']:.2f}, {geo['lon']:.2f}"


def _round_sig(x: float) -> float:
    """Hundreds above 1,000 and tens below: evidence for a person, not a surveyor."""
    if x <= 0 or not np.isfinite(x):
        return 0.0
    return float(round(x, -2 if x >= 1000 else -1))


def _fmt_int(x: float) -> str:
    return f"{round(x):,}"


def _fmt_duration(hours: float) -> str:
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes} min"
    d, rem = divmod(minutes, 24 * 60)
    h, m = divmod(rem, 60)
    if d:
        return f"{d} d {h} h" if h else f"{d} d"
    return f"{h} h {m} min" if m else f"{h} h"
