from __future__ import annotations

from datetime import timedelta

import pytest

from detectors.base import ParameterError
from detectors.impossible_travel import ImpossibleTravel
from tests.detectors.login_frames import HOME, SAO_PAULO, T0, TOKYO, history, ids, login, scan, scan_in_parts


def test_seoul_to_sao_paulo_evidence() -> None:
    rows = [login("a", T0, **HOME), login("b", T0 + timedelta(hours=2, minutes=10), **{**HOME, **SAO_PAULO})]
    res = scan(ImpossibleTravel(), rows)
    assert len(res.findings) == 1
    f = res.findings[0]
    ev = f.evidence
    assert f.event_ids == ("a", "b") and f.kind == "speed"
    assert ev["text"] == "Seoul → São Paulo, 18,300 km in 2 h 10 min: 8,500 km/h"
    assert 18_300 < ev["distance_km"] < 18_400
    assert ev["elapsed_hours"] == pytest.approx(2.167, abs=1e-3)
    # authentik: allowed = speed x max(elapsed, 1 h) + tolerance
    assert ev["allowed_distance_km"] == pytest.approx(1000 * 2.1667 + 50, abs=1)
    assert ev["speed_kmh"] == pytest.approx((ev["distance_km"] - 50) / ev["elapsed_hours"], rel=1e-3)
    assert ev["previous_login_at"] == T0.isoformat() and ev["previous_event_id"] == "a"
    assert ev["previous_geo"]["city"] == "Seoul" and ev["current_geo"]["country"] == "BR"
    assert f.score == 1.0


def test_a_plausible_flight_is_not_flagged() -> None:
    rows = [login("a", 0, **HOME), login("b", 4, **{**HOME, **TOKYO})]  # 1,160 km in 4 h
    assert scan(ImpossibleTravel(), rows).findings == []
    # the same hop in 30 minutes counts as one hour (authentik) -> 1,110 km/h after tolerance: flagged
    rows = [login("a", 0, **HOME), login("b", 0.5, **{**HOME, **TOKYO})]
    assert ids(scan(ImpossibleTravel(), rows).findings) == [("a", "b")]
    assert scan(ImpossibleTravel(max_speed_kmh=1200), rows).findings == []
    assert scan(ImpossibleTravel(min_distance_km=1500), rows).findings == []


def test_anonymous_and_hosting_logins_leave_the_chain() -> None:
    rows = [
        login("a", 0, **HOME),
        login("vpn", 1, **{**HOME, **SAO_PAULO, "is_anonymous_ip": True}),
        login("aws", 2, **{**HOME, **SAO_PAULO, "asn": 16509, "is_anonymous_ip": False}),
        login("b", 3, **{**HOME, "is_anonymous_ip": False}),
    ]
    res = scan(ImpossibleTravel(), rows)
    assert res.findings == []
    reasons = {s.reason: s.rows for s in res.skips}
    assert reasons["anonymous IP (VPN/Tor): not a location"] == 1
    assert reasons["hosting/VPN network: not a location"] == 1
    assert ids(scan(ImpossibleTravel(skip_anonymous=False, hosting_asns=[]), rows).findings) == [
        ("a", "vpn"),
        ("aws", "b"),
    ]


def test_country_precision_points_get_the_country_radius() -> None:
    la = {"country": "US", "city": "Los Angeles", "lat": 34.05, "lon": -118.24}
    capital = {"country": "US", "city": None, "lat": 38.895, "lon": -77.036, "geo_precision": "country"}
    rows = [login("a", 0, **la), login("b", 1, **capital)]  # 3,700 km, but "US" is all we know
    assert scan(ImpossibleTravel(), rows).findings == []
    rows[1] = {**rows[1], "geo_precision": "city"}
    assert ids(scan(ImpossibleTravel(), rows).findings) == [("a", "b")]
    # Seoul to "somewhere in Japan" (Tokyo, radius ~350 km) in an hour: 1,160 km minus the radius is possible
    jp = {"country": "JP", "city": None, "lat": 35.68, "lon": 139.65, "geo_precision": "country"}
    assert scan(ImpossibleTravel(), [login("a", 0, **HOME), login("b", 1, **{**HOME, **jp})]).findings == []
    # Seoul to "somewhere in Brazil" in an hour is not
    br = {"country": "BR", "city": None, "lat": -15.78, "lon": -47.93, "geo_precision": "country"}
    f = scan(ImpossibleTravel(), [login("a", 0, **HOME), login("b", 1, **{**HOME, **br})]).findings
    assert ids(f) == [("a", "b")] and f[0].evidence["current_geo"]["precision"] == "country"
    assert f[0].evidence["allowed_distance_km"] > 1000 + 50 + 1500


def test_unlocated_rows_and_missing_columns() -> None:
    rows = [login("a", 0, **HOME), login("b", 1, **{**HOME, "lat": None, "lon": None})]
    res = scan(ImpossibleTravel(), rows)
    assert res.findings == [] and {s.reason: s.rows for s in res.skips}["location unknown"] == 1
    res = scan(ImpossibleTravel(), rows, drop=["lat", "lon"])
    assert res.findings == [] and "absent" in res.skips[0].reason


def test_previous_login_comes_from_the_profile() -> None:
    rows = [*history(3), login("far", 2 * 24 + 2, **{**HOME, **SAO_PAULO})]
    one = scan(ImpossibleTravel(), rows).findings
    assert ids(one) == [("alice-h002", "far")]
    assert [f.finding_id for f in scan_in_parts(ImpossibleTravel(), rows, 4)] == [one[0].finding_id]


def test_parameters_are_validated() -> None:
    with pytest.raises(ParameterError, match="'max_speed_kmh' parameter of ImpossibleTravel must be a number > 0"):
        ImpossibleTravel(max_speed_kmh=-5)
    with pytest.raises(ParameterError, match="AS numbers"):
        ImpossibleTravel(hosting_asns=["AS16509"])
