from __future__ import annotations

import pytest

from detectors.base import ParameterError
from detectors.new_location import NewLocation
from tests.detectors.login_frames import (
    BUSAN,
    HOME,
    SAO_PAULO,
    TOKYO,
    history,
    ids,
    login,
    scan,
    scan_in_parts,
)


def test_new_country_with_evidence() -> None:
    rows = [*history(5), login("x", 5 * 24, **{**HOME, **TOKYO, "ip": "126.1.2.3"})]
    res = scan(NewLocation(), rows)
    assert len(res.findings) == 1
    f = res.findings[0]
    assert (f.kind, f.event_ids, f.score) == ("country", ("x",), 0.7)
    assert f.evidence["country"] == "JP" and f.evidence["known"] == ["KR"] and f.evidence["ip"] == "126.1.2.3"
    assert res.profiles["alice"]["n"] == 6 and set(res.profiles["alice"]["seen"]["country"]) == {"KR", "JP"}


def test_learning_period_and_familiar_country() -> None:
    # abroad on the third login: still learning (min_history_logins 3 needs 3 earlier logins)
    rows = [*history(2), login("x", 50, **{**HOME, **TOKYO}), login("y", 100, **{**HOME, **TOKYO})]
    assert scan(NewLocation(), rows).findings == []
    # after the learning period, a country used two logins ago is familiar
    rows = [
        *history(4),
        login("x", 200, **{**HOME, **TOKYO}),
        login("y", 300, **HOME),
        login("z", 400, **{**HOME, **TOKYO}),
    ]
    assert ids(scan(NewLocation(), rows).findings) == [("x",)]


def test_last_n_logins_or_window_days() -> None:
    # JP used once, then 30 logins at home over 150 days: beyond both 90 days and 20 logins -> new again
    rows = [*history(4), login("jp1", 100, **{**HOME, **TOKYO}), *history(30, every_hours=120)[4:]]
    late = login("jp2", 29 * 120 + 24, **{**HOME, **TOKYO})
    found = ids(scan(NewLocation(), [*rows, late]).findings)
    assert ("jp2",) in found
    # with history_logins 40 the same JP login is familiar (seen within the last 40 logins)
    assert ("jp2",) not in ids(scan(NewLocation(history_logins=40), [*rows, late]).findings)
    # with history_logins 0 and a 365-day window it is familiar through the window
    assert ("jp2",) not in ids(scan(NewLocation(history_logins=0, window_days=365), [*rows, late]).findings)


def test_new_city_reports_the_nearest_known_city() -> None:
    rows = [*history(5), login("bs", 130, **{**HOME, **BUSAN}), login("sp", 200, **{**HOME, **SAO_PAULO})]
    res = scan(NewLocation(levels=["country", "city"]), rows)
    city = {f.event_ids[0]: f for f in res.findings if f.kind == "city"}
    assert set(city) == {"bs", "sp"}
    assert city["bs"].evidence["nearest_known"] == "KR/Seoul"
    assert 300 < city["bs"].evidence["nearest_known_km"] < 340
    assert city["sp"].evidence["nearest_known"] in ("KR/Busan", "KR/Seoul")
    assert city["sp"].evidence["nearest_known_km"] > 18_000
    assert city["sp"].score > city["bs"].score


def test_missing_columns_skip_with_reason() -> None:
    rows = [*history(5), login("x", 200, **{**HOME, **TOKYO})]
    res = scan(NewLocation(levels=["country", "city"]), rows, drop=["city"])
    assert ids(res.findings) == [("x",)]
    assert any("'city' absent" in s.reason for s in res.skips)
    res = scan(NewLocation(), [*history(5), login("y", 200, **{**HOME, "country": None})])
    assert res.findings == [] and [s.reason for s in res.skips] == ["country unknown"]


def test_batches_equal_one_scan() -> None:
    rows = [
        *history(6),
        login("x", 150, **{**HOME, **TOKYO}),
        *history(6, account="bob"),
        login("y", 170, "bob", **{**HOME, **SAO_PAULO}),
        login("z", 171, **{**HOME, **BUSAN}),
    ]
    det = NewLocation(levels=["country", "city"])
    one = scan(det, rows).findings
    assert {f.finding_id for f in scan_in_parts(det, rows, 5)} == {f.finding_id for f in one}
    assert len(one) == 5  # x: country + city, y: country + city, z: city


def test_parameters_are_validated() -> None:
    with pytest.raises(ParameterError, match="'window_days' parameter of NewLocation must be an integer >= 1"):
        NewLocation(window_days=0)
    with pytest.raises(ParameterError, match="at least one level"):
        NewLocation(levels=[])
